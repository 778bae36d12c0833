//! A vectorisable base-2 exponential for the online softmax.
//!
//! `exp2(x) = 2^n · 2^f` with `n = round(x)` and `f = x - n ∈ [-1/2, 1/2]`; `2^f` is a
//! degree-7 Taylor polynomial of `e^(f·ln 2)` (truncation error below 6e-9 relative),
//! and `2^n` is built in the exponent bits. Branch-free, so a loop over a score row
//! compiles to SIMD code; the result is within a few f32 ulps of the exact value.
//! Inputs at or below -126 (including -inf) return about 1.2e-38 (2^-126), which
//! is zero next to any probability that matters. NaN stays NaN.

/// Lower clamp: keeps `2^n` a normal number.
const LO: f32 = -126.0;
/// 1.5 · 2^23: adding it rounds an f32 in [-2^22, 2^22] to an integer, which then
/// sits in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;

/// Taylor coefficients (ln 2)^k / k!, k = 1..=7.
const C: [f32; 7] = [
    std::f32::consts::LN_2,
    0.240_226_5,
    0.055_504_11,
    0.009_618_129,
    0.001_333_355_8,
    0.000_154_035_3,
    0.000_015_252_73,
];

/// `a · b + c`, fused where the instruction set has FMA (`FMA`), else two operations
/// (a fused multiply-add without hardware support is a slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// 2^x for x <= 0 (scores minus their running maximum). Inlined into SIMD loops.
#[inline(always)]
pub fn exp2_neg<const FMA: bool>(x: f32) -> f32 {
    // Written as a compare, not `max`, so that NaN passes through.
    let x = if x < LO { LO } else { x };
    let t = x + ROUNDER;
    let n = t - ROUNDER;
    let f = x - n;
    // 2^n: the integer n sits in the low bits of t's mantissa (t = 1.5·2^23 + n).
    let bits = t
        .to_bits()
        .wrapping_sub(ROUNDER.to_bits())
        .wrapping_add(127)
        << 23;
    let scale = f32::from_bits(bits);
    let p = C[6];
    let p = madd::<FMA>(p, f, C[5]);
    let p = madd::<FMA>(p, f, C[4]);
    let p = madd::<FMA>(p, f, C[3]);
    let p = madd::<FMA>(p, f, C[2]);
    let p = madd::<FMA>(p, f, C[1]);
    let p = madd::<FMA>(p, f, C[0]);
    let p = madd::<FMA>(p, f, 1.0);
    p * scale
}

/// Lanes of the partial sums and maxima below (wide enough for AVX-512).
const LANES: usize = 16;

/// Replaces every `s` by `2^(s - max)` and returns their sum.
#[inline(always)]
pub fn exp2_sub_sum<const FMA: bool>(s: &mut [f32], max: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = s.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c.iter_mut()) {
            *x = exp2_neg::<FMA>(*x - max);
            *a += *x;
        }
    }
    let mut sum = 0.0f32;
    for x in chunks.into_remainder() {
        *x = exp2_neg::<FMA>(*x - max);
        sum += *x;
    }
    sum + reduce(acc, |a, b| a + b)
}

/// Folds the lanes pairwise (halving the width each step, which vectorises).
#[inline(always)]
fn reduce(mut acc: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            acc[i] = op(acc[i], acc[i + w]);
        }
        w /= 2;
    }
    acc[0]
}

/// The largest of `s` and `start` (NaN entries are ignored; they propagate through the
/// exponential instead).
#[inline(always)]
pub fn max_of(s: &[f32], start: f32) -> f32 {
    let mut acc = [start; LANES];
    let mut chunks = s.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    let max = |a: f32, x: f32| if x > a { x } else { a };
    chunks
        .remainder()
        .iter()
        .fold(reduce(acc, max), |a, &x| max(a, x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp2_is_accurate_to_a_few_ulps() {
        let mut worst = 0.0f64;
        let mut x = -125.0f32;
        while x <= 0.0 {
            let (got, unfused) = (exp2_neg::<true>(x) as f64, exp2_neg::<false>(x) as f64);
            let want = (x as f64).exp2();
            worst = worst.max((got - want).abs() / want);
            worst = worst.max((unfused - want).abs() / want);
            x += 0.000_731;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp2_neg::<true>(0.0), 1.0);
        assert_eq!(exp2_neg::<false>(-3.0), 0.125);
    }

    #[test]
    fn exp2_of_masked_and_nan() {
        let tiny = exp2_neg::<true>(f32::NEG_INFINITY);
        assert!((0.0..1e-37).contains(&tiny), "{tiny}");
        assert!(exp2_neg::<true>(-1e30).is_finite());
        assert!(exp2_neg::<false>(f32::NAN).is_nan());
    }

    #[test]
    fn row_helpers_match_scalar_loops() {
        let row: Vec<f32> = (0..37)
            .map(|i| ((i * 7919) % 23) as f32 * 0.37 - 4.0)
            .collect();
        let m = max_of(&row, f32::NEG_INFINITY);
        assert_eq!(m, row.iter().cloned().fold(f32::NEG_INFINITY, f32::max));
        assert_eq!(max_of(&row[..3], 100.0), 100.0);
        let mut p = row.clone();
        let sum = exp2_sub_sum::<true>(&mut p, m);
        let want: f64 = row.iter().map(|&x| ((x - m) as f64).exp2()).sum();
        assert!((sum as f64 - want).abs() < 1e-6 * want);
        for (x, y) in p.iter().zip(&row) {
            assert!((*x as f64 - ((y - m) as f64).exp2()).abs() < 1e-6);
        }
    }
}
