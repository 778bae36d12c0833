//! The GPU's forward program, executed on the CPU with the simulator's kernels, agrees
//! with the plain f32 forward of model::cpu: the orchestration the CUDA backend follows
//! (op order, shapes, head split/merge, RoPE, buffer reuse) is right.

use sqa_bench::model::cpu::{attention_layer, model_forward};
use sqa_bench::model::host;
use sqa_bench::model::program::Program;
use sqa_bench::model::weights::StepData;
use sqa_bench::problem::{AttnShape, Dtype, Heads, ModelDims, Pattern, Problem, Scope};
use sqa_bench::reference;
use sqa_bench::verify::{compare, Tolerance};

fn problem(q: u32, kv: u32, pattern: Pattern, scope: Scope, dtype: Dtype) -> Problem {
    Problem {
        variant: "custom".into(),
        d_model: 64,
        shape: AttnShape {
            batch: 2,
            seq_len: 45,
            heads: Heads { total: 4, q, kv },
            d_head: 16,
            pattern,
        },
        dtype,
        scope,
    }
}

fn check(p: &Problem) {
    let program = Program::of(p).unwrap();
    let data = StepData::random(p, 7).unwrap();
    let got = host::run(&program, p, &data, "simple").unwrap();
    let mut attention = |shape: &AttnShape, q: &[f32], k: &[f32], v: &[f32]| -> Vec<f32> {
        reference::attention(shape, q, k, v)
            .into_iter()
            .map(|x| x as f32)
            .collect()
    };
    let (want, layers) = match &data {
        StepData::Layer { weights, x } => {
            (attention_layer(&p.shape, weights, x, &mut attention), 1)
        }
        StepData::Model { weights, tokens } => (
            model_forward(&p.shape, weights, tokens, &mut attention),
            weights.layers.len(),
        ),
    };
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs() as f64));
    let tol = 4.0 * p.dtype.epsilon() * (2 + 2 * layers) as f64;
    let want: Vec<f64> = want.into_iter().map(f64::from).collect();
    let c = compare(
        &got,
        &want,
        Tolerance {
            atol: tol * scale,
            rtol: 0.0,
        },
    );
    assert!(
        c.passed(),
        "{} {}/{} {}: {c:?}",
        p.scope.name(),
        p.shape.heads.q,
        p.shape.heads.kv,
        p.dtype
    );
    // And the tolerance is tight enough to see a wrong program: a zeroed step fails.
    let zero = vec![0.0f32; got.len()];
    assert!(!compare(
        &zero,
        &want,
        Tolerance {
            atol: tol * scale,
            rtol: 0.0
        }
    )
    .passed());
}

#[test]
fn layer_program_matches_cpu_forward() {
    for (q, kv) in [(4, 1), (4, 4), (1, 4), (2, 1)] {
        for pattern in [Pattern::Causal, Pattern::Full, Pattern::Window(7)] {
            check(&problem(q, kv, pattern, Scope::Layer, Dtype::Bf16));
        }
    }
    check(&problem(4, 2, Pattern::Causal, Scope::Layer, Dtype::F16));
}

#[test]
fn model_program_matches_cpu_forward() {
    let dims = ModelDims {
        layers: 2,
        d_ff: 48,
        vocab: 97,
    };
    for (q, kv) in [(4, 1), (1, 2)] {
        check(&problem(
            q,
            kv,
            Pattern::Causal,
            Scope::Model(dims),
            Dtype::Bf16,
        ));
    }
    check(&problem(
        2,
        2,
        Pattern::Window(5),
        Scope::Model(dims),
        Dtype::F16,
    ));
}
