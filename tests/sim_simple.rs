//! The simple attention kernel (`cuda/attention_simple.cu`) run by the host simulator,
//! checked against the fp64 reference: every variant of the table, full / causal /
//! window patterns (windows whose edges fall inside key tiles), every d_head, odd
//! lengths, both 16-bit dtypes. The deliberately broken copies (build.rs mutants) must
//! fail the same checks.

use sqa_bench::inputs::Inputs;
use sqa_bench::problem::{AttnShape, Dtype, Heads, Pattern};
use sqa_bench::reference;
use sqa_bench::sim::{self, Mode};
use sqa_bench::variant::{self, VARIANTS};
use sqa_bench::verify::{compare, Check, Tolerance};

/// Total heads of the test shapes: the smallest H for which every rule of the table
/// gives whole head counts (H/4, 3H/4).
const H: u32 = 4;

fn shape(key: &str, total: u32, n: usize, d: usize, pattern: Pattern) -> AttnShape {
    let spec = variant::find(key).expect("variant in table");
    let heads = Heads {
        total,
        q: spec.q.count(total).expect("whole heads"),
        kv: spec.kv.count(total).expect("whole heads"),
    };
    AttnShape {
        batch: 2,
        seq_len: n,
        heads,
        d_head: d,
        pattern,
    }
}

/// Runs `family` on the simulator and compares every output element with the reference.
fn run(family: &str, mode: Mode, shape: &AttnShape, dtype: Dtype, seed: u64) -> Check {
    let inputs = Inputs::random(shape, dtype, seed);
    let got = sim::attention_in(mode, family, dtype, shape, &inputs.q, &inputs.k, &inputs.v)
        .unwrap_or_else(|e| panic!("{family} {shape:?}: {e}"));
    let want = reference::attention(shape, &inputs.q, &inputs.k, &inputs.v);
    compare(&got, &want, Tolerance::for_output(dtype))
}

fn assert_passes(family: &str, shape: &AttnShape, dtype: Dtype, seed: u64) {
    let c = run(family, Mode::Fibers, shape, dtype, seed);
    assert!(
        c.passed(),
        "{family} {dtype} {shape:?}: {} of {} elements off, max abs {:e}, first {:?}",
        c.failures,
        c.count,
        c.max_abs,
        c.first_failure
    );
}

fn patterns() -> [Pattern; 4] {
    [
        Pattern::Full,
        Pattern::Causal,
        Pattern::Window(5),
        Pattern::Window(48),
    ]
}

#[test]
fn every_variant_and_pattern_matches_the_reference() {
    for (i, spec) in VARIANTS.iter().enumerate() {
        for (j, pattern) in patterns().into_iter().enumerate() {
            for dtype in [Dtype::Bf16, Dtype::F16] {
                let s = shape(spec.key, H, 129, 32, pattern);
                assert_passes("simple", &s, dtype, 100 + (i * 10 + j) as u64);
            }
        }
    }
}

#[test]
fn every_head_dim_and_length_matches_the_reference() {
    // GQA (H_q > H_kv) and rSQA (H_q < H_kv) cover both directions of the head mapping.
    for (i, d) in [16, 32, 64, 128].into_iter().enumerate() {
        for (j, n) in [1, 7, 65, 129, 200].into_iter().enumerate() {
            let key = if (i + j) % 2 == 0 { "gqa" } else { "rsqa" };
            let pattern = patterns()[(i + j) % 4];
            for dtype in [Dtype::Bf16, Dtype::F16] {
                let s = shape(key, 8, n, d, pattern);
                assert_passes("simple", &s, dtype, 1000 + (i * 10 + j) as u64);
            }
        }
    }
}

#[test]
fn long_window_skips_tiles_and_still_matches() {
    // Window 48 at N = 300: query blocks 2..4 skip their first key tiles entirely.
    let s = shape("swa", H, 300, 16, Pattern::Window(48));
    assert_passes("simple", &s, Dtype::Bf16, 7);
    let s = shape("mqa", H, 300, 16, Pattern::Causal);
    assert_passes("simple", &s, Dtype::F16, 8);
}

#[test]
fn threads_mode_matches_fibers_mode() {
    let s = shape("sqa", H, 65, 16, Pattern::Window(5));
    let inputs = Inputs::random(&s, Dtype::Bf16, 3);
    let run = |mode| {
        sim::attention_in(
            mode,
            "simple",
            Dtype::Bf16,
            &s,
            &inputs.q,
            &inputs.k,
            &inputs.v,
        )
        .expect("simulated")
    };
    let (fibers, threads) = (run(Mode::Fibers), run(Mode::Threads));
    assert_eq!(
        fibers.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        threads.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    let want = reference::attention(&s, &inputs.q, &inputs.k, &inputs.v);
    assert!(compare(&threads, &want, Tolerance::for_output(Dtype::Bf16)).passed());
}

#[test]
fn barrier_mutant_fails_with_nan_from_poisoned_shared_memory() {
    for pattern in [Pattern::Full, Pattern::Causal] {
        let s = shape("mha", H, 129, 32, pattern);
        let c = run("simple-mutant-barrier", Mode::Fibers, &s, Dtype::Bf16, 11);
        assert!(!c.passed(), "{pattern}: the barrier mutant passed");
        assert!(c.max_abs.is_nan(), "{pattern}: expected NaN, got {c:?}");
    }
}

#[test]
fn headmap_mutant_fails_where_groups_are_shared() {
    // H_eff = 8, H_kv = 2: the right kv head of effective head j is j / 4, the mutant's
    // j % 2 differs for most heads.
    for key in ["gqa", "sqa"] {
        let s = shape(key, 8, 65, 16, Pattern::Causal);
        let c = run("simple-mutant-headmap", Mode::Fibers, &s, Dtype::F16, 12);
        assert!(!c.passed(), "{key}: the head-mapping mutant passed");
        assert!(!c.max_abs.is_nan(), "{key}: wrong values, not NaN: {c:?}");
    }
    // Where the two mappings coincide (MHA: j / 1 = j % H_kv) the mutant is right,
    // which shows the failure above comes from the mapping alone.
    let s = shape("mha", 8, 65, 16, Pattern::Causal);
    assert!(run("simple-mutant-headmap", Mode::Fibers, &s, Dtype::F16, 12).passed());
}

#[test]
fn unknown_kernels_and_f32_are_errors() {
    let s = shape("mha", H, 7, 16, Pattern::Full);
    let inputs = Inputs::random(&s, Dtype::Bf16, 1);
    let e = sim::attention("nope", Dtype::Bf16, &s, &inputs.q, &inputs.k, &inputs.v)
        .expect_err("unknown family");
    assert!(e.to_string().contains("no simulated kernel 'nope'"), "{e}");
    let s48 = AttnShape { d_head: 48, ..s };
    let inputs48 = Inputs::random(&s48, Dtype::Bf16, 1);
    let e = sim::attention(
        "simple",
        Dtype::Bf16,
        &s48,
        &inputs48.q,
        &inputs48.k,
        &inputs48.v,
    )
    .expect_err("d_head 48");
    assert!(e.to_string().contains("d_head 48"), "{e}");
    assert!(sim::attention("simple", Dtype::F32, &s, &inputs.q, &inputs.k, &inputs.v).is_err());
    assert!(sim::attention(
        "simple",
        Dtype::Bf16,
        &s,
        &inputs.q[1..],
        &inputs.k,
        &inputs.v
    )
    .is_err());
}
