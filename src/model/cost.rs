//! Cost of one forward step of each scope: FLOPs of the GEMMs and of attention
//! (elementwise work — norms, RoPE, SwiGLU's product, softmax — is not counted, as in
//! the FlashAttention convention), and the minimum bytes moved.

use crate::cost;
use crate::problem::{Problem, Scope};

/// Costs of one forward step of a problem at its scope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScopeCost {
    /// All FLOPs of the step.
    pub flops: f64,
    /// The FLOPs of attention alone (a subset of `flops`).
    pub attn_flops: f64,
    /// Minimum bytes: every GEMM and attention call reads its operands and writes its
    /// result once in the storage type; weights are read once per use.
    pub bytes: f64,
}

/// FLOPs and bytes of `x[m, k] · w[k, n]` stored in `bytes_per` bytes per element.
fn gemm(m: f64, k: f64, n: f64, bytes_per: f64) -> (f64, f64) {
    (2.0 * m * k * n, (m * k + k * n + m * n) * bytes_per)
}

/// The cost of one forward step of `p` at its scope.
pub fn problem_cost(p: &Problem) -> ScopeCost {
    let s = &p.shape;
    let attn = cost::attention(s, p.dtype);
    let e = p.dtype.bytes() as f64;
    let t = (s.batch * s.seq_len) as f64;
    let d = p.d_model as f64;
    let dh = s.d_head as f64;
    let (hq, hkv, heff) = (s.heads.q as f64, s.heads.kv as f64, s.heads.eff() as f64);

    // One attention layer: Q, K, V projections, attention, output projection.
    let parts = [
        gemm(t, d, hq * dh, e),
        gemm(t, d, hkv * dh, e),
        gemm(t, d, hkv * dh, e),
        gemm(t, heff * dh, d, e),
    ];
    let layer_flops = parts.iter().map(|x| x.0).sum::<f64>() + attn.flops;
    let layer_bytes = parts.iter().map(|x| x.1).sum::<f64>() + attn.bytes;

    match p.scope {
        Scope::Kernel => ScopeCost {
            flops: attn.flops,
            attn_flops: attn.flops,
            bytes: attn.bytes,
        },
        Scope::Layer => ScopeCost {
            flops: layer_flops,
            attn_flops: attn.flops,
            bytes: layer_bytes,
        },
        Scope::Model(m) => {
            let ff = m.d_ff as f64;
            let ffn = [gemm(t, d, ff, e), gemm(t, d, ff, e), gemm(t, ff, d, e)];
            let head = gemm(t, d, m.vocab as f64, e);
            let layers = m.layers as f64;
            ScopeCost {
                flops: layers * (layer_flops + ffn.iter().map(|x| x.0).sum::<f64>()) + head.0,
                attn_flops: layers * attn.flops,
                bytes: layers * (layer_bytes + ffn.iter().map(|x| x.1).sum::<f64>()) + head.1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{AttnShape, Dtype, Heads, ModelDims, Pattern};

    fn problem(scope: Scope, q: u32, kv: u32) -> Problem {
        Problem {
            variant: "x".into(),
            d_model: 8,
            shape: AttnShape {
                batch: 2,
                seq_len: 3,
                heads: Heads { total: 4, q, kv },
                d_head: 2,
                pattern: Pattern::Causal,
            },
            dtype: Dtype::Bf16,
            scope,
        }
    }

    #[test]
    fn layer_flops_by_hand() {
        // T = 6 tokens, d = 8, d_head = 2, H_q = 4, H_kv = 2.
        // Q: 2·6·8·8 = 768; K, V: 2·6·8·4 = 384 each; O proj: 2·6·8·8 = 768.
        // Attention: 4 · B(2) · H_eff(4) · d(2) · pairs(6) = 384.
        let c = problem_cost(&problem(Scope::Layer, 4, 2));
        assert_eq!(c.flops, 768.0 + 384.0 + 384.0 + 768.0 + 384.0);
        assert_eq!(c.attn_flops, 384.0);
    }

    #[test]
    fn rsqa_output_projection_reads_kv_heads() {
        // H_q = 1, H_kv = 2: Q 2·6·8·2 = 192, K,V 2·6·8·4 = 384 each, O proj from H_eff·2 = 4: 384.
        // Attention: 4·2·2·2·6 = 192.
        let c = problem_cost(&problem(Scope::Layer, 1, 2));
        assert_eq!(c.flops, 192.0 + 384.0 + 384.0 + 384.0 + 192.0);
    }

    #[test]
    fn model_flops_by_hand() {
        let dims = ModelDims {
            layers: 3,
            d_ff: 5,
            vocab: 7,
        };
        let layer = problem_cost(&problem(Scope::Layer, 4, 2)).flops;
        // FFN: gate and up 2·6·8·5 = 480 each, down 480. LM head: 2·6·8·7 = 672.
        let c = problem_cost(&problem(Scope::Model(dims), 4, 2));
        assert_eq!(c.flops, 3.0 * (layer + 3.0 * 480.0) + 672.0);
        assert_eq!(c.attn_flops, 3.0 * 384.0);
        let k = problem_cost(&problem(Scope::Kernel, 4, 2));
        assert_eq!(k.flops, k.attn_flops);
        assert_eq!(
            k.bytes,
            crate::cost::attention(&problem(Scope::Kernel, 4, 2).shape, Dtype::Bf16).bytes
        );
    }
}
