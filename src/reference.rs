//! The fp64 CPU reference: the oracle every backend is checked against.
//!
//! Plain loops, no tiling, no tricks: for each (batch, effective head, query row) the
//! scores of the visible keys, a softmax with the row maximum subtracted, and the
//! weighted sum of values. Inputs are the f32 values a kernel reads (already rounded
//! to the storage type); all arithmetic is f64.

use rayon::prelude::*;

use crate::problem::AttnShape;

/// Full output `O: [B, H_eff, N, d]` for `Q: [B, H_q, N, d]`, `K, V: [B, H_kv, N, d]`.
pub fn attention(shape: &AttnShape, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f64> {
    let rows: Vec<usize> = (0..shape.seq_len).collect();
    attention_rows(shape, q, k, v, &rows)
}

/// Selected query rows only: `O: [B, H_eff, rows.len(), d]`, row `r` of the result is
/// query position `rows[r]`. Used by `verify` at lengths where the full output is too slow.
pub fn attention_rows(
    shape: &AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    rows: &[usize],
) -> Vec<f64> {
    let (n, d) = (shape.seq_len, shape.d_head);
    let (hq, hkv, heff) = (
        shape.heads.q as usize,
        shape.heads.kv as usize,
        shape.heads.eff() as usize,
    );
    assert_eq!(q.len(), shape.q_len(), "Q has the wrong length");
    assert_eq!(k.len(), shape.kv_len(), "K has the wrong length");
    assert_eq!(v.len(), shape.kv_len(), "V has the wrong length");
    let scale = shape.scale();

    assert!(
        rows.iter().all(|&i| i < n),
        "a row is out of range for N = {n}"
    );
    let mut out = vec![0.0f64; shape.batch * heff * rows.len() * d];
    // One (batch, effective head) slab of the output per task: O[b, j]: [rows, d].
    let slab = rows.len() * d;
    out.par_chunks_mut(slab.max(1))
        .enumerate()
        .for_each(|(bj, out_bj)| {
            let (b, j) = (bj / heff, bj % heff);
            let qh = shape.heads.q_head(j as u32) as usize;
            let kvh = shape.heads.kv_head(j as u32) as usize;
            // Q[b, qh]: [N, d], K[b, kvh], V[b, kvh]: [N, d]
            let q_head = &q[(b * hq + qh) * n * d..][..n * d];
            let k_head = &k[(b * hkv + kvh) * n * d..][..n * d];
            let v_head = &v[(b * hkv + kvh) * n * d..][..n * d];
            let mut scores: Vec<f64> = Vec::new();
            for (r, &i) in rows.iter().enumerate() {
                let keys = shape.pattern.visible(i, n);
                // scores[t] = scale · q_i · k_t for visible keys t
                scores.clear();
                for t in keys.clone() {
                    let mut dot = 0.0f64;
                    for c in 0..d {
                        dot += q_head[i * d + c] as f64 * k_head[t * d + c] as f64;
                    }
                    scores.push(dot * scale);
                }
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0f64;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                // O[b, j, r, :] = Σ_t p_t · v_t
                let o = &mut out_bj[r * d..][..d];
                for (t, p) in keys.zip(scores.iter()) {
                    for c in 0..d {
                        o[c] += p / sum * v_head[t * d + c] as f64;
                    }
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Heads, Pattern};

    /// An independent formula: materialise the whole N×N score matrix with a mask of
    /// -inf, softmax by exp/sum without max subtraction (safe at these magnitudes), and
    /// expand K/V by explicit head copies the way `repeat_interleave` would.
    fn naive(shape: &AttnShape, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f64> {
        let (n, d) = (shape.seq_len, shape.d_head);
        let h = shape.heads;
        let heff = h.eff() as usize;
        let mut out = Vec::new();
        for b in 0..shape.batch {
            for j in 0..heff {
                // explicit expansion: query heads tiled (q.repeat), kv heads grouped (repeat_interleave)
                let qh = if h.q >= h.kv { j } else { j % h.q as usize };
                let kvh = j * h.kv as usize / heff;
                let at = |t: &[f32], heads: usize, hh: usize, i: usize, c: usize| {
                    t[((b * heads + hh) * n + i) * d + c] as f64
                };
                for i in 0..n {
                    let mut w = vec![0.0f64; n];
                    for (t, wt) in w.iter_mut().enumerate() {
                        let allowed = match shape.pattern {
                            Pattern::Full => true,
                            Pattern::Causal => t <= i,
                            Pattern::Window(win) => t <= i && i - t < win as usize,
                        };
                        if allowed {
                            let s: f64 = (0..d)
                                .map(|c| {
                                    at(q, h.q as usize, qh, i, c) * at(k, h.kv as usize, kvh, t, c)
                                })
                                .sum();
                            *wt = (s / (d as f64).sqrt()).exp();
                        }
                    }
                    let z: f64 = w.iter().sum();
                    for c in 0..d {
                        out.push(
                            (0..n)
                                .map(|t| w[t] / z * at(v, h.kv as usize, kvh, t, c))
                                .sum(),
                        );
                    }
                }
            }
        }
        out
    }

    fn data(len: usize, salt: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(salt) >> 8) % 2001) as f32
                    / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_naive_formula_on_every_head_layout_and_pattern() {
        for (q, kv) in [(4, 4), (4, 2), (4, 1), (2, 4), (1, 4)] {
            for pattern in [
                Pattern::Full,
                Pattern::Causal,
                Pattern::Window(3),
                Pattern::Window(50),
            ] {
                for n in [1, 7, 13] {
                    let shape = AttnShape {
                        batch: 2,
                        seq_len: n,
                        heads: Heads { total: 4, q, kv },
                        d_head: 5,
                        pattern,
                    };
                    let (qd, kd, vd) = (
                        data(shape.q_len(), 1),
                        data(shape.kv_len(), 2),
                        data(shape.kv_len(), 3),
                    );
                    let got = attention(&shape, &qd, &kd, &vd);
                    let want = naive(&shape, &qd, &kd, &vd);
                    assert_eq!(got.len(), want.len());
                    for (a, b) in got.iter().zip(&want) {
                        assert!(
                            (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                            "{q}/{kv} {pattern} n={n}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn selected_rows_equal_full_rows() {
        let shape = AttnShape {
            batch: 1,
            seq_len: 20,
            heads: Heads {
                total: 2,
                q: 2,
                kv: 1,
            },
            d_head: 4,
            pattern: Pattern::Causal,
        };
        let (qd, kd, vd) = (
            data(shape.q_len(), 4),
            data(shape.kv_len(), 5),
            data(shape.kv_len(), 6),
        );
        let full = attention(&shape, &qd, &kd, &vd);
        let rows = [0usize, 19, 7];
        let some = attention_rows(&shape, &qd, &kd, &vd, &rows);
        for j in 0..2 {
            for (r, &i) in rows.iter().enumerate() {
                assert_eq!(some[(j * 3 + r) * 4..][..4], full[(j * 20 + i) * 4..][..4]);
            }
        }
    }

    #[test]
    fn first_causal_row_copies_first_value() {
        let shape = AttnShape {
            batch: 1,
            seq_len: 5,
            heads: Heads {
                total: 1,
                q: 1,
                kv: 1,
            },
            d_head: 3,
            pattern: Pattern::Causal,
        };
        let (qd, kd, vd) = (data(15, 7), data(15, 8), data(15, 9));
        let out = attention(&shape, &qd, &kd, &vd);
        for c in 0..3 {
            assert_eq!(out[c], vd[c] as f64);
        }
    }
}
