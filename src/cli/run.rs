//! `sqa-bench run`: a sweep of variants × lengths on one backend.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use sqa_bench::backend::{self, Choice};
use sqa_bench::plan::BatchRule;
use sqa_bench::report::SpeedTable;
use sqa_bench::results::{self, CsvSink, Meta};
use sqa_bench::{sweep, sysinfo};

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
    // Refuse bad input before anything is written; a problem that does not fit memory
    // becomes a row with status `oom` and the sweep goes on, unless no problem fits
    // (then there is nothing to measure: refused like any bad input).
    let mut first_oom = None;
    let mut fitting = 0;
    for p in &plan {
        match backend.check(p) {
            Ok(()) => fitting += 1,
            Err(e @ sqa_bench::Error::OutOfMemory { .. }) => {
                first_oom.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let (0, Some(e)) = (fitting, first_oom) {
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
