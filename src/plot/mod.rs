//! Charts for papers: forward time and throughput over sequence length, and speedup
//! over a baseline as grouped bars, for one or several runs (and the published timings),
//! as high-resolution PNG and as SVG.
//!
//! A series is (source, backend, kernel, variant): the variant decides the colour (from
//! the variant table), the source and backend decide the line style and marker, and
//! the legend says which is which. Text uses DejaVu Sans embedded in the binary, so no
//! font package is needed at run time.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::plan::length_label;
use crate::published::PublishedSet;
use crate::results::{self, Meta};
use crate::variant;

mod compare_chart;
pub mod draw;
mod marks;
mod series;

pub use compare_chart::compare_chart;
pub use series::{nearest_lengths, Series, Source, StyleGroup};

use draw::{Bar, BarChart, HLine, LegendEntry, Line, LineChart};

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// PNG size in pixels (the SVG is half of it, with the same layout).
pub const PNG_SIZE: (u32, u32) = (2400, 1600);
const SVG_SIZE: (u32, u32) = (1200, 800);

/// Registers the embedded font as plotters' `sans-serif` (once per process).
fn register_font() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Chart("the embedded font does not parse".into()))
    }
}

/// A chart ready to draw.
pub enum Chart {
    Lines(LineChart),
    Bars(BarChart),
}

impl Chart {
    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        scale: f64,
    ) -> std::result::Result<(), String> {
        match self {
            Chart::Lines(c) => draw::line_chart(root, c, scale),
            Chart::Bars(c) => draw::bar_chart(root, c, scale),
        }
    }

    /// Writes `<prefix>.png` and `<prefix>.svg` (the prefix may hold dots); returns both paths.
    pub fn save(&self, prefix: &Path) -> Result<Vec<PathBuf>> {
        register_font()?;
        let with = |ext: &str| {
            let mut p = prefix.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        let (png, svg) = (with(".png"), with(".svg"));
        let fail = |p: &Path, msg: String| Error::Chart(format!("{}: {msg}", p.display()));
        {
            let root = BitMapBackend::new(&png, PNG_SIZE).into_drawing_area();
            self.draw_on(&root, PNG_SIZE.0 as f64 / SVG_SIZE.0 as f64)
                .map_err(|m| fail(&png, m))?;
            root.present().map_err(|e| fail(&png, e.to_string()))?;
        }
        {
            let root = SVGBackend::new(&svg, SVG_SIZE).into_drawing_area();
            self.draw_on(&root, 1.0).map_err(|m| fail(&svg, m))?;
            root.present().map_err(|e| fail(&svg, e.to_string()))?;
        }
        Ok(vec![png, svg])
    }
}

/// What the default set of charts shows.
#[derive(Debug, Clone)]
pub struct ChartOptions {
    /// Baseline variant key of the speedup chart.
    pub baseline: String,
    /// Lengths of the speedup chart (the nearest measured ones are used).
    pub at: Vec<usize>,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            baseline: "gqa".into(),
            at: vec![32768, 131072],
        }
    }
}

/// Legend entries: one per variant (colour), then one per style group when there are several.
fn legend(series: &[Series], groups: &[StyleGroup], bars: bool) -> Vec<LegendEntry> {
    let mut keys: Vec<&str> = series.iter().map(|s| s.variant.as_str()).collect();
    keys.sort_by_key(|k| variant::order_of(k));
    keys.dedup();
    let mut out = vec![LegendEntry::Heading("Variant".into())];
    for k in keys {
        let (label, color) = (variant::display_name(k), variant::color_of(k));
        out.push(if bars {
            LegendEntry::Bar {
                label,
                color,
                style: 0,
            }
        } else {
            LegendEntry::Line {
                label,
                color,
                style: 0,
                marker: false,
            }
        });
    }
    out.push(LegendEntry::Heading(if groups.len() > 1 {
        "Run".into()
    } else {
        "Measured on".into()
    }));
    for (i, g) in groups.iter().enumerate() {
        let label = g.label.clone();
        out.push(if bars {
            LegendEntry::Bar {
                label,
                color: (90, 90, 90),
                style: i,
            }
        } else {
            LegendEntry::Line {
                label,
                color: (40, 40, 40),
                style: i,
                marker: true,
            }
        });
    }
    out
}

fn subtitle(sources: &[Source]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for s in sources {
        if !parts.contains(&s.shape) {
            parts.push(s.shape.clone());
        }
    }
    parts.join(" | ")
}

/// Forward time per call over sequence length, log-log.
pub fn time_chart(sources: &[Source]) -> Result<Chart> {
    let (series, groups) = series::build(sources);
    if series.is_empty() {
        return Err(Error::invalid("no measured row (status ok) to chart"));
    }
    let lines = series
        .iter()
        .map(|s| Line {
            color: variant::color_of(&s.variant),
            style: s.style,
            points: s
                .points
                .iter()
                .map(|p| (p.seq_len as f64, p.seconds * 1e3))
                .collect(),
        })
        .collect();
    Ok(Chart::Lines(LineChart {
        title: "Forward time vs sequence length".into(),
        subtitle: subtitle(sources),
        x_desc: "sequence length (tokens, log2 scale)".into(),
        y_desc: "forward time per call (ms, log scale)".into(),
        y_log: true,
        legend: legend(&series, &groups, false),
        lines,
        hlines: Vec::new(),
    }))
}

/// Attention throughput over sequence length, with each device's peak where known.
pub fn throughput_chart(sources: &[Source]) -> Result<Chart> {
    let (series, groups) = series::build(sources);
    let cpu_only = sources.iter().all(|s| s.is_cpu);
    let (unit, factor) = if cpu_only {
        ("GFLOP/s", 1e3)
    } else {
        ("TFLOP/s", 1.0)
    };
    let lines: Vec<Line> = series
        .iter()
        .map(|s| Line {
            color: variant::color_of(&s.variant),
            style: s.style,
            points: s
                .points
                .iter()
                .filter_map(|p| p.tflops.map(|t| (p.seq_len as f64, t * factor)))
                .collect(),
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(Error::invalid(
            "no row has a throughput (tflops_per_s) to chart",
        ));
    }
    let hlines = sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let (peak, src) = s.peak.clone()?;
            let style = groups.iter().position(|g| g.source == i).unwrap_or(0);
            Some(HLine {
                y: peak * factor,
                label: format!(
                    "peak {} {unit}, {} ({src})",
                    draw::short_number(peak * factor),
                    s.device
                ),
                style,
            })
        })
        .collect();
    Ok(Chart::Lines(LineChart {
        title: format!("Attention throughput vs sequence length ({unit})"),
        subtitle: subtitle(sources),
        x_desc: "sequence length (tokens, log2 scale)".into(),
        y_desc: format!("throughput ({unit}, forward FLOPs / median time)"),
        y_log: false,
        legend: legend(&series, &groups, false),
        lines,
        hlines,
    }))
}

/// Speedup over a baseline at chosen lengths, as grouped bars.
pub fn speedup_chart(sources: &[Source], opts: &ChartOptions) -> Result<Chart> {
    let (series, groups) = series::build(sources);
    let measured: Vec<usize> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.seq_len))
        .collect();
    let at = nearest_lengths(&opts.at, &measured);
    let base = variant::find(&opts.baseline)?.key;
    // Slots: every (style group, variant) that has a speedup at one of the lengths.
    let mut slots: Vec<(usize, String)> = Vec::new();
    let mut bars = Vec::new();
    for (g, &n) in at.iter().enumerate() {
        for s in &series {
            let Some(b) = series
                .iter()
                .find(|b| b.variant == base && b.group == s.group)
                .and_then(|b| b.at(n))
            else {
                continue;
            };
            let Some(t) = s.at(n) else { continue };
            let key = (s.style, s.variant.clone());
            if !slots.contains(&key) {
                slots.push(key.clone());
            }
            bars.push((g, key, b / t));
        }
    }
    if bars.is_empty() {
        return Err(Error::invalid(format!(
            "no length of {} has both {} and another variant measured",
            at.iter()
                .map(|&n| length_label(n))
                .collect::<Vec<_>>()
                .join(", "),
            variant::display_name(base)
        )));
    }
    slots.sort_by_key(|(st, v)| (variant::order_of(v), *st));
    let bars = bars
        .into_iter()
        .map(|(group, key, value)| Bar {
            group,
            slot: slots.iter().position(|k| *k == key).unwrap_or(0),
            color: variant::color_of(&key.1),
            style: key.0,
            value,
        })
        .collect();
    Ok(Chart::Bars(BarChart {
        title: format!("Speedup over {} (× faster)", variant::display_name(base)),
        subtitle: subtitle(sources),
        y_desc: format!(
            "speedup over {0} ({0} time / time)",
            variant::display_name(base)
        ),
        groups: at.iter().map(|&n| length_label(n)).collect(),
        slots: slots.len(),
        bars,
        reference: Some(1.0),
        legend: legend(&series, &groups, true),
    }))
}

/// Writes the time, throughput and speedup charts as `<prefix>-{time,throughput,speedup}.{png,svg}`.
/// The throughput chart is left out when no row has a FLOP rate (published rows), the
/// speedup chart when the baseline was not measured; `Written::skipped` says so.
pub fn write_default_charts(
    sources: &[Source],
    prefix: &Path,
    opts: &ChartOptions,
) -> Result<Written> {
    // Build every chart first: a chart that cannot be made is a note, not a half-written set.
    let mut charts = vec![("time", time_chart(sources)?)];
    let mut skipped = Vec::new();
    for (kind, chart) in [
        ("throughput", throughput_chart(sources)),
        ("speedup", speedup_chart(sources, opts)),
    ] {
        match chart {
            Ok(c) => charts.push((kind, c)),
            Err(Error::Invalid(msg)) => skipped.push(format!("no {kind} chart: {msg}")),
            Err(e) => return Err(e),
        }
    }
    if let Some(parent) = prefix.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let mut files = Vec::new();
    for (kind, chart) in charts {
        let mut path = prefix.as_os_str().to_owned();
        path.push(format!("-{kind}"));
        files.extend(chart.save(Path::new(&path))?);
    }
    Ok(Written { files, skipped })
}

/// Files written, and the charts left out with the reason.
#[derive(Debug, Clone)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<String>,
}

/// Loads a run folder (`timings.csv`, and `meta.json` where present) as a chart source.
pub fn load_run(dir: &Path) -> Result<Source> {
    if !dir.is_dir() {
        return Err(Error::invalid(format!(
            "run folder {} does not exist",
            dir.display()
        )));
    }
    let rows = results::read_rows(dir)?;
    let meta = if dir.join(results::META).exists() {
        Some(Meta::read(dir)?)
    } else {
        None
    };
    if !rows.iter().any(|r| r.is_ok()) {
        return Err(Error::invalid(format!(
            "{}: no measured row (status ok) to chart",
            dir.join(results::TIMINGS).display()
        )));
    }
    Ok(Source::from_run(meta.as_ref(), rows))
}

/// The published set as a chart source (scope `model`, no FLOP counts).
pub fn published_source(set: &PublishedSet) -> Source {
    Source::from_published(set)
}
