//! The CPU layer and model scopes against straightforward fp64 formulas on tiny shapes.

use sqa_bench::model::cpu::{attention_layer, model_forward, rms_norm, rope};
use sqa_bench::model::weights::{
    random_activations, random_tokens, AttnWeights, Matrix, ModelWeights,
};
use sqa_bench::problem::{AttnShape, Dtype, Heads, ModelDims, Pattern, Problem, Scope};
use sqa_bench::reference;

use rand::SeedableRng;

fn problem(q: u32, kv: u32, pattern: Pattern, scope: Scope) -> Problem {
    Problem {
        variant: "custom".into(),
        d_model: 16,
        shape: AttnShape {
            batch: 2,
            seq_len: 9,
            heads: Heads { total: 4, q, kv },
            d_head: 4,
            pattern,
        },
        dtype: Dtype::F32,
        scope,
    }
}

// ---- fp64 formulas, written independently of src/model ----

/// x[m, k] · w[k, n] in f64.
fn mm(x: &[f64], m: usize, w: &Matrix) -> Vec<f64> {
    let (k, n) = (w.rows, w.cols);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|c| x[i * k + c] * w.data[c * n + j] as f64)
                .sum();
        }
    }
    out
}

fn norm64(x: &[f64], g: &[f32]) -> Vec<f64> {
    x.chunks(g.len())
        .flat_map(|r| {
            let rms = (r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64 + 1e-6).sqrt();
            r.iter().zip(g).map(move |(v, g)| v / rms * *g as f64)
        })
        .collect()
}

/// RoPE as a complex rotation of (x_i, x_{i+d/2}) by pos · 10000^(-2i/d), on token-major [B, N, H, dh].
fn rope64(x: &mut [f64], n: usize, heads: usize, dh: usize) {
    for (idx, head) in x.chunks_mut(dh).enumerate() {
        let pos = ((idx / heads) % n) as f64;
        for i in 0..dh / 2 {
            let angle = pos / 10000f64.powf(2.0 * i as f64 / dh as f64);
            let (re, im) = (head[i], head[i + dh / 2]);
            head[i] = re * angle.cos() - im * angle.sin();
            head[i + dh / 2] = re * angle.sin() + im * angle.cos();
        }
    }
}

/// The attention layer in f64 with token-major tensors and the head mapping spelled out.
fn layer64(p: &Problem, w: &AttnWeights, x: &[f64]) -> Vec<f64> {
    let s = &p.shape;
    let (b, n, dh) = (s.batch, s.seq_len, s.d_head);
    let (hq, hkv, heff) = (
        s.heads.q as usize,
        s.heads.kv as usize,
        s.heads.eff() as usize,
    );
    let t = b * n;
    let mut q = mm(x, t, &w.wq);
    let mut k = mm(x, t, &w.wk);
    let v = mm(x, t, &w.wv);
    rope64(&mut q, n, hq, dh);
    rope64(&mut k, n, hkv, dh);
    let mut o = vec![0.0; t * heff * dh];
    for bb in 0..b {
        for j in 0..heff {
            let (qh, kh) = (j % hq, j * hkv / heff);
            for i in 0..n {
                let keys: Vec<usize> = (0..n)
                    .filter(|&u| s.pattern.visible(i, n).contains(&u))
                    .collect();
                let score = |u: usize| {
                    (0..dh)
                        .map(|c| {
                            q[((bb * n + i) * hq + qh) * dh + c]
                                * k[((bb * n + u) * hkv + kh) * dh + c]
                        })
                        .sum::<f64>()
                        / (dh as f64).sqrt()
                };
                let m = keys.iter().map(|&u| score(u)).fold(f64::MIN, f64::max);
                let z: f64 = keys.iter().map(|&u| (score(u) - m).exp()).sum();
                for c in 0..dh {
                    o[((bb * n + i) * heff + j) * dh + c] = keys
                        .iter()
                        .map(|&u| (score(u) - m).exp() / z * v[((bb * n + u) * hkv + kh) * dh + c])
                        .sum();
                }
            }
        }
    }
    mm(&o, t, &w.wo)
}

fn ref_attention(shape: &AttnShape, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
    reference::attention(shape, q, k, v)
        .into_iter()
        .map(|x| x as f32)
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().map(|x| x.abs()).fold(0.0, f64::max);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        assert!(
            err <= tol * (1.0 + scale),
            "{what}: element {i}: {g} vs {w} (scale {scale})"
        );
    }
}

#[test]
fn attention_layer_matches_fp64_formula() {
    for (q, kv) in [(4, 4), (4, 1), (2, 4), (4, 2)] {
        for pattern in [Pattern::Full, Pattern::Causal, Pattern::Window(3)] {
            let p = problem(q, kv, pattern, Scope::Layer);
            let mut rng = rand::rngs::StdRng::seed_from_u64(3);
            let w = AttnWeights::random(&p, &mut rng);
            let x = random_activations(&p, 5);
            let got = attention_layer(&p.shape, &w, &x, &mut ref_attention);
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            assert_close(
                &got,
                &layer64(&p, &w, &x64),
                1e-5,
                &format!("layer {q}/{kv} {pattern}"),
            );
        }
    }
}

#[test]
fn model_matches_fp64_formula() {
    let dims = ModelDims {
        layers: 2,
        d_ff: 24,
        vocab: 37,
    };
    for (q, kv) in [(4, 1), (2, 4)] {
        let p = problem(q, kv, Pattern::Causal, Scope::Model(dims));
        let w = ModelWeights::random(&p, dims, 11);
        let tokens = random_tokens(p.shape.batch, p.shape.seq_len, dims.vocab, 13);
        let got = model_forward(&p.shape, &w, &tokens, &mut ref_attention);

        let d = p.d_model;
        let t = tokens.len();
        let mut h: Vec<f64> = tokens
            .iter()
            .flat_map(|&tok| {
                w.embed.data[tok as usize * d..][..d]
                    .iter()
                    .map(|&v| v as f64)
            })
            .collect();
        for l in &w.layers {
            let a = layer64(&p, &l.attn, &norm64(&h, &l.attn_norm));
            h.iter_mut().zip(&a).for_each(|(h, a)| *h += a);
            let x = norm64(&h, &l.ffn_norm);
            let (g, u) = (mm(&x, t, &l.w_gate), mm(&x, t, &l.w_up));
            let act: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g * (1.0 / (1.0 + (-g).exp())) * u)
                .collect();
            let f = mm(&act, t, &l.w_down);
            h.iter_mut().zip(&f).for_each(|(h, f)| *h += f);
        }
        let want = mm(&norm64(&h, &w.final_norm), t, &w.lm_head);
        assert_eq!(got.len(), p.shape.batch * p.shape.seq_len * dims.vocab);
        assert_close(&got, &want, 2e-5, &format!("model {q}/{kv}"));
    }
}

#[test]
fn rope_is_a_relative_rotation() {
    // Norm preserved, position 0 untouched, q·k depends only on the distance.
    let dh = 8;
    let n = 6;
    let base: Vec<f32> = (0..dh).map(|i| (i as f32 * 0.37).sin() + 0.1).collect();
    let mut x: Vec<f32> = (0..n).flat_map(|_| base.clone()).collect();
    rope(&mut x, n, dh);
    assert_eq!(&x[..dh], &base[..]);
    let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
    for row in x.chunks(dh) {
        assert!((norm(row) - norm(&base)).abs() < 1e-5);
    }
    let dot = |a: usize, b: usize| {
        x[a * dh..][..dh]
            .iter()
            .zip(&x[b * dh..][..dh])
            .map(|(p, q)| p * q)
            .sum::<f32>()
    };
    assert!((dot(1, 3) - dot(2, 4)).abs() < 1e-5);
    assert!(
        (dot(0, 5) - dot(0, 4)).abs() > 1e-4,
        "rotation must change with distance"
    );
}

#[test]
fn rms_norm_by_hand() {
    let out = rms_norm(&[3.0, 4.0], &[1.0, 2.0]);
    let rms = (12.5f64 + 1e-6).sqrt();
    assert!((out[0] as f64 - 3.0 / rms).abs() < 1e-6);
    assert!((out[1] as f64 - 8.0 / rms).abs() < 1e-6);
}

#[test]
fn cpu_backend_layer_and_model_pass_scope_verification() {
    use sqa_bench::backend::cpu::CpuBackend;
    use sqa_bench::verify::run_scope_check;
    let backend = CpuBackend::new();
    let dims = ModelDims {
        layers: 2,
        d_ff: 32,
        vocab: 40,
    };
    for (q, kv) in [(4, 1), (1, 4), (4, 4)] {
        for scope in [Scope::Layer, Scope::Model(dims)] {
            for dtype in [Dtype::F32, Dtype::Bf16] {
                let mut p = problem(q, kv, Pattern::Window(4), scope);
                p.shape.seq_len = 70;
                p.dtype = dtype;
                let c = run_scope_check(&backend, &p, 1).unwrap();
                assert!(c.passed(), "{q}/{kv} {} {dtype}: {c:?}", scope.name());
            }
        }
    }
}
