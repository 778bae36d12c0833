//! Self-tests of the host simulator and of the primitives of `cuda/common.cuh`
//! (kernels in `cuda/sim/tests/selftest.cu`): shuffles, divergence and deadlock
//! reports, mma.m16n8k16 with every ldmatrix variant against a plain matrix product,
//! cp.async groups and zero-fill, and the 16-bit conversions against the `half` crate.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqa_bench::problem::Dtype;
use sqa_bench::sim::selftest::{self, Divergence, Fragments, BLOCK};
use sqa_bench::verify::{compare, Tolerance};

#[test]
fn shuffles_exchange_and_reduce_within_each_warp() {
    for threads in [false, true] {
        let out = selftest::shfl(threads).expect("shuffle kernel");
        for tid in 0..BLOCK {
            for i in 0..5 {
                assert_eq!(
                    out[6 * tid + i],
                    (tid ^ (1 << i)) as f32,
                    "tid {tid} xor {i}"
                );
            }
            let warp0 = tid / 32 * 32;
            let sum: usize = (warp0..warp0 + 32).sum();
            assert_eq!(out[6 * tid + 5], sum as f32, "tid {tid} warp sum");
        }
    }
}

#[test]
fn divergent_shuffle_is_reported() {
    for how in [
        Divergence::Exits,
        Divergence::Barrier,
        Divergence::OtherCollective,
    ] {
        for threads in [false, true] {
            let e = selftest::diverge(how, threads).expect_err("divergent shuffle must fail");
            let msg = e.to_string();
            assert!(
                msg.contains("divergence"),
                "{how:?} threads={threads}: {msg}"
            );
            assert!(
                msg.contains("block (0,0,0) thread"),
                "{how:?} threads={threads}: {msg}"
            );
        }
    }
}

#[test]
fn barrier_deadlock_is_reported() {
    for threads in [false, true] {
        let e = selftest::deadlock(threads).expect_err("partial barrier must fail");
        assert!(e.to_string().contains("deadlock"), "threads={threads}: {e}");
    }
}

fn random(rng: &mut StdRng, dtype: Dtype, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| dtype.round(rng.random_range(-2.0f32..2.0)))
        .collect()
}

#[test]
fn mma_and_ldmatrix_follow_the_ptx_fragment_layouts() {
    let mut rng = StdRng::seed_from_u64(5);
    for dtype in [Dtype::Bf16, Dtype::F16] {
        let (a, b) = (random(&mut rng, dtype, 256), random(&mut rng, dtype, 256));
        let c: Vec<f32> = (0..256).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let want: Vec<f64> = (0..256)
            .map(|e| {
                let (i, j) = (e / 16, e % 16);
                c[e] as f64
                    + (0..16)
                        .map(|k| a[i * 16 + k] as f64 * b[k * 16 + j] as f64)
                        .sum::<f64>()
            })
            .collect();
        for how in [
            Fragments::ByHand,
            Fragments::X4Trans,
            Fragments::X2,
            Fragments::X2Trans,
        ] {
            let got = selftest::mma(dtype, how, &a, &b, &c).expect("mma kernel");
            // Exact products, 16 f32 additions: a few f32 ulps of the partial sums.
            let check = compare(&got, &want, Tolerance::for_output(Dtype::F32));
            assert!(check.passed(), "{dtype} {how:?}: {check:?}");
        }
    }
}

#[test]
fn mma_result_depends_on_every_fragment_element() {
    // A single 1 in A and in B picks one product: moving it anywhere moves the output,
    // so a swapped register or half-word in the layouts cannot go unnoticed.
    for (ai, bi) in [
        (0, 0),
        (17, 16 + 3),
        (255, 15 * 16 + 9),
        (9 * 16 + 10, 10 * 16 + 14),
    ] {
        let mut a = vec![0f32; 256];
        let mut b = vec![0f32; 256];
        a[ai] = 1.0;
        b[bi] = 2.0;
        let got =
            selftest::mma(Dtype::Bf16, Fragments::X2, &a, &b, &[0f32; 256]).expect("mma kernel");
        let (i, k) = (ai / 16, ai % 16);
        let (k2, j) = (bi / 16, bi % 16);
        for (e, &g) in got.iter().enumerate() {
            let want = if k == k2 && e == i * 16 + j { 2.0 } else { 0.0 };
            assert_eq!(g, want, "A[{i}][{k}] B[{k2}][{j}] -> D element {e}");
        }
    }
}

#[test]
fn cp_async_lands_at_its_wait_and_zero_fills() {
    let src: [f32; 64] = std::array::from_fn(|i| i as f32 + 0.5);
    let r = selftest::cp_async(&src).expect("cp.async kernel");
    for (i, &x) in src.iter().enumerate() {
        let zero_fill = (i / 4) % 3 == 0;
        assert!(r.before[i].is_nan(), "element {i} visible before its wait");
        assert_eq!(
            r.mid0[i],
            if zero_fill { 0.0 } else { x },
            "group 0, element {i}"
        );
        assert!(r.mid1[i].is_nan(), "group 1 landed before wait_group 0");
        assert_eq!(r.after[i], x, "group 1, element {i}");
    }
}

#[test]
fn dynamic_shared_memory_is_poisoned_in_every_block() {
    let src: [f32; 64] = std::array::from_fn(|i| 100.0 + i as f32);
    let (before, after) = selftest::dynamic_smem(&src).expect("dynamic smem kernel");
    for block in 0..2 {
        for i in 0..64 {
            let e = 64 * block + i;
            assert!(
                before[e].is_nan(),
                "block {block}: element {i} not poisoned"
            );
            assert_eq!(after[e], src[(i + 4) % 64], "block {block}: element {i}");
        }
    }
}

#[test]
fn conversions_round_like_the_half_crate() {
    let mut x: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -2.5,
        65504.0,
        65519.0,
        65520.0,
        1e9,
        -1e9,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        6.0e-8,
        2.9802322e-8, // 2^-25: ties to zero in f16
        3.0e-8,
        1.0e-5,
        -6.1e-5,
        1.0 + 1.0 / 256.0, // ties in bf16
        1.0 + 3.0 / 256.0,
        1.0 + 1.0 / 2048.0, // ties in f16
        3.4e38,
    ];
    let mut rng = StdRng::seed_from_u64(9);
    while x.len() < 512 {
        let e = rng.random_range(-30i32..20);
        x.push(rng.random_range(-1.0f32..1.0) * 2f32.powi(e));
    }
    let p = selftest::pack(&x).expect("pack kernel");
    let bf = |v: f32| half::bf16::from_f32(v).to_bits();
    let hf = |v: f32| half::f16::from_f32(v).to_bits();
    // Same bits as `half`, except that any NaN only has to stay a NaN.
    let same = |got: u16, v: f32, want: u16, is_bf16: bool| {
        if v.is_nan() {
            let g = got as u32;
            if is_bf16 {
                half::bf16::from_bits(g as u16).is_nan()
            } else {
                half::f16::from_bits(g as u16).is_nan()
            }
        } else {
            got == want
        }
    };
    for t in 0..x.len() / 2 {
        let (lo, hi) = (x[2 * t], x[2 * t + 1]);
        let (b, h) = (p.bf16x2[t], p.f16x2[t]);
        assert!(same(b as u16, lo, bf(lo), true), "bf16x2 low of {lo}");
        assert!(
            same((b >> 16) as u16, hi, bf(hi), true),
            "bf16x2 high of {hi}"
        );
        assert!(same(h as u16, lo, hf(lo), false), "f16x2 low of {lo}");
        assert!(
            same((h >> 16) as u16, hi, hf(hi), false),
            "f16x2 high of {hi}"
        );
        assert!(same(p.bf16[t], lo, bf(lo), true), "bf16 of {lo}");
        assert!(same(p.f16[t], lo, hf(lo), false), "f16 of {lo}");
    }
}
