//! `sqa-bench verify --scope layer|model`: the whole output of a layer (`[B, N, d]`) or of
//! the model (logits `[B, N, vocab]`) on small shapes, against the f32 forward of
//! `model::cpu` with fp64 attention and the same seeded weights (`verify::run_scope_check`).
//! Works on every backend; on the GPU once per kernel family.

use std::process::ExitCode;

use sqa_bench::backend::Backend;
use sqa_bench::plan::{length_label, BatchRule, PlanSpec};
use sqa_bench::problem::{ModelDims, Pattern, Scope};
use sqa_bench::variant::{self, VariantSpec};
use sqa_bench::verify::run_scope_check;

use super::verify::VerifyArgs;
use super::ScopeKind;

/// Default lengths: below and above the window (48), neither a multiple of any tile.
pub const SMALL_LENGTHS: &str = "45,300";
/// Batch of every check (two sequences: batch strides are exercised).
const BATCH: usize = 2;
/// Window of the windowed variants (below the longer default length).
const WINDOW: u32 = 48;
/// A small decoder: two layers (the residual stream crosses a layer boundary), a
/// feed-forward and a vocabulary that match no tile size.
const SMALL_MODEL: ModelDims = ModelDims {
    layers: 2,
    d_ff: 64,
    vocab: 97,
};

pub fn run(
    a: &VerifyArgs,
    backends: &[Box<dyn Backend>],
    variants: &[&'static VariantSpec],
    d_heads: &[usize],
    lengths: &[usize],
) -> anyhow::Result<ExitCode> {
    if a.seqlen.is_some() {
        anyhow::bail!(
            "--seqlen applies to --scope kernel; layer and model checks take --small-seqlen"
        );
    }
    let scope = match a.scope {
        ScopeKind::Layer => Scope::Layer,
        ScopeKind::Model => Scope::Model(SMALL_MODEL),
        ScopeKind::Kernel => anyhow::bail!("kernel scope is checked by `verify` itself"),
    };
    let mut problems = Vec::new();
    for &d_head in d_heads {
        problems.extend(
            PlanSpec {
                variants: variants.to_vec(),
                custom: None,
                seq_lens: lengths.to_vec(),
                batch: BatchRule::Fixed(BATCH),
                d_model: d_head * 16,
                heads: 16,
                mask: Pattern::Causal,
                window: WINDOW,
                custom_window: false,
                dtype: a.dtype,
                scope,
            }
            .build()?,
        );
    }

    let mut lines = vec![[
        "scope",
        "kernel",
        "variant",
        "pattern",
        "d_head",
        "N",
        "batch",
        "max abs err",
        "result",
    ]
    .map(String::from)
    .to_vec()];
    let (mut failures, mut skipped) = (0, 0);
    for backend in backends {
        for p in &problems {
            let (abs, result) = match run_scope_check(backend.as_ref(), p, a.seed) {
                Ok(c) => {
                    failures += usize::from(!c.passed());
                    (format!("{:.2e}", c.max_abs), c.verdict())
                }
                Err(e @ sqa_bench::Error::BackendUnavailable(_)) => {
                    skipped += 1;
                    ("—".into(), format!("skipped: {e}"))
                }
                Err(e) => {
                    failures += 1;
                    ("—".into(), format!("ERROR {e}"))
                }
            };
            lines.push(vec![
                p.scope.name().to_string(),
                backend.kernel(p),
                variant::display_name(&p.variant),
                p.shape.pattern.to_string(),
                p.shape.d_head.to_string(),
                length_label(p.shape.seq_len),
                p.shape.batch.to_string(),
                abs,
                result,
            ]);
        }
    }
    let passed = format!(
        "{} checks passed against the f32 forward with fp64 attention",
        scope.name()
    );
    Ok(super::verify::summarise(&lines, failures, skipped, &passed))
}
