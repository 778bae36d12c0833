//! The CUDA layer and model scopes on a machine without a GPU: the cuBLAS argument
//! mapping against `model::cpu::matmul`, the launch geometry of `model.cu`, the weights
//! the executor uploads, device-memory sizing (the paper model at 131k and 200k on a
//! 40 GB A100), `model.cu` through the real NVRTC, and `verify --scope` on the CPU.

use std::process::Command;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use sqa_bench::backend::cuda::compile::{self, Output};
use sqa_bench::backend::cuda::gemm::{ColMajorGemm, Operand};
use sqa_bench::backend::cuda::model_kernels::{
    elementwise_grid, model_program, rmsnorm_grid, MODEL_KERNELS,
};
use sqa_bench::backend::cuda::scope::{
    buffer_bytes, weight_elems, ScopeBytes, CUBLAS_WORKSPACE_BYTES,
};
use sqa_bench::backend::cuda::{fits_memory, libs, ptxas};
use sqa_bench::model::cpu::matmul;
use sqa_bench::model::program::Program;
use sqa_bench::model::weights::{Matrix, StepData};
use sqa_bench::problem::{AttnShape, Dtype, Heads, ModelDims, Pattern, Problem, Scope};

/// Column-major `C[m×n] = A[m×k] · B[k×n]` with leading dimensions, as BLAS defines it
/// (no transposition), accumulated in f64.
#[allow(clippy::too_many_arguments)]
fn col_major_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    for j in 0..n {
        for i in 0..m {
            let mut acc = 0.0f64;
            for l in 0..k {
                acc += a[l * lda + i] as f64 * b[j * ldb + l] as f64;
            }
            c[j * ldc + i] = acc as f32;
        }
    }
}

#[test]
fn cublas_mapping_computes_the_row_major_product() {
    let mut rng = StdRng::seed_from_u64(7);
    // Non-square, odd sizes: a swapped m/n or a wrong leading dimension shows.
    for (m, k, n) in [(5, 3, 7), (13, 16, 2), (1, 9, 4), (8, 1, 8)] {
        let input: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let w = Matrix {
            rows: k,
            cols: n,
            data: (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect(),
        };
        let want = matmul(&input, m, &w);

        let g = ColMajorGemm::for_row_major(m, k, n);
        let pick = |o: Operand| match o {
            Operand::Weight => &w.data[..],
            Operand::Input => &input[..],
        };
        let mut got = vec![f32::NAN; m * n];
        col_major_gemm(
            g.m,
            g.n,
            g.k,
            pick(g.a),
            g.lda,
            pick(g.b),
            g.ldb,
            &mut got,
            g.ldc,
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() < 1e-5,
                "({m},{k},{n}) element {i}: {g} vs {w}"
            );
        }
        // BLAS' own argument rules: leading dimensions at least the rows they stride over.
        assert!(g.lda >= g.m && g.ldb >= g.k && g.ldc >= g.m);
    }
}

#[test]
fn launch_geometry_matches_the_simulator_abi() {
    // cuda/sim/model_api.cpp: blocks = ceil(count / 256) clamped to 1..=65535; rmsnorm
    // ceil(rows / 8).
    assert_eq!(elementwise_grid(0), 1);
    assert_eq!(elementwise_grid(1), 1);
    assert_eq!(elementwise_grid(256), 1);
    assert_eq!(elementwise_grid(257), 2);
    assert_eq!(elementwise_grid(131072 * 768), 65535);
    assert_eq!(rmsnorm_grid(1), 1);
    assert_eq!(rmsnorm_grid(8), 1);
    assert_eq!(rmsnorm_grid(9), 2);
    assert_eq!(rmsnorm_grid(131072), 16384);
}

fn problem(variant: &str, q: u32, kv: u32, batch: usize, n: usize, scope: Scope) -> Problem {
    Problem {
        variant: variant.into(),
        d_model: 256,
        shape: AttnShape {
            batch,
            seq_len: n,
            heads: Heads { total: 16, q, kv },
            d_head: 16,
            pattern: Pattern::Causal,
        },
        dtype: Dtype::Bf16,
        scope,
    }
}

#[test]
fn executor_uploads_every_weight_the_step_data_holds() {
    let small = ModelDims {
        layers: 2,
        d_ff: 64,
        vocab: 97,
    };
    // rSQA: H_q < H_kv, so W_o has H_eff·dh = H_kv·dh rows.
    for scope in [Scope::Layer, Scope::Model(small)] {
        for (v, q, kv) in [("gqa", 16, 4), ("rsqa", 4, 8)] {
            let p = problem(v, q, kv, 2, 45, scope);
            let program = Program::of(&p).unwrap();
            let data = StepData::random(&p, 3).unwrap();
            let ws = weight_elems(&program, &p);
            let expected = match scope {
                Scope::Layer => 4,
                _ => 1 + small.layers * 9 + 2,
            };
            assert_eq!(ws.len(), expected, "{v} {scope:?}: {ws:?}");
            for (w, len) in ws {
                let host = data.weight(w).unwrap_or_else(|| panic!("{w:?} missing"));
                assert_eq!(host.len(), len, "{v} {w:?}");
            }
        }
    }
}

const GB: u64 = 1_000_000_000;

#[test]
fn paper_model_fits_a_40gb_a100_at_131k_and_200k_with_no_quadratic_buffer() {
    // The paper preset: 131,072 tokens per step, so batch 1 at 131k and at 200k.
    let at = |n: usize| {
        ScopeBytes::of(&problem(
            "mha",
            16,
            16,
            1,
            n,
            Scope::Model(ModelDims::PAPER),
        ))
        .unwrap()
    };
    let (a, b) = (at(131072), at(200000));
    eprintln!("paper model, bytes at 131k: {a:?}; at 200k: {b:?}");
    // Logits (200,000 × 10,000 × 2 B = 4 GB) dominate; "comfortably" = under a quarter.
    assert!(b.total() < 10 * GB, "{b:?}");
    // An A100 40GB leaves about 39.5 GB free after the context; the check keeps headroom.
    assert!(fits_memory(b.total(), 39_500_000_000, String::new).is_ok());
    // The executor allocates exactly the activation bytes the check counts.
    let p = problem("mha", 16, 16, 1, 131072, Scope::Model(ModelDims::PAPER));
    let program = Program::of(&p).unwrap();
    let allocated: usize = program
        .buffers()
        .into_iter()
        .map(|b| buffer_bytes(&program, b, p.dtype))
        .sum();
    assert_eq!(allocated as u64, a.activations);
    // Linear in tokens (activations reused between layers, no N×N buffer): the
    // activation bytes are exactly proportional to the token count.
    assert_eq!(a.activations * 200000, b.activations * 131072);
    assert_eq!(a.weights, b.weights);
    assert_eq!(a.workspace, CUBLAS_WORKSPACE_BYTES as u64);
    // The weights: 8 layers of projections and SwiGLU, embedding and LM head, in bf16.
    let d = 256u64;
    let per_layer = 4 * d * d + 3 * d * 768 + 2 * d;
    assert_eq!(a.weights, 2 * (8 * per_layer + 2 * 10_000 * d + d));
}

#[test]
fn a_step_too_large_for_the_device_is_refused_as_oom() {
    // 16M tokens of a 10k vocabulary: 335 GB of logits alone.
    let p = problem("mha", 16, 16, 128, 131072, Scope::Model(ModelDims::PAPER));
    let bytes = ScopeBytes::of(&p).unwrap();
    let e = fits_memory(bytes.total(), 139 * GB, || "model of mha".into()).unwrap_err();
    assert_eq!(e.status(), "oom");
    assert!(e.to_string().contains("model of mha"), "{e}");
    assert!(ScopeBytes::of(&problem("mha", 16, 16, 1, 8, Scope::Kernel)).is_none());
}

#[test]
fn model_kernels_compile_with_nvrtc() {
    let lib = match libs::load_nvrtc(None) {
        Ok(l) => l,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI needs NVRTC (ci/test.sh installs it into .toolchain/): {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    eprintln!("NVRTC {:?}", lib.version);
    let ptxas = ptxas::find_ptxas(lib.path.as_deref());
    let dir = tempfile::tempdir().unwrap();
    for arch in ["sm_80", "sm_90"] {
        let ptx = compile::compile(
            &model_program(),
            &compile::options(arch, Output::Ptx),
            Output::Ptx,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&ptx);
        for k in MODEL_KERNELS {
            for dt in ["bf16", "f16"] {
                let entry = format!(".entry {k}_{dt}(");
                assert!(text.contains(&entry), "{entry} not in the PTX for {arch}");
            }
        }
        // Memory-bound one-pass kernels: no register spills (where ptxas is installed).
        let Some(ptxas) = &ptxas else { continue };
        let file = dir.path().join(format!("model-{arch}.ptx"));
        std::fs::write(&file, text.trim_end_matches('\0')).unwrap();
        let report = ptxas::run_ptxas(ptxas, &file, arch).unwrap();
        assert_eq!(report.len(), 2 * MODEL_KERNELS.len(), "{report:?}");
        for r in &report {
            assert!(!r.spills(), "{arch}: {r:?}");
        }
        eprintln!("{arch}: ptxas: {} entry points, none spills", report.len());
    }
}

fn verify_cpu(scope: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_sqa-bench"))
        .args(["verify", "--backend", "cpu", "--scope", scope])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every variant at both default lengths, none skipped.
    let rows = stdout
        .lines()
        .filter(|l| l.trim_end().ends_with("pass"))
        .count();
    assert_eq!(rows, 2 * sqa_bench::variant::VARIANTS.len(), "{stdout}");
    assert!(
        stdout.contains(&format!("{scope} checks passed")),
        "{stdout}"
    );
}

#[test]
fn verify_layer_scope_on_the_cpu_passes() {
    verify_cpu("layer");
}

#[test]
fn verify_model_scope_on_the_cpu_passes() {
    verify_cpu("model");
}

#[test]
fn verify_scope_refuses_long_lengths() {
    let out = Command::new(env!("CARGO_BIN_EXE_sqa-bench"))
        .args([
            "verify",
            "--backend",
            "cpu",
            "--scope",
            "model",
            "--seqlen",
            "4k",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("--small-seqlen"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// C parameter kinds of an entry point of `cuda/model.cu`, read from its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CKind {
    IntPtr,
    FloatPtr,
    HalfPtr,
    Int,
    LongLong,
    Float,
}

fn signature(kernel: &str) -> Vec<CKind> {
    let src = include_str!("../cuda/model.cu");
    let start = src
        .find(&format!("{kernel}_##DT("))
        .unwrap_or_else(|| panic!("{kernel} not in model.cu"))
        + kernel.len()
        + 6;
    let params = &src[start..start + src[start..].find(')').unwrap()];
    params
        .split(',')
        .map(|p| {
            // Macro line continuations and alignment blanks out.
            let p = p
                .replace('\\', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let ty = p.rsplit_once(' ').unwrap().0.replace("const ", "");
            let ptr = p.contains('*');
            match (ty.trim_end_matches('*').trim(), ptr) {
                ("int", true) => CKind::IntPtr,
                ("float", true) => CKind::FloatPtr,
                ("T", true) => CKind::HalfPtr,
                ("int", false) => CKind::Int,
                ("long long", false) => CKind::LongLong,
                ("float", false) => CKind::Float,
                other => panic!("{kernel}: unexpected parameter {p} ({other:?})"),
            }
        })
        .collect()
}

#[test]
fn kernel_calls_match_the_signatures_and_sizes_in_model_cu() {
    use sqa_bench::backend::cuda::model_kernels::{kernel_call, Arg};
    use sqa_bench::model::program::{Buf, Op};
    let small = ModelDims {
        layers: 2,
        d_ff: 64,
        vocab: 97,
    };
    let mut seen = std::collections::BTreeSet::new();
    for (v, q, kv) in [("gqa", 16, 4), ("rsqa", 4, 8)] {
        for scope in [Scope::Layer, Scope::Model(small)] {
            let p = problem(v, q, kv, 2, 45, scope);
            let program = Program::of(&p).unwrap();
            for op in &program.ops {
                let Some(call) = kernel_call(op, &program, &p.shape, p.d_model) else {
                    assert!(matches!(op, Op::Gemm { .. } | Op::Attention), "{op:?}");
                    continue;
                };
                seen.insert(call.kernel);
                let kinds: Vec<CKind> = call
                    .args
                    .iter()
                    .map(|a| match a {
                        Arg::Buf(Buf::Tokens) => CKind::IntPtr,
                        Arg::Buf(Buf::H) => CKind::FloatPtr,
                        Arg::Buf(_) | Arg::Weight(_) => CKind::HalfPtr,
                        Arg::I32(_) => CKind::Int,
                        Arg::I64(_) => CKind::LongLong,
                        Arg::F32(_) => CKind::Float,
                    })
                    .collect();
                assert_eq!(kinds, signature(call.kernel), "{op:?}");
                // Every buffer argument is one the program allocates.
                for a in &call.args {
                    if let Arg::Buf(b) = a {
                        assert!(program.buffers().contains(b), "{op:?}: {b:?}");
                    }
                }
                // The item count covers exactly the written buffer (pairs: half of it).
                let count = match call.args.last() {
                    Some(Arg::I64(c)) => *c as usize,
                    _ => program.tokens(), // rmsnorm: rows
                };
                let (written, per_item) = match *op {
                    Op::Embed | Op::Residual { .. } => (Buf::H, 1),
                    Op::RmsNorm { .. } => (Buf::X, p.d_model),
                    Op::SplitHeads { out, .. } => (out, 2),
                    Op::MergeHeads => (Buf::Om, 1),
                    Op::Swiglu => (Buf::Act, 1),
                    _ => unreachable!(),
                };
                assert_eq!(count * per_item, program.len(written), "{op:?}");
                let grid = if call.kernel == "rmsnorm" {
                    rmsnorm_grid(count)
                } else {
                    elementwise_grid(count)
                };
                assert_eq!(call.grid, grid, "{op:?}");
            }
        }
    }
    assert_eq!(seen.len(), MODEL_KERNELS.len(), "{seen:?}");
}
