//! Marks shared by every chart: dashed lines, markers, bar boxes, and the legend panel.
//! Pixel sizes are for a 1200 × 800 canvas and multiplied by `scale`.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::draw::DrawResult;

/// Colour as RGB.
pub type Rgb = (u8, u8, u8);

/// A legend line: a sample (line with marker, or a bar box) and its text.
#[derive(Debug, Clone)]
pub enum LegendEntry {
    Heading(String),
    Line {
        label: String,
        color: Rgb,
        style: usize,
        marker: bool,
    },
    Bar {
        label: String,
        color: Rgb,
        style: usize,
    },
}

/// Dash and gap lengths (in 1× pixels) of line style `i`; (0, 0) is solid.
pub(super) fn dash(style: usize) -> (u32, u32) {
    [(0, 0), (12, 6), (4, 4), (18, 5), (8, 8)][style % 5]
}

pub(super) fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

pub(super) fn font(size: f64) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

/// Draws a polyline, solid or dashed, in backend pixels.
pub(super) fn polyline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pts: &[(i32, i32)],
    color: Rgb,
    style: usize,
    width: u32,
    scale: f64,
) -> DrawResult {
    let shape = rgb(color).stroke_width(width);
    let (d, g) = dash(style);
    let r = if d == 0 {
        area.draw(&PathElement::new(pts.to_vec(), shape))
    } else {
        let s = |v: u32| (v as f64 * scale).round() as i32;
        area.draw(&DashedPathElement::new(pts.to_vec(), s(d), s(g), shape))
    };
    r.map_err(|e| e.to_string())
}

/// Draws marker `style` (circle, triangle, square, diamond, cross) at a pixel.
pub(super) fn marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    color: Rgb,
    style: usize,
    scale: f64,
) -> DrawResult {
    let r = (5.0 * scale) as i32;
    let c = rgb(color);
    let res = match style % 5 {
        0 => area.draw(&Circle::new((x, y), r, c.filled())),
        1 => area.draw(&Polygon::new(
            vec![(x, y - r - 1), (x - r - 1, y + r), (x + r + 1, y + r)],
            c.filled(),
        )),
        2 => area.draw(&Rectangle::new(
            [(x - r, y - r), (x + r, y + r)],
            c.filled(),
        )),
        3 => area.draw(&Polygon::new(
            vec![
                (x, y - r - 2),
                (x + r + 2, y),
                (x, y + r + 2),
                (x - r - 2, y),
            ],
            c.filled(),
        )),
        _ => area.draw(&Cross::new((x, y), r, c.stroke_width((2.0 * scale) as u32))),
    };
    res.map_err(|e| e.to_string())
}

/// Splits text into lines of at most `width` characters at spaces.
pub(super) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Draws the legend entries top-down in `area`.
pub(super) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    scale: f64,
) -> DrawResult {
    let s = |v: f64| (v * scale).round() as i32;
    let text = font(15.0 * scale);
    let bold = font(17.0 * scale);
    let (mut y, x0, sample) = (s(70.0), s(8.0), s(40.0));
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    for entry in entries {
        match entry {
            LegendEntry::Heading(t) => {
                y += s(6.0);
                area.draw_text(t, &bold, (x0, y)).map_err(e)?;
                y += s(24.0);
            }
            LegendEntry::Line {
                label,
                color,
                style,
                marker: m,
            } => {
                let mid = y + s(9.0);
                polyline(
                    area,
                    &[(x0, mid), (x0 + sample, mid)],
                    *color,
                    *style,
                    (2.5 * scale) as u32,
                    scale,
                )?;
                if *m {
                    marker(area, (x0 + sample / 2, mid), *color, *style, scale)?;
                }
                let lines = wrap(label, 30);
                for (i, l) in lines.iter().enumerate() {
                    area.draw_text(l, &text, (x0 + sample + s(8.0), y + i as i32 * s(18.0)))
                        .map_err(e)?;
                }
                y += s(18.0) * (lines.len() as i32 - 1).max(0);
                y += s(24.0);
            }
            LegendEntry::Bar {
                label,
                color,
                style,
            } => {
                bar_box(
                    area,
                    (x0, y + s(2.0)),
                    (x0 + s(26.0), y + s(18.0)),
                    *color,
                    *style,
                    scale,
                )?;
                let lines = wrap(label, 32);
                for (i, l) in lines.iter().enumerate() {
                    area.draw_text(l, &text, (x0 + s(34.0), y + i as i32 * s(18.0)))
                        .map_err(e)?;
                }
                y += s(18.0) * (lines.len() as i32 - 1).max(0);
                y += s(24.0);
            }
        }
    }
    Ok(())
}

/// A bar rectangle in pixels: style 0 filled, 1 light fill with border, 2+ outline only.
pub(super) fn bar_box<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    a: (i32, i32),
    b: (i32, i32),
    color: Rgb,
    style: usize,
    scale: f64,
) -> DrawResult {
    let c = rgb(color);
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    match style {
        0 => area.draw(&Rectangle::new([a, b], c.filled())).map_err(e),
        1 => {
            area.draw(&Rectangle::new([a, b], c.mix(0.35).filled()))
                .map_err(e)?;
            area.draw(&Rectangle::new(
                [a, b],
                c.stroke_width((2.0 * scale) as u32),
            ))
            .map_err(e)
        }
        _ => area
            .draw(&Rectangle::new(
                [a, b],
                c.stroke_width((2.0 * scale) as u32),
            ))
            .map_err(e),
    }
}
