//! The tile kernel: one query tile of one head against the key tiles it can see.
//!
//! Two small register-blocked products do the work, both written as plain loops over
//! fixed-size arrays so that the compiler keeps the accumulators in vector registers
//! and vectorises them for the instruction set it is compiled for:
//!
//! - `S = Q·Kᵀ`: a block of `R` query rows × `KW` keys, an outer-product loop over the
//!   head dimension that reads the key tile transposed (`Kᵀ: [d][TILE_K]`, contiguous
//!   over keys) and broadcasts one query element per row;
//! - `O += P·V`: a block of `R` rows × `CW` output columns, a loop over the keys that
//!   broadcasts one probability per row and reads one value row.
//!
//! Between them the online softmax runs row by row on the score tile in place, with a
//! polynomial `exp2` (scores are pre-scaled by `log2 e / sqrt(d)`). Tiles that every row
//! sees entirely are never masked; only the diagonal and window-edge tiles are.

use super::exp2::{exp2_neg, exp2_sub_sum, max_of};
use crate::problem::Pattern;

/// Query rows per tile (one task); a multiple of every row block below.
pub const TILE_Q: usize = 48;
/// Keys per tile; a multiple of every key block below.
pub const TILE_K: usize = 64;
/// Output columns per P·V block; the head dimension is padded to a multiple of it.
pub const COL_BLOCK: usize = 16;

/// Multiply-add as the instruction set does it best: fused where FMA exists, plain
/// otherwise (a fused multiply-add without hardware support is a slow library call).
pub trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// Hardware fused multiply-add.
pub struct Fused;
/// Separate multiply and add.
pub struct Unfused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

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
/// `R_QK`/`KW`: the rows × keys block of S = Q·Kᵀ; `R_PV`: the rows of the P·V block.
#[inline(always)]
pub fn query_tile<M: MulAdd, const R_QK: usize, const KW: usize, const R_PV: usize>(
    h: &HeadData,
    row0: usize,
    out: &mut [f32],
    sc: &mut Scratch,
) {
    let (n, d, dp) = (h.n, h.d, h.dp);
    let rows = out.len() / d;
    debug_assert!(rows >= 1 && rows <= TILE_Q && row0 + rows <= n);

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
        // Blocks of KW keys covering the kn real keys.
        let kw_blocks = kn.div_ceil(KW);

        for r in (0..TILE_Q).step_by(R_QK) {
            for kb in 0..kw_blocks {
                qk_block::<M, R_QK, KW>(&sc.q[r * d..], d, kt, kb * KW, &mut sc.s[r * TILE_K..]);
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
            let alpha = exp2_neg(m_old - m_new);
            let sum = exp2_sub_sum(&mut srow[a..e], m_new);
            srow[..a].fill(0.0);
            srow[e..].fill(0.0);
            sc.l[r] = sc.l[r] * alpha + sum;
            sc.m[r] = m_new;
            if alpha != 1.0 {
                sc.o[r * dp..][..dp].iter_mut().for_each(|x| *x *= alpha);
            }
        }

        for r in (0..TILE_Q).step_by(R_PV) {
            for c in (0..dp).step_by(COL_BLOCK) {
                pv_block::<M, R_PV>(&sc.s[r * TILE_K..], kn, v, dp, c, &mut sc.o[r * dp..]);
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

/// `S[r][t0 + x] = Σ_c Q[r][c] · Kᵀ[c][t0 + x]` for `r < R`, `x < KW`.
/// `q`: rows of stride `d`; `kt`: `[d][TILE_K]`; `s`: rows of stride `TILE_K`.
#[inline(always)]
fn qk_block<M: MulAdd, const R: usize, const KW: usize>(
    q: &[f32],
    d: usize,
    kt: &[f32],
    t0: usize,
    s: &mut [f32],
) {
    let q = &q[..R * d];
    let mut acc = [[0.0f32; KW]; R];
    for c in 0..d {
        let k: &[f32; KW] = kt[c * TILE_K + t0..][..KW].try_into().unwrap();
        for r in 0..R {
            let qv = q[r * d + c];
            for x in 0..KW {
                acc[r][x] = M::mul_add(qv, k[x], acc[r][x]);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        s[r * TILE_K + t0..][..KW].copy_from_slice(a);
    }
}

/// `O[r][c0 + x] += Σ_{t < kn} P[r][t] · V[t][c0 + x]` for `r < R`, `x < COL_BLOCK`.
/// `p`: rows of stride `TILE_K`; `v`: rows of stride `dp`; `o`: rows of stride `dp`.
#[inline(always)]
fn pv_block<M: MulAdd, const R: usize>(
    p: &[f32],
    kn: usize,
    v: &[f32],
    dp: usize,
    c0: usize,
    o: &mut [f32],
) {
    let mut acc = [[0.0f32; COL_BLOCK]; R];
    for (r, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&o[r * dp + c0..][..COL_BLOCK]);
    }
    let p = &p[..R * TILE_K];
    for t in 0..kn {
        let vr: &[f32; COL_BLOCK] = v[t * dp + c0..][..COL_BLOCK].try_into().unwrap();
        for r in 0..R {
            let pv = p[r * TILE_K + t];
            for x in 0..COL_BLOCK {
                acc[r][x] = M::mul_add(pv, vr[x], acc[r][x]);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        o[r * dp + c0..][..COL_BLOCK].copy_from_slice(a);
    }
}
