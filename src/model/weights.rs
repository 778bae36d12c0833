//! Random (seeded) weights and inputs of the layer and model scopes, as f32 values
//! already rounded to the storage type. Scaled so activations stay of order one:
//! matrices uniform with variance 1/fan_in, norm gains near 1, embeddings variance 1.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::inputs::fill;
use crate::problem::{Dtype, ModelDims, Problem};

/// A row-major matrix used as `x · W` (`rows` = input features, `cols` = output features).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    /// Uniform with variance 1/rows, rounded to `dtype`.
    pub fn random(rows: usize, cols: usize, dtype: Dtype, rng: &mut StdRng) -> Self {
        let scale = (1.0 / rows as f32).sqrt();
        let data = fill(rows * cols, Dtype::F32, rng)
            .into_iter()
            .map(|x| dtype.round(x * scale))
            .collect();
        Matrix { rows, cols, data }
    }
}

/// Weights of one attention layer (`wq: [d, H_q·dh]`, `wk, wv: [d, H_kv·dh]`, `wo: [H_eff·dh, d]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AttnWeights {
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    pub wo: Matrix,
}

/// One decoder layer: the attention layer with its norm, and the SwiGLU feed-forward with its norm.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub attn: AttnWeights,
    pub ffn_norm: Vec<f32>,
    /// `[d, d_ff]`
    pub w_gate: Matrix,
    /// `[d, d_ff]`
    pub w_up: Matrix,
    /// `[d_ff, d]`
    pub w_down: Matrix,
}

/// The whole decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelWeights {
    /// `[vocab, d]`
    pub embed: Matrix,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Vec<f32>,
    /// `[d, vocab]`
    pub lm_head: Matrix,
}

fn gains(d: usize, dtype: Dtype, rng: &mut StdRng) -> Vec<f32> {
    (0..d)
        .map(|_| dtype.round(rng.random_range(0.8f32..1.2)))
        .collect()
}

impl AttnWeights {
    /// The projections of one attention layer with the shape of `p`.
    pub fn random(p: &Problem, rng: &mut StdRng) -> Self {
        let (d, dh, h) = (p.d_model, p.shape.d_head, p.shape.heads);
        AttnWeights {
            wq: Matrix::random(d, h.q as usize * dh, p.dtype, rng),
            wk: Matrix::random(d, h.kv as usize * dh, p.dtype, rng),
            wv: Matrix::random(d, h.kv as usize * dh, p.dtype, rng),
            wo: Matrix::random(h.eff() as usize * dh, d, p.dtype, rng),
        }
    }
}

impl ModelWeights {
    /// The weights of a decoder of size `dims` with the attention shape of `p`.
    pub fn random(p: &Problem, dims: ModelDims, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let d = p.d_model;
        let layers = (0..dims.layers)
            .map(|_| LayerWeights {
                attn_norm: gains(d, p.dtype, &mut rng),
                attn: AttnWeights::random(p, &mut rng),
                ffn_norm: gains(d, p.dtype, &mut rng),
                w_gate: Matrix::random(d, dims.d_ff, p.dtype, &mut rng),
                w_up: Matrix::random(d, dims.d_ff, p.dtype, &mut rng),
                w_down: Matrix::random(dims.d_ff, d, p.dtype, &mut rng),
            })
            .collect();
        let mut embed = Matrix::random(dims.vocab, d, p.dtype, &mut rng);
        // Embeddings have variance 1, not 1/vocab.
        let up = (dims.vocab as f32).sqrt();
        embed
            .data
            .iter_mut()
            .for_each(|x| *x = p.dtype.round(*x * up));
        ModelWeights {
            embed,
            layers,
            final_norm: gains(d, p.dtype, &mut rng),
            lm_head: Matrix::random(d, dims.vocab, p.dtype, &mut rng),
        }
    }

    /// Bytes of all weights in the storage type.
    pub fn bytes(&self, dtype: Dtype) -> u64 {
        let m = |x: &Matrix| x.data.len() as u64;
        let per_layer: u64 = self
            .layers
            .iter()
            .map(|l| {
                m(&l.attn.wq)
                    + m(&l.attn.wk)
                    + m(&l.attn.wv)
                    + m(&l.attn.wo)
                    + m(&l.w_gate)
                    + m(&l.w_up)
                    + m(&l.w_down)
                    + 2 * l.attn_norm.len() as u64
            })
            .sum();
        (per_layer + m(&self.embed) + m(&self.lm_head) + self.final_norm.len() as u64)
            * dtype.bytes()
    }
}

/// Random token ids `[B, N]` in `0..vocab`.
pub fn random_tokens(batch: usize, seq_len: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x70CE_0000);
    (0..batch * seq_len)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect()
}

/// A random layer input `x: [B, N, d]` (variance close to 1, rounded to `dtype`).
pub fn random_activations(p: &Problem, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xAC71_0000);
    fill(
        p.shape.batch * p.shape.seq_len * p.d_model,
        p.dtype,
        &mut rng,
    )
}

/// The weights and input of one layer- or model-scope step, as both executors use them.
#[derive(Debug, Clone, PartialEq)]
pub enum StepData {
    /// Layer scope: the projections and the layer input `X: [B, N, d]`.
    Layer { weights: AttnWeights, x: Vec<f32> },
    /// Model scope: all weights and the token ids `[B, N]`.
    Model {
        weights: Box<ModelWeights>,
        tokens: Vec<u32>,
    },
}

impl StepData {
    /// Draws the step data of `p` from `seed` (the same for every backend). `None` at kernel scope.
    pub fn random(p: &Problem, seed: u64) -> Option<StepData> {
        match p.scope {
            crate::problem::Scope::Kernel => None,
            crate::problem::Scope::Layer => {
                let mut rng = StdRng::seed_from_u64(seed);
                Some(StepData::Layer {
                    weights: AttnWeights::random(p, &mut rng),
                    x: random_activations(p, seed),
                })
            }
            crate::problem::Scope::Model(dims) => Some(StepData::Model {
                weights: Box::new(ModelWeights::random(p, dims, seed)),
                tokens: random_tokens(p.shape.batch, p.shape.seq_len, dims.vocab, seed),
            }),
        }
    }

    /// A weight tensor by name, as f32 values of the storage type (`None` if this step has no such weight).
    pub fn weight(&self, w: crate::model::program::Weight) -> Option<&[f32]> {
        use crate::model::program::Weight as W;
        match (self, w) {
            (StepData::Layer { weights, .. }, W::Wq(0)) => Some(&weights.wq.data),
            (StepData::Layer { weights, .. }, W::Wk(0)) => Some(&weights.wk.data),
            (StepData::Layer { weights, .. }, W::Wv(0)) => Some(&weights.wv.data),
            (StepData::Layer { weights, .. }, W::Wo(0)) => Some(&weights.wo.data),
            (StepData::Layer { .. }, _) => None,
            (StepData::Model { weights, .. }, w) => {
                let layer = |l: usize| weights.layers.get(l);
                match w {
                    W::Embed => Some(&weights.embed.data),
                    W::FinalNorm => Some(&weights.final_norm),
                    W::LmHead => Some(&weights.lm_head.data),
                    W::AttnNorm(l) => layer(l).map(|x| &x.attn_norm[..]),
                    W::Wq(l) => layer(l).map(|x| &x.attn.wq.data[..]),
                    W::Wk(l) => layer(l).map(|x| &x.attn.wk.data[..]),
                    W::Wv(l) => layer(l).map(|x| &x.attn.wv.data[..]),
                    W::Wo(l) => layer(l).map(|x| &x.attn.wo.data[..]),
                    W::FfnNorm(l) => layer(l).map(|x| &x.ffn_norm[..]),
                    W::Gate(l) => layer(l).map(|x| &x.w_gate.data[..]),
                    W::Up(l) => layer(l).map(|x| &x.w_up.data[..]),
                    W::Down(l) => layer(l).map(|x| &x.w_down.data[..]),
                }
            }
        }
    }
}
