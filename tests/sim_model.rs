//! The elementwise kernels of cuda/model.cu, run by the host simulator, against the
//! CPU forward of model::cpu (RoPE, RMSNorm, SwiGLU, embedding, residual, head layout).

use rand::rngs::StdRng;
use rand::SeedableRng;

use sqa_bench::inputs::fill;
use sqa_bench::model::{cpu, NORM_EPS};
use sqa_bench::problem::Dtype;
use sqa_bench::sim::model as simk;

fn data(len: usize, dtype: Dtype, seed: u64) -> Vec<f32> {
    fill(len, dtype, &mut StdRng::seed_from_u64(seed))
}

/// |got - want| <= rel · |want| + abs, NaN fails.
fn assert_close(got: &[f32], want: &[f32], rel: f32, abs: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= rel * w.abs() + abs;
        assert!(ok, "{what}: element {i}: {g} vs {w}");
    }
}

#[test]
fn rope_heads_matches_cpu_rope_and_layout() {
    for dtype in [Dtype::Bf16, Dtype::F16] {
        // B = 2, N = 37 (positions beyond a tile), H = 3, dh = 16 and 64.
        for dh in [16, 64] {
            let (b, n, h) = (2, 37, 3);
            let x = data(b * n * h * dh, dtype, 1);
            let got = simk::rope_heads(dtype, &x, n, h, dh, true).unwrap();
            let mut want = cpu::to_heads(&x, b, n, h, dh);
            cpu::rope(&mut want, n, dh);
            let want: Vec<f32> = want.into_iter().map(|v| dtype.round(v)).collect();
            assert_close(
                &got,
                &want,
                2.0 * dtype.epsilon() as f32,
                1e-6,
                &format!("rope {dtype} dh={dh}"),
            );
            // Without RoPE it is an exact relayout.
            let plain = simk::rope_heads(dtype, &x, n, h, dh, false).unwrap();
            assert_eq!(plain, cpu::to_heads(&x, b, n, h, dh));
        }
    }
}

#[test]
fn rope_angle_stays_exact_at_long_positions() {
    // Position 200,000 - 1 with dh = 16: the f64 angle keeps the rotation right.
    let (n, dh) = (200_000, 16);
    let mut x = vec![0.0f32; n * dh];
    for row in x.chunks_mut(dh) {
        row[0] = 1.0; // pair (0, 8) = (1, 0): the result is (cos θ, sin θ)
    }
    let got = simk::rope_heads(Dtype::F16, &x, n, 1, dh, true).unwrap();
    let mut want = x.clone();
    cpu::rope(&mut want, n, dh);
    let last = (n - 1) * dh;
    for i in [0, 8] {
        assert!(
            (got[last + i] - want[last + i]).abs() < 2e-3,
            "{} vs {}",
            got[last + i],
            want[last + i]
        );
    }
}

#[test]
fn rmsnorm_matches_cpu() {
    for dtype in [Dtype::Bf16, Dtype::F16] {
        for d in [16, 256, 100] {
            let rows = 19; // not a multiple of the 8 rows per block
            let x = data(rows * d, Dtype::F32, 2);
            let g: Vec<f32> = data(d, dtype, 3)
                .into_iter()
                .map(|v| dtype.round(1.0 + 0.1 * v))
                .collect();
            let got = simk::rms_norm(dtype, &x, &g, NORM_EPS as f32).unwrap();
            let want: Vec<f32> = cpu::rms_norm(&x, &g)
                .into_iter()
                .map(|v| dtype.round(v))
                .collect();
            assert_close(
                &got,
                &want,
                2.0 * dtype.epsilon() as f32,
                1e-6,
                &format!("rmsnorm {dtype} d={d}"),
            );
        }
    }
}

#[test]
fn swiglu_embed_residual_and_merge_match_cpu() {
    let dtype = Dtype::Bf16;
    let (g, u) = (data(1000, dtype, 4), data(1000, dtype, 5));
    let got = simk::swiglu(dtype, &g, &u).unwrap();
    let want: Vec<f32> = g
        .iter()
        .zip(&u)
        .map(|(g, u)| dtype.round(g / (1.0 + (-g).exp()) * u))
        .collect();
    assert_close(&got, &want, 2.0 * dtype.epsilon() as f32, 1e-6, "swiglu");

    let (vocab, d) = (11, 24);
    let table = data(vocab * d, dtype, 6);
    let tokens: Vec<u32> = (0..29).map(|i| (i * 7 % vocab) as u32).collect();
    let h = simk::embed(dtype, &tokens, &table, d).unwrap();
    for (t, &tok) in tokens.iter().enumerate() {
        assert_eq!(&h[t * d..][..d], &table[tok as usize * d..][..d]);
    }
    assert!(simk::embed(dtype, &[vocab as u32], &table, d).is_err());

    let mut acc = data(500, Dtype::F32, 7);
    let a = data(500, dtype, 8);
    let want: Vec<f32> = acc.iter().zip(&a).map(|(h, a)| h + a).collect();
    simk::residual_add(dtype, &mut acc, &a).unwrap();
    assert_eq!(acc, want);

    let (b, n, heads, dh) = (2, 9, 3, 8);
    let o = data(b * heads * n * dh, dtype, 9);
    assert_eq!(
        simk::merge_heads(dtype, &o, n, heads, dh).unwrap(),
        cpu::from_heads(&o, b, n, heads, dh)
    );
}
