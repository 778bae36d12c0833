//! The tile kernel: one query tile of one head against the key tiles it can see.
//!
//! Two small register-blocked products do the work, written once over the vector
//! operations of [`Simd`] with the accumulators in a fixed-size array of vectors (which
//! the compiler keeps in registers):
//!
//! - `S = Q·Kᵀ`: a block of `R_QK` query rows × `NV_QK` vectors of keys, an outer-product loop over the
//!   head dimension that reads the key tile transposed (`Kᵀ: [d][TILE_K]`, contiguous
//!   over keys) and broadcasts one query element per row;
//! - `O += P·V`: a block of `R_PV` rows × [`COL_BLOCK`] output columns, a loop over the keys that
//!   broadcasts one probability per row and reads one value row.
//!
//! Between them the online softmax runs row by row on the score tile in place, with a
//! polynomial `exp2` (scores are pre-scaled by `log2 e / sqrt(d)`). Tiles that every row
//! sees entirely are never masked; on diagonal and window-edge tiles each row block only
//! multiplies the keys its rows see, and the softmax masks per row.

use super::exp2::{exp2_neg, exp2_sub_sum, max_of};
use super::simd::Simd;
use crate::problem::Pattern;

/// Query rows per tile (one task); a multiple of every row block below.
pub const TILE_Q: usize = 48;
/// Keys per tile; a multiple of every key block below.
pub const TILE_K: usize = 128;
/// Output columns per P·V block; the head dimension is padded to a multiple of it.
pub const COL_BLOCK: usize = 16;

/// The operands of one head, already converted to f32 and laid out for the kernel.
pub struct HeadData<'a> {
    /// Query rows of this head, `[N][d]`, pre-scaled by `log2 e / sqrt(d)`.
    pub q: &'a [f32],
    /// Keys, transposed per tile: `[N / TILE_K rounded up][d][TILE_K]`, zero past N.
    pub kt: &'a [f32],
    /// Values, `[N rounded up to TILE_K][dp]`, zero in the padding.
    pub v: &'a [f32],
    pub n: usize,
    pub d: usize,
    /// `d` rounded up to [`COL_BLOCK`].
    pub dp: usize,
    pub pattern: Pattern,
}

/// Per-task scratch, reused across the tasks a worker runs.
pub struct Scratch {
    q: Vec<f32>,
    s: Vec<f32>,
    o: Vec<f32>,
    m: Vec<f32>,
    l: Vec<f32>,
}

impl Scratch {
    pub fn new(d: usize, dp: usize) -> Self {
        Scratch {
            q: vec![0.0; TILE_Q * d],
            s: vec![0.0; TILE_Q * TILE_K],
            o: vec![0.0; TILE_Q * dp],
            m: vec![0.0; TILE_Q],
            l: vec![0.0; TILE_Q],
        }
    }
}

/// Computes output rows `row0 .. row0 + out.len() / d` of one head into `out: [rows][d]`.
///
/// `R_QK` × `NV_QK` vectors: the rows × keys block of S = Q·Kᵀ; `R_PV` × `NV_PV`
/// vectors: the rows × columns block of O += P·V (`NV_PV` vectors are [`COL_BLOCK`]).
///
/// # Safety
/// The CPU has the instruction set of `S`.
#[inline(always)]
pub unsafe fn query_tile<
    S: Simd,
    const R_QK: usize,
    const NV_QK: usize,
    const R_PV: usize,
    const NV_PV: usize,
>(
    h: &HeadData,
    row0: usize,
    out: &mut [f32],
    sc: &mut Scratch,
) {
    let kw = NV_QK * S::LANES;
    assert!(
        TILE_K.is_multiple_of(kw) && TILE_Q.is_multiple_of(R_QK) && TILE_Q.is_multiple_of(R_PV)
    );
    assert_eq!(NV_PV * S::LANES, COL_BLOCK);
    let (n, d, dp) = (h.n, h.d, h.dp);
    assert!(h.q.len() >= n * d && h.kt.len() >= n.div_ceil(TILE_K) * TILE_K * d);
    assert!(h.v.len() >= n.div_ceil(TILE_K) * TILE_K * dp && dp.is_multiple_of(COL_BLOCK));
    let rows = out.len() / d;
    debug_assert!((1..=TILE_Q).contains(&rows) && row0 + rows <= n);

    // The query tile, zero rows past the end (their results are discarded).
    sc.q[..rows * d].copy_from_slice(&h.q[row0 * d..][..rows * d]);
    sc.q[rows * d..].fill(0.0);
    sc.o.fill(0.0);
    sc.m.fill(f32::NEG_INFINITY);
    sc.l.fill(0.0);

    // Keys visible to some row of the tile (both ends grow with the row).
    let first = h.pattern.visible(row0, n);
    let last = h.pattern.visible(row0 + rows - 1, n);
    let (lo, hi) = (first.start, last.end);
    for tile in lo / TILE_K..hi.div_ceil(TILE_K) {
        let k0 = tile * TILE_K;
        let kn = TILE_K.min(n - k0);
        let kt = &h.kt[tile * d * TILE_K..][..d * TILE_K];
        let v = &h.v[k0 * dp..][..TILE_K * dp];
        // Keys of this tile that rows r..r+count see (a window or the diagonal leaves
        // the rest of the tile unseen: it is neither multiplied nor masked).
        let seen = |r: usize, count: usize| {
            let a = h.pattern.visible(row0 + r, n).start.clamp(k0, k0 + kn) - k0;
            let e = h.pattern.visible(row0 + (r + count).min(rows) - 1, n).end;
            a..(e.clamp(k0, k0 + kn) - k0).max(a)
        };
        // Row blocks past the last real row are skipped; blocks of kw keys cover the
        // keys the block's rows see.
        for r in (0..rows).step_by(R_QK) {
            let keys = seen(r, R_QK);
            if keys.is_empty() {
                continue;
            }
            for t0 in (keys.start / kw * kw..keys.end).step_by(kw) {
                // SAFETY: the caller guarantees the instruction set.
                unsafe {
                    qk_block::<S, R_QK, NV_QK>(&sc.q[r * d..], d, kt, t0, &mut sc.s[r * TILE_K..])
                };
            }
        }

        // Every real row sees every key of the tile: no masking at all.
        let unmasked = last.start <= k0 && first.end >= k0 + kn;
        for r in 0..TILE_Q {
            let srow = &mut sc.s[r * TILE_K..][..TILE_K];
            let (a, e) = if r >= rows {
                (0, 0)
            } else if unmasked {
                (0, kn)
            } else {
                let vis = h.pattern.visible(row0 + r, n);
                let a = vis.start.clamp(k0, k0 + kn) - k0;
                (a, (vis.end.clamp(k0, k0 + kn) - k0).max(a))
            };
            if a == e {
                // Nothing visible in this tile: the row contributes nothing.
                srow.fill(0.0);
                continue;
            }
            let m_old = sc.m[r];
            let m_new = max_of(&srow[a..e], m_old);
            let (alpha, sum) = if S::FMA {
                let p = &mut srow[a..e];
                (
                    exp2_neg::<true>(m_old - m_new),
                    exp2_sub_sum::<true>(p, m_new),
                )
            } else {
                let p = &mut srow[a..e];
                (
                    exp2_neg::<false>(m_old - m_new),
                    exp2_sub_sum::<false>(p, m_new),
                )
            };
            srow[..a].fill(0.0);
            srow[e..].fill(0.0);
            sc.l[r] = sc.l[r] * alpha + sum;
            sc.m[r] = m_new;
            if alpha != 1.0 {
                sc.o[r * dp..][..dp].iter_mut().for_each(|x| *x *= alpha);
            }
        }

        for r in (0..rows).step_by(R_PV) {
            let keys = seen(r, R_PV);
            for c in (0..dp).step_by(COL_BLOCK) {
                // SAFETY: the caller guarantees the instruction set.
                unsafe {
                    pv_block::<S, R_PV, NV_PV>(
                        &sc.s[r * TILE_K..],
                        keys.clone(),
                        v,
                        dp,
                        c,
                        &mut sc.o[r * dp..],
                    )
                };
            }
        }
    }

    for r in 0..rows {
        let inv = 1.0 / sc.l[r];
        for (o, x) in out[r * d..][..d].iter_mut().zip(&sc.o[r * dp..][..d]) {
            *o = x * inv;
        }
    }
}

/// `S[r][t0 + x] = Σ_c Q[r][c] · Kᵀ[c][t0 + x]` for `r < R`, `x < NV · LANES`.
/// `q`: rows of stride `d`; `kt`: `[d][TILE_K]`; `s`: rows of stride `TILE_K`.
///
/// # Safety
/// The CPU has the instruction set of `S`.
#[inline(always)]
unsafe fn qk_block<S: Simd, const R: usize, const NV: usize>(
    q: &[f32],
    d: usize,
    kt: &[f32],
    t0: usize,
    s: &mut [f32],
) {
    let l = S::LANES;
    assert!(t0 + NV * l <= TILE_K && q.len() >= R * d && kt.len() >= d * TILE_K);
    assert!(s.len() >= (R - 1) * TILE_K + t0 + NV * l);
    let (q, kt, s) = (q.as_ptr(), kt.as_ptr(), s.as_mut_ptr());
    // SAFETY: the asserts above bound every offset below (r < R, c < d, v < NV), and
    // the caller guarantees the instruction set.
    unsafe {
        let mut acc = [[S::zero(); NV]; R];
        for c in 0..d {
            let krow = kt.add(c * TILE_K + t0);
            let mut k = [S::zero(); NV];
            for (v, kv) in k.iter_mut().enumerate() {
                *kv = S::load(krow.add(v * l));
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let qv = S::splat(*q.add(r * d + c));
                for v in 0..NV {
                    a[v] = S::mul_add(qv, k[v], a[v]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            for (v, x) in a.iter().enumerate() {
                S::store(s.add(r * TILE_K + t0 + v * l), *x);
            }
        }
    }
}

/// `O[r][c0 + x] += Σ_{t ∈ keys} P[r][t] · V[t][c0 + x]` for `r < R`, `x < NV · LANES`.
/// `p`: rows of stride `TILE_K`; `v`: rows of stride `dp`; `o`: rows of stride `dp`.
///
/// # Safety
/// The CPU has the instruction set of `S`.
#[inline(always)]
unsafe fn pv_block<S: Simd, const R: usize, const NV: usize>(
    p: &[f32],
    keys: std::ops::Range<usize>,
    v: &[f32],
    dp: usize,
    c0: usize,
    o: &mut [f32],
) {
    let l = S::LANES;
    let kn = keys.end;
    assert!(kn <= TILE_K && c0 + NV * l <= dp);
    assert!(p.len() >= (R - 1) * TILE_K + kn && v.len() >= kn * dp && o.len() >= R * dp);
    let (p, v, o) = (p.as_ptr(), v.as_ptr(), o.as_mut_ptr());
    // SAFETY: the asserts above bound every offset below (r < R, t < kn, x < NV), and
    // the caller guarantees the instruction set.
    unsafe {
        let mut acc = [[S::zero(); NV]; R];
        for (r, a) in acc.iter_mut().enumerate() {
            for (x, ax) in a.iter_mut().enumerate() {
                *ax = S::load(o.add(r * dp + c0 + x * l));
            }
        }
        for t in keys {
            let vrow = v.add(t * dp + c0);
            let mut vv = [S::zero(); NV];
            for (x, vx) in vv.iter_mut().enumerate() {
                *vx = S::load(vrow.add(x * l));
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let pv = S::splat(*p.add(r * TILE_K + t));
                for x in 0..NV {
                    a[x] = S::mul_add(pv, vv[x], a[x]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            for (x, ax) in a.iter().enumerate() {
                S::store(o.add(r * dp + c0 + x * l), *ax);
            }
        }
    }
}
