//! The CPU backend against the fp64 reference: every variant, every pattern, odd
//! lengths and head sizes, every storage type, every compiled instruction set, and
//! proof that the checks used here catch wrong outputs.

use sqa_bench::backend::cpu::{CpuBackend, Isa};
use sqa_bench::backend::Backend;
use sqa_bench::inputs::Inputs;
use sqa_bench::problem::{AttnShape, Dtype, Heads, Pattern, Problem, Scope};
use sqa_bench::variant::VARIANTS;
use sqa_bench::verify::{check_rows, run_check, sample_rows, Tolerance};

const SEED: u64 = 20_260_128;

fn problem(
    variant: &str,
    heads: Heads,
    n: usize,
    d: usize,
    pattern: Pattern,
    dtype: Dtype,
) -> Problem {
    problem_b(variant, heads, 2, n, d, pattern, dtype)
}

fn problem_b(
    variant: &str,
    heads: Heads,
    batch: usize,
    n: usize,
    d: usize,
    pattern: Pattern,
    dtype: Dtype,
) -> Problem {
    let p = Problem {
        variant: variant.to_string(),
        d_model: d * heads.total as usize,
        shape: AttnShape {
            batch,
            seq_len: n,
            heads,
            d_head: d,
            pattern,
        },
        dtype,
        scope: Scope::Kernel,
    };
    p.validate().expect("test problem is valid");
    p
}

/// Every row for short sequences, sampled rows (edges, window borders, random) beyond.
fn rows_for(p: &Problem) -> Option<Vec<usize>> {
    let n = p.shape.seq_len;
    (n > 200).then(|| sample_rows(n, p.shape.pattern, 6, SEED))
}

/// Runs `p` on `backend` and asserts it agrees with the reference.
fn assert_agrees(backend: &CpuBackend, p: &Problem) {
    let rows = rows_for(p);
    let c = run_check(backend, p, SEED, rows.as_deref()).expect("runs");
    assert!(
        c.passed(),
        "{} {:?} {} N={} d={} {}: {c:?}",
        p.variant,
        p.shape.heads,
        p.shape.pattern,
        p.shape.seq_len,
        p.shape.d_head,
        p.dtype
    );
}

/// Runs `p` on prepared inputs and returns the full output.
fn output(backend: &CpuBackend, p: &Problem, inputs: &Inputs) -> Vec<f32> {
    let mut prepared = backend.prepare(p, inputs).expect("prepares");
    prepared.run().expect("runs");
    prepared.output().expect("output")
}

#[test]
fn every_variant_every_pattern_odd_lengths_f32() {
    let backend = CpuBackend::new();
    for v in VARIANTS {
        let heads = v.heads(8).unwrap();
        for mask in [
            Pattern::Full,
            Pattern::Causal,
            Pattern::Window(3),
            Pattern::Window(48),
        ] {
            let window = mask.window().max(1);
            let pattern = v.pattern(mask, window);
            if v.windowed && !matches!(mask, Pattern::Window(_)) {
                continue; // windowed variants ignore the mask: their windows are covered
            }
            for n in [1, 7, 129, 1000] {
                assert_agrees(&backend, &problem(v.key, heads, n, 32, pattern, Dtype::F32));
            }
        }
    }
}

#[test]
fn head_sizes_and_storage_types() {
    let backend = CpuBackend::new();
    let heads = Heads {
        total: 4,
        q: 4,
        kv: 2,
    };
    for d in [1, 5, 16, 24, 32, 64, 128] {
        for dtype in [Dtype::F32, Dtype::Bf16, Dtype::F16] {
            for pattern in [Pattern::Causal, Pattern::Full] {
                for n in [65, 1000] {
                    assert_agrees(&backend, &problem("custom", heads, n, d, pattern, dtype));
                }
            }
        }
    }
}

#[test]
fn tile_boundary_lengths_and_windows() {
    let backend = CpuBackend::new();
    let heads = Heads {
        total: 2,
        q: 2,
        kv: 1,
    };
    // Around the query tile (48) and key tile (128) sizes.
    for n in [2, 47, 48, 49, 95, 96, 97, 127, 128, 129, 143, 255, 257] {
        for pattern in [
            Pattern::Causal,
            Pattern::Full,
            Pattern::Window(1),
            Pattern::Window(47),
            Pattern::Window(128),
            Pattern::Window(129),
        ] {
            assert_agrees(
                &backend,
                &problem("custom", heads, n, 16, pattern, Dtype::F32),
            );
        }
    }
}

#[test]
fn custom_head_pairs_both_ways() {
    let backend = CpuBackend::new();
    // H_q < H_kv: queries tiled over the effective heads (rSQA); H_q > H_kv: grouped.
    for (total, q, kv) in [
        (8, 2, 8),
        (8, 1, 4),
        (12, 3, 12),
        (8, 6, 2),
        (8, 8, 1),
        (6, 3, 3),
    ] {
        let heads = Heads { total, q, kv };
        for pattern in [Pattern::Causal, Pattern::Window(20)] {
            for n in [7, 129] {
                assert_agrees(
                    &backend,
                    &problem("custom", heads, n, 16, pattern, Dtype::F32),
                );
                assert_agrees(
                    &backend,
                    &problem("custom", heads, n, 16, pattern, Dtype::Bf16),
                );
            }
        }
    }
}

#[test]
fn batch_sizes() {
    let backend = CpuBackend::new();
    let heads = Heads {
        total: 4,
        q: 1,
        kv: 2,
    };
    for batch in [1, 3, 5] {
        let p = problem_b("custom", heads, batch, 77, 24, Pattern::Causal, Dtype::F32);
        assert_agrees(&backend, &p);
    }
}

#[test]
fn every_compiled_instruction_set_agrees() {
    let isas = [Isa::Portable, Isa::Avx2Fma, Isa::Avx512];
    let heads = Heads {
        total: 4,
        q: 2,
        kv: 4,
    };
    let mut ran = 0;
    for isa in isas {
        let Ok(backend) = CpuBackend::with_isa_checked(isa) else {
            eprintln!("skipping {}: not supported by this CPU", isa.name());
            continue;
        };
        ran += 1;
        assert_eq!(backend.isa(), isa);
        for (n, d, pattern) in [
            (129, 64, Pattern::Causal),
            (300, 24, Pattern::Window(48)),
            (65, 128, Pattern::Full),
            (100, 16, Pattern::Causal),
        ] {
            for dtype in [Dtype::F32, Dtype::Bf16] {
                assert_agrees(&backend, &problem("custom", heads, n, d, pattern, dtype));
            }
        }
    }
    assert!(ran >= 1, "the portable kernel always runs");
}

#[test]
fn window_at_least_n_equals_causal() {
    let backend = CpuBackend::new();
    let heads = Heads {
        total: 4,
        q: 4,
        kv: 1,
    };
    for n in [1, 50, 129, 300] {
        let causal = problem("custom", heads, n, 32, Pattern::Causal, Dtype::F32);
        let inputs = Inputs::random(&causal.shape, Dtype::F32, SEED);
        let want = output(&backend, &causal, &inputs);
        for w in [n, n + 1, n + 100] {
            let p = problem(
                "custom",
                heads,
                n,
                32,
                Pattern::Window(w as u32),
                Dtype::F32,
            );
            let got = output(&backend, &p, &inputs);
            for (g, c) in got.iter().zip(&want) {
                assert!(
                    (g - c).abs() <= 1e-6 * (1.0 + c.abs()),
                    "N={n} w={w}: {g} vs {c}"
                );
            }
        }
        // A window shorter than N really differs (the comparison above can fail).
        if n > 2 {
            let p = problem("custom", heads, n, 32, Pattern::Window(2), Dtype::F32);
            assert_ne!(output(&backend, &p, &inputs), want);
        }
    }
}

#[test]
fn output_is_fully_written_and_deterministic() {
    let backend = CpuBackend::new();
    let heads = Heads {
        total: 4,
        q: 1,
        kv: 4,
    };
    let p = problem("custom", heads, 333, 40, Pattern::Window(100), Dtype::Bf16);
    let inputs = Inputs::random(&p.shape, p.dtype, SEED);
    let mut prepared = backend.prepare(&p, &inputs).unwrap();
    prepared.run().unwrap();
    let first = prepared.output().unwrap();
    assert_eq!(first.len(), p.shape.o_len());
    assert!(first.iter().all(|x| x.is_finite()));
    prepared.run().unwrap();
    assert_eq!(
        prepared.output().unwrap(),
        first,
        "a second run gives the same output"
    );
}

/// The check used above rejects a wrong head mapping, a swapped row and a NaN.
#[test]
fn the_check_catches_wrong_outputs() {
    let backend = CpuBackend::new();
    let heads = Heads {
        total: 4,
        q: 2,
        kv: 4,
    };
    let p = problem_b("custom", heads, 1, 64, 16, Pattern::Causal, Dtype::F32);
    let (n, d) = (p.shape.seq_len, p.shape.d_head);
    let inputs = Inputs::random(&p.shape, p.dtype, SEED);
    let good = output(&backend, &p, &inputs);
    let rows: Vec<usize> = (0..n).collect();
    let tol = Tolerance::for_output(Dtype::F32);
    assert!(check_rows(&p.shape, &inputs, &good, &rows, tol).passed());

    // Heads 0 and 2 read the same query head but different key/value heads: swapping
    // their outputs is what a kernel that ignores the kv mapping would produce.
    let mut swapped = good.clone();
    let head = n * d;
    let (a, b) = swapped.split_at_mut(2 * head);
    a[..head].swap_with_slice(&mut b[..head]);
    assert!(!check_rows(&p.shape, &inputs, &swapped, &rows, tol).passed());

    // Two rows of one head exchanged (a wrong query offset).
    let mut shifted = good.clone();
    shifted.copy_within(5 * d..6 * d, 9 * d);
    assert!(!check_rows(&p.shape, &inputs, &shifted, &rows, tol).passed());

    // One NaN anywhere.
    let mut nan = good.clone();
    nan[head + 17] = f32::NAN;
    let c = check_rows(&p.shape, &inputs, &nan, &rows, tol);
    assert!(!c.passed() && c.max_abs.is_nan());

    // A relative error of 1e-4 in one element is beyond the f32 tolerance.
    let mut off = good;
    off[3] *= 1.0 + 1e-4;
    assert!(!check_rows(&p.shape, &inputs, &off, &rows, tol).passed());
}

#[test]
fn device_info_has_the_measured_peak() {
    let info = CpuBackend::new().device_info();
    let g = info["sgemm_gflops"].as_f64().expect("sgemm_gflops");
    let t = info["peak_tflops_per_s"]
        .as_f64()
        .expect("peak_tflops_per_s");
    assert!(g > 0.0 && (t * 1e3 - g).abs() < 1e-9 * g);
    assert!(info["peak_source"].as_str().unwrap().contains("sgemm"));
}
