//! `sqa-bench verify`: every kernel of a backend against the fp64 reference — full
//! outputs on small shapes, sampled rows at long lengths. Exit status 1 on any failure.
//! `--scope layer|model` checks the layer or model forward instead (see `verify_scope`).

use std::process::ExitCode;

use clap::Args;

use sqa_bench::backend::cuda::kernels::{KernelChoice, FAMILIES};
use sqa_bench::backend::cuda::CudaOptions;
use sqa_bench::backend::{self, Backend, Choice};
use sqa_bench::plan::{length_label, parse_lengths, BatchRule, PlanSpec};
use sqa_bench::problem::{Dtype, Pattern, Scope};
use sqa_bench::report::align;
use sqa_bench::variant;
use sqa_bench::verify::{run_check, sample_rows};

use super::ScopeKind;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(long, value_enum, default_value_t = Choice::Auto)]
    pub backend: Choice,
    /// Variants to check (keys or `all`).
    #[arg(long, default_value = "all")]
    pub variants: String,
    /// Head dimensions to check [default: 16,32,64,128; layer and model scopes: 16].
    #[arg(long, value_delimiter = ',')]
    pub d_head: Option<Vec<usize>>,
    /// Small lengths checked in full [default: 1,7,129,333; layer and model scopes: 45,300].
    #[arg(long)]
    pub small_seqlen: Option<String>,
    /// Long lengths checked on sampled rows (default: 4k on the CPU, 32k,131k on a GPU).
    #[arg(long)]
    pub seqlen: Option<String>,
    #[arg(long, value_enum, default_value_t = Dtype::Bf16)]
    pub dtype: Dtype,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CUDA kernel families to check: `all` (every family of the kernel table) or names.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    pub kernel: Vec<String>,
    /// What to check: the attention kernels, or the layer or model forward (whole
    /// outputs of small shapes against the f32 forward with fp64 attention).
    #[arg(long, value_enum, default_value_t = ScopeKind::Kernel)]
    pub scope: ScopeKind,
}

/// The CUDA options of every kernel family `--kernel` names.
fn kernel_options(names: &[String]) -> anyhow::Result<Vec<CudaOptions>> {
    let choices = if names.iter().any(|n| n == "all") {
        FAMILIES.iter().map(KernelChoice::Named).collect()
    } else {
        names
            .iter()
            .map(|n| KernelChoice::parse(n))
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok(choices
        .into_iter()
        .map(|kernel| CudaOptions {
            kernel,
            ..CudaOptions::default()
        })
        .collect())
}

pub fn run(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let variants = variant::parse_list(&a.variants)?;
    let scoped = a.scope != ScopeKind::Kernel;
    let d_heads = a.d_head.clone().unwrap_or_else(|| {
        if scoped {
            vec![16]
        } else {
            vec![16, 32, 64, 128]
        }
    });
    if d_heads.is_empty() || d_heads.contains(&0) {
        anyhow::bail!("--d-head needs positive head dimensions");
    }
    // Default small lengths: one row, odd sizes, a non-multiple of every tile.
    let small_lengths = parse_lengths(a.small_seqlen.as_deref().unwrap_or(if scoped {
        super::verify_scope::SMALL_LENGTHS
    } else {
        "1,7,129,333"
    }))?;
    let opts = kernel_options(&a.kernel)?;
    let selected = backend::select(a.backend, &opts[0])?;
    if let Some(note) = &selected.note {
        eprintln!("note: {note}");
    }
    // One backend per CUDA kernel family (the CPU has one kernel).
    let mut backends: Vec<Box<dyn Backend>> = vec![selected.backend];
    if backends[0].name() == "cuda" {
        for o in &opts[1..] {
            backends.push(backend::select(Choice::Cuda, o)?.backend);
        }
    }
    if scoped {
        return super::verify_scope::run(&a, &backends, &variants, &d_heads, &small_lengths);
    }
    let long = match (&a.seqlen, backends[0].name()) {
        (Some(list), _) => parse_lengths(list)?,
        (None, "cpu") => vec![4096],
        (None, _) => vec![32768, 131072],
    };

    let mut lines = vec![vec![
        "kernel",
        "variant",
        "pattern",
        "d_head",
        "N",
        "rows",
        "max abs err",
        "max rel err",
        "result",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>()];
    let mut failures = 0;
    let mut skipped = 0;
    for &d_head in &d_heads {
        for mask in [Pattern::Full, Pattern::Causal] {
            let spec = |lens: &[usize], batch| PlanSpec {
                variants: variants.clone(),
                custom: None,
                seq_lens: lens.to_vec(),
                batch: BatchRule::Fixed(batch),
                d_model: d_head * 16,
                heads: 16,
                mask,
                window: 48,
                custom_window: false,
                dtype: a.dtype,
                scope: Scope::Kernel,
            };
            let small = spec(&small_lengths, 2).build()?;
            let big = spec(&long, 1).build()?;
            for (backend, (p, full)) in backends.iter().flat_map(|b| {
                small
                    .iter()
                    .map(|p| (p, true))
                    .chain(big.iter().map(|p| (p, false)))
                    .map(move |pf| (b.as_ref(), pf))
            }) {
                // Window variants ignore the mask: check them once.
                if mask == Pattern::Full && matches!(p.shape.pattern, Pattern::Window(_)) {
                    continue;
                }
                let rows =
                    (!full).then(|| sample_rows(p.shape.seq_len, p.shape.pattern, 8, a.seed));
                let (abs, rel, result) = match run_check(backend, p, a.seed, rows.as_deref()) {
                    Ok(c) => {
                        failures += usize::from(!c.passed());
                        (
                            format!("{:.2e}", c.max_abs),
                            format!("{:.2e}", c.max_rel),
                            c.verdict(),
                        )
                    }
                    Err(e @ sqa_bench::Error::BackendUnavailable(_)) => {
                        skipped += 1;
                        ("—".into(), "—".into(), format!("skipped: {e}"))
                    }
                    Err(e) => {
                        failures += 1;
                        ("—".into(), "—".into(), format!("ERROR {e}"))
                    }
                };
                lines.push(vec![
                    backend.kernel(p),
                    variant::display_name(&p.variant),
                    p.shape.pattern.to_string(),
                    d_head.to_string(),
                    length_label(p.shape.seq_len),
                    rows.as_ref()
                        .map_or("all".to_string(), |r| r.len().to_string()),
                    abs,
                    rel,
                    result,
                ]);
            }
        }
    }
    Ok(summarise(
        &lines,
        failures,
        skipped,
        "checks passed against the fp64 reference",
    ))
}

/// Prints the table of checks (`lines[0]` is the header) and the closing line
/// (`all N {passed}`); exit 1 when a check failed or none ran.
pub(super) fn summarise(
    lines: &[Vec<String>],
    failures: usize,
    skipped: usize,
    passed: &str,
) -> ExitCode {
    print!("{}", align(lines));
    let total = lines.len() - 1 - skipped;
    if skipped > 0 {
        println!("{skipped} checks skipped (backend, kernel or shape unsupported)");
    }
    if failures > 0 {
        println!("{failures} of {total} checks failed");
        return ExitCode::from(1);
    }
    if total == 0 {
        println!("no check ran");
        return ExitCode::from(1);
    }
    println!("all {total} {passed}");
    ExitCode::SUCCESS
}
