//! Drawing of the two chart shapes the program makes — lines over log2 sequence length,
//! and grouped bars — on any plotters backend, with a legend panel right of the plot so
//! it never hides data. Sizes are given for a 1200 × 800 canvas and multiplied by `scale`.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::plan::length_label;

use super::marks::{bar_box, font, legend, marker, polyline};
pub use super::marks::{LegendEntry, Rgb};

/// Drawing failures, already turned into text.
pub type DrawResult = std::result::Result<(), String>;

/// A linear axis with explicit tick positions (log axes are drawn in log units).
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

fn axis(range: Range<f64>, ticks: Vec<f64>) -> Axis {
    Axis {
        lo: range.start,
        hi: range.end,
        ticks,
    }
}

/// One line series: (x, y) in data units.
#[derive(Debug, Clone)]
pub struct Line {
    pub color: Rgb,
    /// Dash pattern and marker index (0 = solid with circles).
    pub style: usize,
    pub points: Vec<(f64, f64)>,
}

/// A horizontal reference line with its text.
#[derive(Debug, Clone)]
pub struct HLine {
    pub y: f64,
    pub label: String,
    pub style: usize,
}

/// A chart of lines over sequence length (x = tokens, drawn on a log2 axis).
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub subtitle: String,
    pub x_desc: String,
    pub y_desc: String,
    /// Log10 y axis (time), else linear from 0 (throughput).
    pub y_log: bool,
    pub lines: Vec<Line>,
    pub hlines: Vec<HLine>,
    pub legend: Vec<LegendEntry>,
}

/// One bar: its group (x category), slot inside the group and value.
#[derive(Debug, Clone)]
pub struct Bar {
    pub group: usize,
    pub slot: usize,
    pub color: Rgb,
    pub style: usize,
    pub value: f64,
}

/// Grouped bars with a reference line (speedup 1).
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub subtitle: String,
    pub y_desc: String,
    pub groups: Vec<String>,
    pub slots: usize,
    pub bars: Vec<Bar>,
    pub reference: Option<f64>,
    pub legend: Vec<LegendEntry>,
}

/// The plot area (left) and the legend area (right).
type Panels<DB> = (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>);

/// Title, subtitle, and the split into plot (left) and legend (right) areas.
fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    scale: f64,
) -> std::result::Result<Panels<DB>, String> {
    let s = |v: f64| (v * scale).round() as i32;
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (w, _) = root.dim_in_pixel();
    let centre = Pos::new(HPos::Center, VPos::Top);
    root.draw_text(
        title,
        &font(26.0 * scale).pos(centre),
        (w as i32 / 2, s(12.0)),
    )
    .map_err(|e| e.to_string())?;
    root.draw_text(
        subtitle,
        &font(16.0 * scale).color(&RGBColor(80, 80, 80)).pos(centre),
        (w as i32 / 2, s(46.0)),
    )
    .map_err(|e| e.to_string())?;
    let body = root.margin(s(70.0), s(10.0), s(10.0), s(10.0));
    let legend_w = (290.0 * scale) as u32;
    let (plot, side) = body.split_horizontally(body.dim_in_pixel().0 - legend_w);
    Ok((plot, side))
}

/// Key points of a log2 length axis: every power of two in range (every other one when
/// there are many), plus measured lengths that are not powers of two.
fn log2_ticks(lo: f64, hi: f64, extra: &[f64]) -> Vec<f64> {
    let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
    let step = if b - a > 10 { 2 } else { 1 };
    let mut t: Vec<f64> = (a..=b).step_by(step).map(|k| k as f64).collect();
    for &x in extra {
        if x.fract().abs() > 1e-9 && t.iter().all(|k| (k - x).abs() >= 0.45) {
            t.push(x);
        }
    }
    t.sort_by(f64::total_cmp);
    t
}

/// Key points of a log10 axis covering [lo, hi] (log10 units), and the padded range.
fn log10_ticks(lo: f64, hi: f64) -> (Vec<f64>, f64, f64) {
    let span = hi - lo;
    let mults: &[f64] = if span > 2.5 {
        &[1.0]
    } else if span > 1.2 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]
    };
    let mut cand = Vec::new();
    for k in (lo.floor() as i32 - 1)..=(hi.ceil() as i32 + 1) {
        for m in mults {
            cand.push((m * 10f64.powi(k)).log10());
        }
    }
    let low = cand
        .iter()
        .copied()
        .filter(|c| *c <= lo + 1e-9)
        .fold(lo, f64::min);
    let low = cand
        .iter()
        .copied()
        .filter(|c| *c <= lo + 1e-9)
        .fold(low, f64::max);
    let high = cand
        .iter()
        .copied()
        .filter(|c| *c >= hi - 1e-9)
        .fold(hi, f64::max);
    let high = cand
        .iter()
        .copied()
        .filter(|c| *c >= hi - 1e-9)
        .fold(high, f64::min);
    let ticks = cand
        .into_iter()
        .filter(|c| *c >= low - 1e-9 && *c <= high + 1e-9)
        .collect();
    (ticks, low, high)
}

/// A number with up to 3 significant digits, no trailing zeros.
pub fn short_number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Draws a line chart on `root`.
pub fn line_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &LineChart,
    scale: f64,
) -> DrawResult {
    let (plot, side) = frame(root, &c.title, &c.subtitle, scale)?;
    let s = |v: f64| (v * scale).round() as u32;
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let xs: Vec<f64> = c
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0.log2()))
        .collect();
    let ys: Vec<f64> = c
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .collect();
    if xs.is_empty() {
        return Err("no measured points to draw".into());
    }
    let (x_lo, x_hi) = (
        xs.iter().copied().fold(f64::MAX, f64::min),
        xs.iter().copied().fold(f64::MIN, f64::max),
    );
    let (x0, x1) = (x_lo - 0.3, x_hi + 0.3);
    let x_axis = axis(x0..x1, log2_ticks(x0, x1, &xs));
    let (y_axis, to_y): (Axis, Box<dyn Fn(f64) -> f64>) = if c.y_log {
        let lv: Vec<f64> = ys.iter().map(|y| y.log10()).collect();
        let (t, lo, hi) = log10_ticks(
            lv.iter().copied().fold(f64::MAX, f64::min),
            lv.iter().copied().fold(f64::MIN, f64::max),
        );
        (axis(lo..hi, t), Box::new(|y: f64| y.log10()))
    } else {
        let top = ys
            .iter()
            .chain(c.hlines.iter().map(|h| &h.y))
            .copied()
            .fold(0.0, f64::max)
            * 1.12;
        let step = nice_step(top / 6.0);
        let ticks = (0..=((top / step) as usize))
            .map(|i| i as f64 * step)
            .collect();
        (axis(0.0..top, ticks), Box::new(|y: f64| y))
    };
    let y_log = c.y_log;
    let x_fmt = |x: &f64| length_label(2f64.powf(*x).round() as usize);
    let y_fmt = move |y: &f64| short_number(if y_log { 10f64.powf(*y) } else { *y });
    let mut chart = ChartBuilder::on(&plot)
        .margin(s(12.0))
        .x_label_area_size(s(60.0))
        .y_label_area_size(s(80.0))
        .build_cartesian_2d(x_axis, y_axis)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(c.x_desc.as_str())
        .y_desc(c.y_desc.as_str())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(font(17.0 * scale))
        .axis_desc_style(font(19.0 * scale))
        .bold_line_style(RGBColor(225, 225, 225).stroke_width(s(1.0)))
        .axis_style(BLACK.stroke_width(s(1.5)))
        .draw()
        .map_err(e)?;
    let area = chart.plotting_area().strip_coord_spec();
    let map = |x: f64, y: f64| chart.backend_coord(&(x.log2(), to_y(y)));
    for h in &c.hlines {
        let (l, r) = (
            chart.backend_coord(&(x0, to_y(h.y))),
            chart.backend_coord(&(x1, to_y(h.y))),
        );
        let (ox, oy) = plot.get_base_pixel();
        let rel = |p: (i32, i32)| (p.0 - ox, p.1 - oy);
        polyline(
            &plot,
            &[rel(l), rel(r)],
            (60, 60, 60),
            1 + h.style,
            s(1.5),
            scale,
        )?;
        let style = font(14.0 * scale).pos(Pos::new(HPos::Right, VPos::Bottom));
        plot.draw_text(
            &h.label,
            &style,
            (rel(r).0 - s(6.0) as i32, rel(r).1 - s(4.0) as i32),
        )
        .map_err(e)?;
    }
    let (ox, oy) = area.get_base_pixel();
    for l in &c.lines {
        let mut pts: Vec<(f64, f64)> = l.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let px: Vec<(i32, i32)> = pts
            .iter()
            .map(|p| map(p.0, p.1))
            .map(|(x, y)| (x - ox, y - oy))
            .collect();
        polyline(&area, &px, l.color, l.style, s(2.5), scale)?;
        for p in &px {
            marker(&area, *p, l.color, l.style, scale)?;
        }
    }
    legend(&side, &c.legend, scale)
}

/// A step of 1, 2 or 5 × 10^k near `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    p * if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// Draws a grouped bar chart on `root`.
pub fn bar_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &BarChart,
    scale: f64,
) -> DrawResult {
    let (plot, side) = frame(root, &c.title, &c.subtitle, scale)?;
    let s = |v: f64| (v * scale).round() as u32;
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    if c.bars.is_empty() {
        return Err("no bars to draw".into());
    }
    // Speedups spanning more than 20× (windowed variants next to dense ones) go on a
    // log axis, with bars growing up (faster) or down (slower) from the reference.
    let (lo_v, hi_v) = c
        .bars
        .iter()
        .map(|b| b.value)
        .chain(c.reference)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let log = lo_v > 0.0 && hi_v / lo_v > 20.0;
    let to_y = move |y: f64| if log { y.log10() } else { y };
    let (y_range, y_ticks) = if log {
        let (t, lo, hi) = log10_ticks(lo_v.log10(), hi_v.log10() + 0.05);
        (lo..hi, t)
    } else {
        let top = hi_v * 1.15;
        let step = nice_step(top / 6.0);
        let t = (0..=((top / step) as usize))
            .map(|i| i as f64 * step)
            .collect();
        (0.0..top, t)
    };
    let base = if log {
        to_y(c.reference.unwrap_or(lo_v))
    } else {
        0.0
    };
    let y_desc = if log {
        format!("{}, log scale", c.y_desc)
    } else {
        c.y_desc.clone()
    };
    let n = c.groups.len() as f64;
    let x_ticks = (0..c.groups.len()).map(|g| g as f64 + 0.5).collect();
    let groups = c.groups.clone();
    let x_fmt = move |x: &f64| groups.get(x.floor() as usize).cloned().unwrap_or_default();
    let y_fmt = move |y: &f64| short_number(if log { 10f64.powf(*y) } else { *y });
    let mut chart = ChartBuilder::on(&plot)
        .margin(s(12.0))
        .x_label_area_size(s(60.0))
        .y_label_area_size(s(80.0))
        .build_cartesian_2d(axis(0.0..n, x_ticks), axis(y_range, y_ticks))
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("sequence length (tokens)")
        .y_desc(y_desc.as_str())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(font(17.0 * scale))
        .axis_desc_style(font(19.0 * scale))
        .bold_line_style(RGBColor(225, 225, 225).stroke_width(s(1.0)))
        .axis_style(BLACK.stroke_width(s(1.5)))
        .draw()
        .map_err(e)?;
    let area = chart.plotting_area().strip_coord_spec();
    let (ox, oy) = area.get_base_pixel();
    let px = |x: f64, y: f64| {
        let (a, b) = chart.backend_coord(&(x, y));
        (a - ox, b - oy)
    };
    let width = 0.84 / c.slots.max(1) as f64;
    for b in &c.bars {
        let left = b.group as f64 + 0.08 + b.slot as f64 * width;
        let (end, start) = (
            px(left + width * 0.06, to_y(b.value)),
            px(left + width * 0.94, base),
        );
        let (p0, p1) = ((end.0, end.1.min(start.1)), (start.0, end.1.max(start.1)));
        bar_box(&area, p0, p1, b.color, b.style, scale)?;
        // The value beyond the bar's end where it fits ("12.34" is about 30 px at 12 px).
        if (p1.0 - p0.0) as f64 >= 30.0 * scale {
            let up = end.1 <= start.1;
            let (v, dy) = if up {
                (VPos::Bottom, -3.0)
            } else {
                (VPos::Top, 3.0)
            };
            let style = font(12.0 * scale).pos(Pos::new(HPos::Center, v));
            area.draw_text(
                &format!("{:.2}", b.value),
                &style,
                ((p0.0 + p1.0) / 2, end.1 + (dy * scale) as i32),
            )
            .map_err(e)?;
        }
    }
    if let Some(r) = c.reference {
        let (l, rr) = (px(0.0, to_y(r)), px(n, to_y(r)));
        polyline(&area, &[l, rr], (0, 0, 0), 1, s(1.5), scale)?;
    }
    legend(&side, &c.legend, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_data() {
        let t = log2_ticks(9.7, 17.9, &[200000f64.log2()]);
        assert_eq!(t.first(), Some(&10.0));
        assert!(t.contains(&17.0) && t.iter().any(|x| (x - 200000f64.log2()).abs() < 1e-9));
        let (t, lo, hi) = log10_ticks(0.2, 2.7);
        assert!(lo <= 0.2 && hi >= 2.7 && t.len() >= 3, "{t:?} {lo} {hi}");
        assert_eq!(short_number(1000.0), "1000");
        assert_eq!(short_number(0.0125), "0.0125");
        assert_eq!(short_number(1.5), "1.5");
        assert_eq!(nice_step(0.33), 0.5);
        assert_eq!(
            super::super::marks::wrap("a bb ccc dddd", 6),
            vec!["a bb", "ccc", "dddd"]
        );
    }
}
