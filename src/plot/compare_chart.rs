//! The chart of `sqa-bench compare`: measured vs published speedups over GQA.

use crate::compare::{Comparison, BASELINE};
use crate::error::{Error, Result};
use crate::plan::length_label;
use crate::variant;

use super::draw::{Bar, BarChart, LegendEntry};
use super::{nearest_lengths, Chart};

/// Grouped bars at the lengths nearest to `at` among those compared: for each variant,
/// the published speedup over GQA (filled) next to each measured one (lighter).
pub fn compare_chart(c: &Comparison, at: &[usize], published_device: &str) -> Result<Chart> {
    let both: Vec<usize> = c
        .rows
        .iter()
        .filter(|r| r.published_speedup.is_some() && r.measured_speedup.is_some())
        .map(|r| r.seq_len)
        .collect();
    let lengths = nearest_lengths(at, &both);
    if lengths.is_empty() {
        return Err(Error::invalid(format!(
            "no compared length has {} both measured and published",
            variant::display_name(BASELINE)
        )));
    }
    let mut backends: Vec<(String, String)> = c
        .rows
        .iter()
        .map(|r| (r.backend.clone(), r.scope.clone()))
        .collect();
    backends.sort();
    backends.dedup();
    let mut variants: Vec<&str> = c
        .rows
        .iter()
        .filter(|r| r.variant != BASELINE)
        .map(|r| r.variant.as_str())
        .collect();
    variants.sort_by_key(|v| variant::order_of(v));
    variants.dedup();
    let per_variant = 1 + backends.len();
    let mut bars = Vec::new();
    for (g, &n) in lengths.iter().enumerate() {
        for (vi, v) in variants.iter().enumerate() {
            let color = variant::color_of(v);
            let rows: Vec<_> = c
                .rows
                .iter()
                .filter(|r| r.variant == *v && r.seq_len == n)
                .collect();
            if let Some(p) = rows.first().and_then(|r| r.published_speedup) {
                bars.push(Bar {
                    group: g,
                    slot: vi * per_variant,
                    color,
                    style: 0,
                    value: p,
                });
            }
            for r in &rows {
                let Some(m) = r.measured_speedup else {
                    continue;
                };
                let bi = backends
                    .iter()
                    .position(|b| b.0 == r.backend && b.1 == r.scope)
                    .unwrap_or(0);
                bars.push(Bar {
                    group: g,
                    slot: vi * per_variant + 1 + bi,
                    color,
                    style: 1 + bi,
                    value: m,
                });
            }
        }
    }
    let mut legend = vec![LegendEntry::Heading("Variant".into())];
    for v in &variants {
        legend.push(LegendEntry::Bar {
            label: variant::display_name(v),
            color: variant::color_of(v),
            style: 0,
        });
    }
    legend.push(LegendEntry::Heading("Source".into()));
    legend.push(LegendEntry::Bar {
        label: format!("published ({published_device}, whole-model step)"),
        color: (90, 90, 90),
        style: 0,
    });
    for (i, (b, scope)) in backends.iter().enumerate() {
        legend.push(LegendEntry::Bar {
            label: format!("measured ({}, {b}, {scope} scope)", c.run_device),
            color: (90, 90, 90),
            style: 1 + i,
        });
    }
    Ok(Chart::Bars(BarChart {
        title: format!(
            "Speedup over {}: measured vs published",
            variant::display_name(BASELINE)
        ),
        subtitle: c.citation.clone(),
        y_desc: format!(
            "speedup over {0} ({0} time / time)",
            variant::display_name(BASELINE)
        ),
        groups: lengths.iter().map(|&n| length_label(n)).collect(),
        slots: variants.len() * per_variant,
        bars,
        reference: Some(1.0),
        legend,
    }))
}
