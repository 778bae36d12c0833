//! The layer and model forward steps as a flat program of operations on named buffers.
//!
//! One program, two executors: the CUDA backend maps each op to a cuBLAS GEMM or a
//! kernel of `cuda/model.cu` / the attention kernel; `model::host` runs the same ops on
//! the CPU with the simulator's kernels, so the orchestration the GPU follows (order,
//! shapes, head layouts, buffer reuse) is tested on machines without a GPU.
//!
//! Activation buffers are allocated once and reused by every layer; the residual
//! stream `H` is f32, every other activation is stored in the problem's dtype.

use crate::problem::{Problem, Scope};

/// A weight tensor of the model (`l` = layer index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weight {
    Embed,
    AttnNorm(usize),
    Wq(usize),
    Wk(usize),
    Wv(usize),
    Wo(usize),
    FfnNorm(usize),
    Gate(usize),
    Up(usize),
    Down(usize),
    FinalNorm,
    LmHead,
}

/// An activation buffer. Sizes in elements are given by [`Program::len`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Buf {
    /// Token ids `[B, N]` (i32).
    Tokens,
    /// The f32 residual stream `[B, N, d]`.
    H,
    /// A normalised activation or the layer input `[B, N, d]`.
    X,
    /// Projections, token-major: `[B, N, H_q·dh]`, `[B, N, H_kv·dh]`.
    Q,
    K,
    V,
    /// Projections split into heads: `[B, H, N, dh]` (RoPE applied to Q and K).
    Qh,
    Kh,
    Vh,
    /// Attention output `[B, H_eff, N, dh]`, and merged back `[B, N, H_eff·dh]`.
    O,
    Om,
    /// Output of a layer or feed-forward block `[B, N, d]`.
    A,
    /// Feed-forward hidden `[B, N, d_ff]`.
    Gate,
    Up,
    Act,
    /// Logits `[B, N, vocab]`.
    Logits,
}

/// One operation of a forward step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `H[t] = embed[tokens[t]]`.
    Embed,
    /// `X = rmsnorm(H) · g`.
    RmsNorm { gain: Weight },
    /// `out[m, n] = input[m, k] · w[k, n]` with m = B·N tokens.
    Gemm {
        input: Buf,
        w: Weight,
        out: Buf,
        k: usize,
        n: usize,
    },
    /// `[B, N, heads·dh]` → `[B, heads, N, dh]`, rotary embedding when `rope`.
    SplitHeads {
        input: Buf,
        out: Buf,
        heads: usize,
        rope: bool,
    },
    /// `O = attention(Qh, Kh, Vh)` with the problem's heads and pattern.
    Attention,
    /// `Om = merge(O)`.
    MergeHeads,
    /// `H += input`.
    Residual { input: Buf },
    /// `Act = silu(Gate) · Up`.
    Swiglu,
}

/// The forward step of a layer- or model-scope problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub ops: Vec<Op>,
    /// The buffer holding the step's result (layer: `A`; model: `Logits`).
    pub output: Buf,
    tokens: usize,
    d_model: usize,
    d_head: usize,
    heads: (usize, usize, usize),
    d_ff: usize,
    vocab: usize,
}

impl Program {
    /// The program of `p` (kernel scope has none).
    pub fn of(p: &Problem) -> Option<Program> {
        let s = &p.shape;
        let (hq, hkv, heff) = (
            s.heads.q as usize,
            s.heads.kv as usize,
            s.heads.eff() as usize,
        );
        let (d, dh) = (p.d_model, s.d_head);
        let attn = |l: usize| {
            vec![
                Op::Gemm {
                    input: Buf::X,
                    w: Weight::Wq(l),
                    out: Buf::Q,
                    k: d,
                    n: hq * dh,
                },
                Op::Gemm {
                    input: Buf::X,
                    w: Weight::Wk(l),
                    out: Buf::K,
                    k: d,
                    n: hkv * dh,
                },
                Op::Gemm {
                    input: Buf::X,
                    w: Weight::Wv(l),
                    out: Buf::V,
                    k: d,
                    n: hkv * dh,
                },
                Op::SplitHeads {
                    input: Buf::Q,
                    out: Buf::Qh,
                    heads: hq,
                    rope: true,
                },
                Op::SplitHeads {
                    input: Buf::K,
                    out: Buf::Kh,
                    heads: hkv,
                    rope: true,
                },
                Op::SplitHeads {
                    input: Buf::V,
                    out: Buf::Vh,
                    heads: hkv,
                    rope: false,
                },
                Op::Attention,
                Op::MergeHeads,
                Op::Gemm {
                    input: Buf::Om,
                    w: Weight::Wo(l),
                    out: Buf::A,
                    k: heff * dh,
                    n: d,
                },
            ]
        };
        let base = |ops, output, d_ff, vocab| Program {
            ops,
            output,
            tokens: s.batch * s.seq_len,
            d_model: d,
            d_head: dh,
            heads: (hq, hkv, heff),
            d_ff,
            vocab,
        };
        match p.scope {
            Scope::Kernel => None,
            Scope::Layer => Some(base(attn(0), Buf::A, 0, 0)),
            Scope::Model(m) => {
                let mut ops = vec![Op::Embed];
                for l in 0..m.layers {
                    ops.push(Op::RmsNorm {
                        gain: Weight::AttnNorm(l),
                    });
                    ops.extend(attn(l));
                    ops.push(Op::Residual { input: Buf::A });
                    ops.push(Op::RmsNorm {
                        gain: Weight::FfnNorm(l),
                    });
                    ops.push(Op::Gemm {
                        input: Buf::X,
                        w: Weight::Gate(l),
                        out: Buf::Gate,
                        k: d,
                        n: m.d_ff,
                    });
                    ops.push(Op::Gemm {
                        input: Buf::X,
                        w: Weight::Up(l),
                        out: Buf::Up,
                        k: d,
                        n: m.d_ff,
                    });
                    ops.push(Op::Swiglu);
                    ops.push(Op::Gemm {
                        input: Buf::Act,
                        w: Weight::Down(l),
                        out: Buf::A,
                        k: m.d_ff,
                        n: d,
                    });
                    ops.push(Op::Residual { input: Buf::A });
                }
                ops.push(Op::RmsNorm {
                    gain: Weight::FinalNorm,
                });
                ops.push(Op::Gemm {
                    input: Buf::X,
                    w: Weight::LmHead,
                    out: Buf::Logits,
                    k: d,
                    n: m.vocab,
                });
                Some(base(ops, Buf::Logits, m.d_ff, m.vocab))
            }
        }
    }

    /// Tokens of the step, B·N (the `m` of every GEMM).
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Elements of a buffer.
    pub fn len(&self, buf: Buf) -> usize {
        let (hq, hkv, heff) = self.heads;
        let per_token = match buf {
            Buf::Tokens => 1,
            Buf::H | Buf::X | Buf::A => self.d_model,
            Buf::Q | Buf::Qh => hq * self.d_head,
            Buf::K | Buf::V | Buf::Kh | Buf::Vh => hkv * self.d_head,
            Buf::O | Buf::Om => heff * self.d_head,
            Buf::Gate | Buf::Up | Buf::Act => self.d_ff,
            Buf::Logits => self.vocab,
        };
        per_token * self.tokens
    }

    /// Every buffer the program touches, sorted (allocation order).
    pub fn buffers(&self) -> Vec<Buf> {
        let mut out = vec![self.output];
        let mut add = |b: Buf| {
            if !out.contains(&b) {
                out.push(b)
            }
        };
        for op in &self.ops {
            match *op {
                Op::Embed => {
                    add(Buf::Tokens);
                    add(Buf::H)
                }
                Op::RmsNorm { .. } => {
                    add(Buf::H);
                    add(Buf::X)
                }
                Op::Gemm { input, out, .. } => {
                    add(input);
                    add(out)
                }
                Op::SplitHeads { input, out, .. } => {
                    add(input);
                    add(out)
                }
                Op::Attention => [Buf::Qh, Buf::Kh, Buf::Vh, Buf::O]
                    .into_iter()
                    .for_each(&mut add),
                Op::MergeHeads => [Buf::O, Buf::Om].into_iter().for_each(&mut add),
                Op::Residual { input } => {
                    add(Buf::H);
                    add(input)
                }
                Op::Swiglu => [Buf::Gate, Buf::Up, Buf::Act]
                    .into_iter()
                    .for_each(&mut add),
            }
        }
        out.sort();
        out
    }

    /// Bytes of all activation buffers: `H` in f32, tokens in i32, the rest in `dtype_bytes`.
    pub fn activation_bytes(&self, dtype_bytes: u64) -> u64 {
        self.buffers()
            .into_iter()
            .map(|b| {
                self.len(b) as u64
                    * if matches!(b, Buf::H | Buf::Tokens) {
                        4
                    } else {
                        dtype_bytes
                    }
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{AttnShape, Dtype, Heads, ModelDims, Pattern};

    fn problem(scope: Scope) -> Problem {
        Problem {
            variant: "gqa".into(),
            d_model: 256,
            shape: AttnShape {
                batch: 1,
                seq_len: 131072,
                heads: Heads {
                    total: 16,
                    q: 16,
                    kv: 4,
                },
                d_head: 16,
                pattern: Pattern::Causal,
            },
            dtype: Dtype::Bf16,
            scope,
        }
    }

    #[test]
    fn model_program_has_every_layer_and_the_head() {
        let p = Program::of(&problem(Scope::Model(ModelDims::PAPER))).unwrap();
        assert_eq!(p.ops.iter().filter(|o| **o == Op::Attention).count(), 8);
        assert_eq!(
            p.ops
                .iter()
                .filter(|o| matches!(o, Op::Gemm { .. }))
                .count(),
            8 * 7 + 1
        );
        assert_eq!(p.ops.first(), Some(&Op::Embed));
        assert_eq!(p.output, Buf::Logits);
        assert!(Program::of(&problem(Scope::Kernel)).is_none());
    }

    #[test]
    fn paper_model_at_131k_fits_a_40gb_a100_comfortably() {
        let p = Program::of(&problem(Scope::Model(ModelDims::PAPER))).unwrap();
        let bytes = p.activation_bytes(2);
        // Logits 131072 · 10000 · 2 B = 2.6 GB dominate; the rest is a few hundred MB.
        assert!(bytes < 4_000_000_000, "{bytes}");
        assert_eq!(p.len(Buf::Logits), 131072 * 10000);
        assert_eq!(p.len(Buf::Q), 131072 * 256);
        assert_eq!(p.len(Buf::K), 131072 * 64);
    }
}
