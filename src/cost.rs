//! Cost model of one attention forward pass: FLOPs, exponentials, minimum bytes moved.
//!
//! Convention (FlashAttention): forward FLOPs = 4 · B · H_eff · d · (visible (query, key) pairs),
//! two multiply-adds per pair and feature, one for Q·Kᵀ and one for P·V. Visible pairs are
//! counted exactly for every pattern (closed forms, checked against brute force in tests).

use crate::problem::{AttnShape, Dtype, Heads, Pattern};

/// Number of (query, key) pairs a pattern lets through for one head of `n` tokens.
pub fn visible_pairs(pattern: Pattern, n: u64) -> u64 {
    match pattern {
        Pattern::Full => n * n,
        Pattern::Causal => n * (n + 1) / 2,
        Pattern::Window(w) => {
            let w = w as u64;
            if w >= n {
                n * (n + 1) / 2
            } else {
                // Rows 0..w see i+1 keys, the other n-w rows see w keys.
                w * (w + 1) / 2 + (n - w) * w
            }
        }
    }
}

/// Costs of one forward pass of one attention call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// Floating-point operations by the FlashAttention convention.
    pub flops: f64,
    /// Exponentials evaluated by a softmax that visits every visible pair once.
    pub exps: f64,
    /// Minimum bytes moved: Q, K, V read once and O written once, in the storage type.
    pub bytes: f64,
}

/// The cost of one attention forward pass of `shape` stored as `dtype`.
pub fn attention(shape: &AttnShape, dtype: Dtype) -> Cost {
    let pairs = visible_pairs(shape.pattern, shape.seq_len as u64) as f64;
    let heads = shape.batch as f64 * shape.heads.eff() as f64;
    let d = shape.d_head as f64;
    let elems = (shape.q_len() + 2 * shape.kv_len() + shape.o_len()) as f64;
    Cost {
        flops: 4.0 * heads * d * pairs,
        exps: heads * pairs,
        bytes: elems * dtype.bytes() as f64,
    }
}

/// KV-cache bytes per token and layer: K and V of every key/value head.
pub fn kv_cache_bytes_per_token(heads: Heads, d_head: usize, dtype: Dtype) -> u64 {
    2 * heads.kv as u64 * d_head as u64 * dtype.bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Heads;

    fn brute_pairs(p: Pattern, n: usize) -> u64 {
        (0..n).map(|i| p.visible(i, n).len() as u64).sum()
    }

    #[test]
    fn closed_forms_match_brute_force() {
        for n in [1usize, 2, 7, 64, 129, 1000] {
            for p in [
                Pattern::Full,
                Pattern::Causal,
                Pattern::Window(1),
                Pattern::Window(3),
                Pattern::Window(128),
                Pattern::Window(5000),
            ] {
                assert_eq!(visible_pairs(p, n as u64), brute_pairs(p, n), "{p} n={n}");
            }
        }
    }

    #[test]
    fn flops_follow_effective_heads() {
        let shape = |q, kv| AttnShape {
            batch: 2,
            seq_len: 100,
            heads: Heads { total: 16, q, kv },
            d_head: 16,
            pattern: Pattern::Causal,
        };
        let mha = attention(&shape(16, 16), Dtype::Bf16);
        let xsqa = attention(&shape(4, 4), Dtype::Bf16);
        let rsqa = attention(&shape(4, 8), Dtype::Bf16);
        assert_eq!(mha.flops, 4.0 * 2.0 * 16.0 * 16.0 * 5050.0);
        assert_eq!(mha.flops / xsqa.flops, 4.0);
        assert_eq!(mha.flops / rsqa.flops, 2.0);
        assert_eq!(mha.exps, 2.0 * 16.0 * 5050.0);
        // Q (16 heads) + K, V (16 each) + O (16): 64 head-slabs of 100 x 16 bf16 values, times batch 2.
        assert_eq!(mha.bytes, 2.0 * 64.0 * 100.0 * 16.0 * 2.0);
        // rSQA: Q 4, K 8, V 8, O 8 heads.
        assert_eq!(rsqa.bytes, 2.0 * 28.0 * 100.0 * 16.0 * 2.0);
    }

    #[test]
    fn kv_cache_scales_with_kv_heads() {
        let b = |kv| {
            kv_cache_bytes_per_token(
                Heads {
                    total: 16,
                    q: 16,
                    kv,
                },
                16,
                Dtype::Bf16,
            )
        };
        assert_eq!(b(16), 2 * 16 * 16 * 2);
        assert_eq!(b(16) / b(4), 4);
        assert_eq!(b(1), 64);
    }
}
