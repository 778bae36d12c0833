//! `sqa-bench compare`: a run against the published SQA timings. Prints the comparison,
//! and writes it as CSV and markdown next to the run, with a chart of the speedups.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use sqa_bench::compare;
use sqa_bench::export::Format;
use sqa_bench::plot;
use sqa_bench::published;
use sqa_bench::results::{self, Meta};

use super::PublishedChoice;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run folder (with timings.csv; meta.json where present).
    pub run: PathBuf,
    /// Published set to compare with.
    #[arg(long, value_enum, default_value_t = PublishedChoice::Paper)]
    pub published: PublishedChoice,
    /// Lengths of the speedup chart (the nearest compared lengths are used).
    #[arg(long, default_value = "32k,131k")]
    pub at: String,
    /// Output format of the printed table.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(a: CompareArgs) -> anyhow::Result<ExitCode> {
    if !a.run.is_dir() {
        anyhow::bail!("run folder {} does not exist", a.run.display());
    }
    let rows = results::read_rows(&a.run)?;
    let meta = if a.run.join(results::META).exists() {
        Some(Meta::read(&a.run)?)
    } else {
        None
    };
    let at = sqa_bench::plan::parse_lengths(&a.at).context("--at")?;
    let set = published::load(a.published.name())?;
    let cmp = compare::compare(&rows, meta.as_ref(), &set)
        .with_context(|| format!("{}", a.run.display()))?;

    // Everything is computed; now write the files, then print.
    let stem = a.run.join(format!("compare-{}", set.name));
    let write = |ext: &str, text: String| {
        let path = stem.with_extension(ext);
        std::fs::write(&path, text)
            .with_context(|| format!("writing {}", path.display()))
            .map(|_| path)
    };
    let mut files = vec![write("csv", cmp.to_csv())?, write("md", cmp.to_markdown())?];
    let chart_prefix = a.run.join(format!("compare-{}-speedup", set.name));
    match plot::compare_chart(&cmp, &at, &set.device) {
        Ok(chart) => files.extend(chart.save(&chart_prefix)?),
        Err(e) => eprintln!("note: no speedup chart: {e}"),
    }

    match a.format {
        Format::Md => print!("{}", cmp.to_markdown()),
        Format::Csv => print!("{}", cmp.to_csv()),
        f => print!("{}", cmp.table().render(f)),
    }
    // Notes on stderr where stdout must stay a clean table (csv, latex).
    let notes = cmp.notes_text();
    match a.format {
        Format::Table => print!("\n{notes}"),
        Format::Md => {}
        _ => eprint!("{notes}"),
    }
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
