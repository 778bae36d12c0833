//! `sqa-bench plot`: paper charts (PNG and SVG) of one or several runs, optionally with
//! the published SQA timings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use sqa_bench::plan::parse_lengths;
use sqa_bench::plot::{self, ChartOptions};
use sqa_bench::published;
use sqa_bench::results::{Meta, Row};

use super::PublishedChoice;

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Run folders (each with timings.csv and meta.json).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Prefix of the chart files: writes PREFIX-{time,throughput,speedup}.{png,svg}
    /// [default: RUN_DIR/plot for one run, plots/combined for several].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Baseline of the speedup chart.
    #[arg(long, default_value = "gqa")]
    pub baseline: String,
    /// Lengths of the speedup chart (the nearest measured lengths are used).
    #[arg(long, default_value = "32k,131k")]
    pub at: String,
    /// Variants to chart: comma-separated keys, or `all`.
    #[arg(long, default_value = "all")]
    pub variants: String,
    /// Add a published set as one more run (whole-model steps, so only comparable by speedup).
    #[arg(long, value_enum)]
    pub published: Option<PublishedChoice>,
}

pub fn run(a: PlotArgs) -> anyhow::Result<ExitCode> {
    let baseline = sqa_bench::variant::find(&a.baseline)
        .context("--baseline")?
        .key
        .to_string();
    let at = parse_lengths(&a.at).context("--at")?;
    let keep: Vec<&str> = sqa_bench::variant::parse_list(&a.variants)
        .context("--variants")?
        .iter()
        .map(|v| v.key)
        .collect();
    let all = a.variants.trim().eq_ignore_ascii_case("all");
    let mut sources = Vec::new();
    for dir in &a.runs {
        sources.push(plot::load_run(dir)?);
    }
    if let Some(p) = a.published {
        sources.push(plot::published_source(&published::load(p.name())?));
    }
    if !all {
        for s in &mut sources {
            s.rows.retain(|r| keep.contains(&r.variant.as_str()));
        }
        sources.retain(|s| !s.rows.is_empty());
        if sources.is_empty() {
            anyhow::bail!(
                "--variants {}: no measured row of these variants",
                a.variants
            );
        }
    }
    let out = match (&a.out, a.runs.as_slice()) {
        (Some(o), _) => o.clone(),
        (None, [one]) => one.join("plot"),
        (None, _) => PathBuf::from("plots/combined"),
    };
    let written = plot::write_default_charts(&sources, &out, &ChartOptions { baseline, at })?;
    for f in &written.files {
        println!("wrote {}", f.display());
    }
    for note in &written.skipped {
        eprintln!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The default charts of a finished run, as `RUN_DIR/plot-*.{png,svg}`. A run that
/// cannot be charted (e.g. one variant only) gets a note, never a failed run.
pub fn after_run(dir: &Path, meta: &Meta, rows: &[Row], baseline: &str) {
    let source = plot::Source::from_run(Some(meta), rows.to_vec());
    let opts = ChartOptions {
        baseline: baseline.to_ascii_lowercase(),
        ..ChartOptions::default()
    };
    match plot::write_default_charts(&[source], &dir.join("plot"), &opts) {
        Ok(w) => {
            println!(
                "wrote {} chart files to {}",
                w.files.len(),
                dir.join("plot-*").display()
            );
            for note in &w.skipped {
                eprintln!("note: {note}");
            }
        }
        Err(e) => eprintln!("note: no charts: {e}"),
    }
}
