//! `sqa-bench run`: a sweep of variants × lengths on one backend.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use sqa_bench::backend::{self, Choice};
use sqa_bench::plan::length_label;
use sqa_bench::plan::BatchRule;
use sqa_bench::report::{align, SpeedTable};
use sqa_bench::results::{self, CsvSink, Meta, Row};
use sqa_bench::{sweep, sysinfo, variant};

use super::{CudaArgs, MeasureArgs, ShapeArgs};

/// Default lengths on a GPU: 1k … 131k, with 131,072 tokens per step.
const GPU_LENGTHS: &[usize] = &[1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];
const GPU_TOKENS_PER_STEP: usize = 131072;
/// Default lengths on the CPU: about a minute on 2 cores for all variants, batch 1.
const CPU_LENGTHS: &[usize] = &[1024, 2048, 4096, 8192];

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where to run: auto picks CUDA when a driver and device are found.
    #[arg(long, value_enum, default_value_t = Choice::Auto)]
    pub backend: Choice,
    #[command(flatten)]
    pub shape: ShapeArgs,
    #[command(flatten)]
    pub measure: MeasureArgs,
    #[command(flatten)]
    pub cuda: CudaArgs,
    /// Baseline of the speedup column of the printed table.
    #[arg(long, default_value = "gqa")]
    pub baseline: String,
    /// Parent folder of the run folder.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the validated plan (one line per problem) and exit without running or writing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not write the default charts next to timings.csv.
    #[arg(long)]
    pub no_plot: bool,
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    // Everything that can be refused is refused before the backend opens or a file is written.
    let cfg = a.measure.config()?;
    sqa_bench::variant::find(&a.baseline).context("--baseline")?;
    let cuda = a.cuda.options().context("--kernel")?;
    let selected = backend::select(a.backend, &cuda)?;
    let backend = selected.backend.as_ref();
    if let Some(note) = &selected.note {
        eprintln!("note: {note}");
    }
    let (lengths, batch) = match backend.name() {
        "cpu" => (CPU_LENGTHS, BatchRule::Fixed(1)),
        _ => (GPU_LENGTHS, BatchRule::TokensPerStep(GPU_TOKENS_PER_STEP)),
    };
    let plan = a.shape.plan_spec(lengths, batch)?.build()?;
    if a.dry_run {
        print_plan(&plan);
        return Ok(ExitCode::SUCCESS);
    }
    // Refuse bad input before anything is written. A problem that does not fit memory
    // becomes a row with status `oom` and the sweep goes on, unless none fits at all.
    let mut first_oom = None;
    let mut fits = 0;
    for p in &plan {
        match backend.check(p) {
            Ok(()) => fits += 1,
            Err(e @ sqa_bench::Error::OutOfMemory { .. }) => {
                first_oom.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let (0, Some(e)) = (fits, first_oom) {
        return Err(e.into());
    }
    results::check_writable(&a.out)
        .with_context(|| format!("output folder {}", a.out.display()))?;

    let device = backend.device();
    let dir = results::create_run_dir(&a.out, backend.name(), &device)?;
    let mut meta = Meta {
        backend: backend.name().to_string(),
        device: device.clone(),
        device_info: backend.device_info(),
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: sysinfo::git_commit(),
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        seed: a.measure.seed,
        started_utc: results::utc_now(),
        finished_utc: None,
    };
    meta.write(&dir)?;
    eprintln!(
        "{} problems on {} ({}), writing {}",
        plan.len(),
        backend.name(),
        device,
        dir.display()
    );

    let mut sink = CsvSink::create(&dir.join(results::TIMINGS))?;
    let rows = sweep::run(backend, &plan, &cfg, a.measure.seed, &mut sink, !a.quiet)?;
    meta.finished_utc = Some(results::utc_now());
    meta.device_info = backend.device_info();
    meta.write(&dir)?;

    print!(
        "{}",
        SpeedTable::from_rows(&rows, &a.baseline.to_ascii_lowercase()).to_text()
    );
    if let Some(summary) = peak_summary(&rows, &meta.device_info) {
        print!("{summary}");
    }
    if !a.no_plot {
        super::plot::after_run(&dir, &meta, &rows, &a.baseline);
    }
    let failed = rows.iter().filter(|r| !r.is_ok()).count();
    let wrong = rows.iter().filter(|r| r.verified == "fail").count();
    println!(
        "wrote {} rows to {}",
        rows.len(),
        dir.join(results::TIMINGS).display()
    );
    if failed > 0 {
        println!("{failed} rows did not measure (see the status and error columns)");
    }
    if wrong > 0 {
        eprintln!("error: {wrong} rows disagree with the fp64 reference (verified = fail)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per problem: what a sweep would run, with its FLOPs.
fn print_plan(plan: &[sqa_bench::problem::Problem]) {
    let mut lines = vec![[
        "scope", "variant", "batch", "seq_len", "H_q", "H_kv", "d_head", "pattern", "dtype",
        "GFLOP",
    ]
    .map(String::from)
    .to_vec()];
    for p in plan {
        let s = &p.shape;
        lines.push(vec![
            match p.scope {
                sqa_bench::problem::Scope::Model(m) => {
                    format!("model(L={}, d_ff={}, V={})", m.layers, m.d_ff, m.vocab)
                }
                other => other.name().to_string(),
            },
            p.variant.clone(),
            s.batch.to_string(),
            s.seq_len.to_string(),
            s.heads.q.to_string(),
            s.heads.kv.to_string(),
            s.d_head.to_string(),
            s.pattern.to_string(),
            p.dtype.to_string(),
            format!("{:.3}", sqa_bench::model::cost::problem_cost(p).flops / 1e9),
        ]);
    }
    print!("{}", sqa_bench::report::align(&lines));
}

/// GFLOP/s of every measured row and its share of the device's measured sgemm rate,
/// as a variant × length table; `None` when the backend measured no sgemm (GPUs).
fn peak_summary(rows: &[Row], device_info: &serde_json::Value) -> Option<String> {
    let sgemm = device_info.get("sgemm_gflops")?.as_f64()?;
    let mut lengths: Vec<usize> = rows.iter().map(|r| r.seq_len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let mut variants: Vec<&str> = Vec::new();
    for r in rows {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    variants.sort_by_key(|k| variant::order_of(k));
    let mut lines = vec![std::iter::once("GFLOP/s (% of sgemm)".to_string())
        .chain(lengths.iter().map(|&n| length_label(n)))
        .collect::<Vec<_>>()];
    for v in variants {
        let mut line = vec![variant::display_name(v)];
        for &n in &lengths {
            let row = rows.iter().find(|r| r.variant == v && r.seq_len == n);
            line.push(
                match row.and_then(|r| r.median_ms.filter(|_| r.is_ok()).map(|ms| (r, ms))) {
                    Some((r, ms)) => {
                        let g = r.flops / (ms * 1e-3) / 1e9;
                        format!("{g:.1} ({:.0}%)", 100.0 * g / sgemm)
                    }
                    None => "—".to_string(),
                },
            );
        }
        lines.push(line);
    }
    let source = device_info
        .get("peak_source")
        .and_then(|s| s.as_str())
        .unwrap_or("sgemm");
    Some(format!("{}{source}: {sgemm:.1} GFLOP/s\n", align(&lines)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqa_bench::backend::cpu::CpuBackend;
    use sqa_bench::problem::{AttnShape, Dtype, Pattern, Problem, Scope};

    fn row(variant: &str, n: usize, ms: Option<f64>) -> Row {
        let heads = variant::find(variant).unwrap().heads(16).unwrap();
        let p = Problem {
            variant: variant.into(),
            d_model: 1024,
            shape: AttnShape {
                batch: 1,
                seq_len: n,
                heads,
                d_head: 64,
                pattern: Pattern::Causal,
            },
            dtype: Dtype::Bf16,
            scope: Scope::Kernel,
        };
        let mut r = sweep::base_row(&CpuBackend::new(), "cpu", &p);
        r.median_ms = ms;
        if ms.is_none() {
            r.status = "oom".into();
        }
        r
    }

    #[test]
    fn peak_summary_gives_gflops_and_share_of_sgemm() {
        let mha = row("mha", 1024, Some(10.0));
        let gflops = mha.flops / 1e-2 / 1e9;
        let rows = [mha, row("xsqa", 1024, None)];
        let info = serde_json::json!({"sgemm_gflops": gflops * 2.0, "peak_source": "test"});
        let text = peak_summary(&rows, &info).unwrap();
        assert!(text.contains(&format!("{gflops:.1} (50%)")), "{text}");
        assert!(text.contains("xSQA") && text.contains('—'), "{text}");
        assert!(peak_summary(&rows, &serde_json::json!({})).is_none());
    }
}
