//! The layer and model scopes in f32 on the CPU: GEMMs through `matrixmultiply`,
//! attention through a caller-supplied function (the CPU backend's fast kernel when
//! timing, the fp64 reference in tests). Small sizes; the reference for the GPU path.

use crate::model::weights::{AttnWeights, Matrix, ModelWeights};
use crate::model::{NORM_EPS, ROPE_BASE};
use crate::problem::AttnShape;

/// Attention on BHND tensors: `(shape, q, k, v) -> o`.
pub type AttentionFn<'a> = dyn FnMut(&AttnShape, &[f32], &[f32], &[f32]) -> Vec<f32> + 'a;

/// `x[m, w.rows] · w → [m, w.cols]`.
pub fn matmul(x: &[f32], m: usize, w: &Matrix) -> Vec<f32> {
    assert_eq!(x.len(), m * w.rows, "matmul: x is not [m, {}]", w.rows);
    let mut out = vec![0.0f32; m * w.cols];
    let (k, n) = (w.rows, w.cols);
    // SAFETY: the pointers cover m·k, k·n and m·n elements with the row-major strides
    // given (x: [m, k], w: [k, n], out: [m, n]), checked by the assert and allocation above.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            x.as_ptr(),
            k as isize,
            1,
            w.data.as_ptr(),
            n as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    out
}

/// RMSNorm of each row of `x: [rows, d]`: `x / sqrt(mean(x²) + eps) · g`.
pub fn rms_norm(x: &[f32], g: &[f32]) -> Vec<f32> {
    let d = g.len();
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let ms = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / d as f64;
        let inv = (1.0 / (ms + NORM_EPS).sqrt()) as f32;
        out.extend(row.iter().zip(g).map(|(v, g)| v * inv * g));
    }
    out
}

/// Rotary embedding, "rotate half", in place on `x: [B, H, N, dh]` (position = token index).
pub fn rope(x: &mut [f32], seq_len: usize, d_head: usize) {
    let half = d_head / 2;
    let freqs: Vec<f64> = (0..half)
        .map(|i| ROPE_BASE.powf(-2.0 * i as f64 / d_head as f64))
        .collect();
    for (r, row) in x.chunks_mut(d_head).enumerate() {
        let pos = (r % seq_len) as f64;
        for (i, f) in freqs.iter().enumerate() {
            let (sin, cos) = (pos * f).sin_cos();
            let (a, b) = (row[i] as f64, row[i + half] as f64);
            row[i] = (a * cos - b * sin) as f32;
            row[i + half] = (b * cos + a * sin) as f32;
        }
    }
}

/// `[B, N, H·dh]` → `[B, H, N, dh]`.
pub fn to_heads(x: &[f32], batch: usize, n: usize, heads: usize, dh: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for b in 0..batch {
        for t in 0..n {
            for h in 0..heads {
                let src = ((b * n + t) * heads + h) * dh;
                let dst = ((b * heads + h) * n + t) * dh;
                out[dst..dst + dh].copy_from_slice(&x[src..src + dh]);
            }
        }
    }
    out
}

/// `[B, H, N, dh]` → `[B, N, H·dh]`.
pub fn from_heads(x: &[f32], batch: usize, n: usize, heads: usize, dh: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for b in 0..batch {
        for h in 0..heads {
            for t in 0..n {
                let src = ((b * heads + h) * n + t) * dh;
                let dst = ((b * n + t) * heads + h) * dh;
                out[dst..dst + dh].copy_from_slice(&x[src..src + dh]);
            }
        }
    }
    out
}

/// One attention layer on `x: [B, N, d]` → `[B, N, d]`.
pub fn attention_layer(
    shape: &AttnShape,
    w: &AttnWeights,
    x: &[f32],
    attention: &mut AttentionFn,
) -> Vec<f32> {
    let (b, n, dh) = (shape.batch, shape.seq_len, shape.d_head);
    let (hq, hkv, heff) = (
        shape.heads.q as usize,
        shape.heads.kv as usize,
        shape.heads.eff() as usize,
    );
    let tokens = b * n;
    let mut q = to_heads(&matmul(x, tokens, &w.wq), b, n, hq, dh);
    let mut k = to_heads(&matmul(x, tokens, &w.wk), b, n, hkv, dh);
    let v = to_heads(&matmul(x, tokens, &w.wv), b, n, hkv, dh);
    rope(&mut q, n, dh);
    rope(&mut k, n, dh);
    let o = attention(shape, &q, &k, &v);
    matmul(&from_heads(&o, b, n, heff, dh), tokens, &w.wo)
}

/// SwiGLU feed-forward on `x: [T, d]`.
pub fn swiglu(x: &[f32], tokens: usize, gate: &Matrix, up: &Matrix, down: &Matrix) -> Vec<f32> {
    let g = matmul(x, tokens, gate);
    let u = matmul(x, tokens, up);
    let h: Vec<f32> = g
        .iter()
        .zip(&u)
        .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
        .collect();
    matmul(&h, tokens, down)
}

/// The decoder's forward step: token ids `[B, N]` → logits `[B, N, vocab]`.
pub fn model_forward(
    shape: &AttnShape,
    w: &ModelWeights,
    tokens: &[u32],
    attention: &mut AttentionFn,
) -> Vec<f32> {
    let d = w.embed.cols;
    let t = tokens.len();
    let mut h: Vec<f32> = Vec::with_capacity(t * d);
    for &tok in tokens {
        h.extend_from_slice(&w.embed.data[tok as usize * d..][..d]);
    }
    for layer in &w.layers {
        let a = attention_layer(
            shape,
            &layer.attn,
            &rms_norm(&h, &layer.attn_norm),
            attention,
        );
        h.iter_mut().zip(&a).for_each(|(h, a)| *h += a);
        let f = swiglu(
            &rms_norm(&h, &layer.ffn_norm),
            t,
            &layer.w_gate,
            &layer.w_up,
            &layer.w_down,
        );
        h.iter_mut().zip(&f).for_each(|(h, f)| *h += f);
    }
    matmul(&rms_norm(&h, &w.final_norm), t, &w.lm_head)
}
