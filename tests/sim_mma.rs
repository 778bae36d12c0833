//! The tensor-core kernel (`cuda/attention_mma.cu`) on the host simulator against the
//! fp64 reference: every variant of the table, every d_head, full / causal / window
//! (windows that cut tiles), lengths that are not multiples of any tile, batch 2,
//! bf16 and f16. The simulator runs mma, ldmatrix and cp.async with the PTX ISA's
//! fragment layouts and starts shared memory as NaN, so a wrong fragment index, swizzle,
//! pipeline wait or barrier shows up as a failed comparison or a simulator error.

use sqa_bench::inputs::{problem_seed, Inputs};
use sqa_bench::problem::{AttnShape, Dtype, Heads, Pattern};
use sqa_bench::reference;
use sqa_bench::sim;
use sqa_bench::variant::VARIANTS;
use sqa_bench::verify::{compare, Tolerance};

const D_HEADS: [usize; 4] = [16, 32, 64, 128];

/// Runs the mma kernel on `shape` and returns a description of the failure, if any.
fn check(dtype: Dtype, shape: &AttnShape, seed: u64) -> Option<String> {
    let inputs = Inputs::random(shape, dtype, problem_seed(seed, shape));
    let what = format!(
        "{dtype} d={} N={} B={} H_q={} H_kv={} {}",
        shape.d_head, shape.seq_len, shape.batch, shape.heads.q, shape.heads.kv, shape.pattern
    );
    let got = match sim::attention("mma", dtype, shape, &inputs.q, &inputs.k, &inputs.v) {
        Ok(o) => o,
        Err(e) => return Some(format!("{what}: simulator error: {e}")),
    };
    let want = reference::attention(shape, &inputs.q, &inputs.k, &inputs.v);
    let c = compare(&got, &want, Tolerance::for_output(dtype));
    if c.passed() {
        None
    } else {
        Some(format!(
            "{what}: {} of {} elements off, max abs error {:.3e}, first {:?}",
            c.failures, c.count, c.max_abs, c.first_failure
        ))
    }
}

fn assert_all(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failing shapes:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every variant of the table (H = 4: the smallest H where every variant exists) with
/// every d_head: covers the GQA/MQA/SQA grouping and rSQA's query tiling.
#[test]
fn every_variant_every_d_head() {
    let mut failures = Vec::new();
    for (i, v) in VARIANTS.iter().enumerate() {
        let heads = v.heads(4).unwrap();
        for (j, &d) in D_HEADS.iter().enumerate() {
            let dtype = if (i + j) % 2 == 0 {
                Dtype::Bf16
            } else {
                Dtype::F16
            };
            let mask = if (i + j) % 2 == 0 {
                Pattern::Causal
            } else {
                Pattern::Full
            };
            let shape = AttnShape {
                batch: 2,
                seq_len: 129,
                heads,
                d_head: d,
                pattern: v.pattern(mask, 48),
            };
            failures.extend(check(dtype, &shape, 1));
        }
    }
    assert_all(failures);
}

/// Patterns and ragged lengths: every d_head, both dtypes, N in {1, 7, 65, 129, 200}, full,
/// causal and windows of 5, 48 and 100 (smaller than, and cutting, the key tiles).
#[test]
fn patterns_and_odd_lengths() {
    let heads = Heads {
        total: 2,
        q: 2,
        kv: 1,
    };
    let patterns = [
        Pattern::Full,
        Pattern::Causal,
        Pattern::Window(5),
        Pattern::Window(48),
        Pattern::Window(100),
    ];
    let mut failures = Vec::new();
    for &d in &D_HEADS {
        for dtype in [Dtype::Bf16, Dtype::F16] {
            for n in [1usize, 7, 65, 129, 200] {
                for pattern in patterns {
                    let shape = AttnShape {
                        batch: 2,
                        seq_len: n,
                        heads,
                        d_head: d,
                        pattern,
                    };
                    failures.extend(check(dtype, &shape, 2));
                }
            }
        }
    }
    assert_all(failures);
}

/// Longer sequences: several query blocks, windows whose first key tile is not tile 0
/// (tiles before the window are skipped), causal blocks with tiles skipped per warp.
#[test]
fn several_query_blocks_and_skipped_tiles() {
    let mut failures = Vec::new();
    for (n, pattern) in [
        (600, Pattern::Window(5)),
        (600, Pattern::Window(129)),
        (333, Pattern::Causal),
        (333, Pattern::Full),
    ] {
        for &d in &D_HEADS {
            let shape = AttnShape {
                batch: 1,
                seq_len: n,
                heads: Heads {
                    total: 2,
                    q: 1,
                    kv: 2,
                },
                d_head: d,
                pattern,
            };
            failures.extend(check(Dtype::Bf16, &shape, 3));
        }
    }
    assert_all(failures);
}

/// Peaked softmax: Q scaled up 8x so that row maxima jump between key tiles and most
/// probabilities underflow; exercises the rescaling of O and of the row sums.
#[test]
fn large_scores_rescale_correctly() {
    let mut failures = Vec::new();
    for &d in &D_HEADS {
        for (dtype, pattern) in [(Dtype::Bf16, Pattern::Full), (Dtype::F16, Pattern::Causal)] {
            let shape = AttnShape {
                batch: 1,
                seq_len: 300,
                heads: Heads {
                    total: 1,
                    q: 1,
                    kv: 1,
                },
                d_head: d,
                pattern,
            };
            let mut inputs = Inputs::random(&shape, dtype, 4);
            for x in &mut inputs.q {
                *x = dtype.round(*x * 8.0);
            }
            let got = sim::attention("mma", dtype, &shape, &inputs.q, &inputs.k, &inputs.v)
                .expect("simulator run");
            let want = reference::attention(&shape, &inputs.q, &inputs.k, &inputs.v);
            let c = compare(&got, &want, Tolerance::for_output(dtype));
            if !c.passed() {
                failures.push(format!("{dtype} d={d} {pattern}: {c:?}"));
            }
        }
    }
    assert_all(failures);
}
