//! `sqa-bench table`: a run's main table (variants × lengths, time and speedup) as text,
//! markdown, LaTeX or CSV, for papers and READMEs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use sqa_bench::export::{self, Format};
use sqa_bench::results;

#[derive(Debug, Args)]
pub struct TableArgs {
    /// Run folder (or a timings.csv).
    pub run: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Baseline of the speedup.
    #[arg(long, default_value = "gqa")]
    pub baseline: String,
}

pub fn run(a: TableArgs) -> anyhow::Result<ExitCode> {
    let baseline = sqa_bench::variant::find(&a.baseline)
        .context("--baseline")?
        .key;
    if !a.run.exists() {
        anyhow::bail!("run folder {} does not exist", a.run.display());
    }
    let rows = results::read_rows(&a.run)?;
    if rows.is_empty() {
        anyhow::bail!("{}: no rows", a.run.display());
    }
    if a.format == Format::Csv {
        print!("{}", export::run_csv(&rows, baseline));
        return Ok(ExitCode::SUCCESS);
    }
    let tables = export::run_tables(&rows, baseline);
    let text: Vec<String> = tables.iter().map(|t| t.render(a.format)).collect();
    print!("{}", text.join("\n"));
    Ok(ExitCode::SUCCESS)
}
