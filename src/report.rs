//! Text tables of a run: time per variant and length, and speedup against a baseline.

use std::collections::BTreeMap;

use crate::plan::length_label;
use crate::results::Row;
use crate::variant;

/// One cell of the main table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub median_ms: f64,
    /// baseline time / this time, where the baseline was measured at the same length.
    pub speedup: Option<f64>,
}

/// The main table: variant keys in table order, lengths ascending, cells by (variant, length).
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedTable {
    pub variants: Vec<String>,
    pub lengths: Vec<usize>,
    pub cells: BTreeMap<(String, usize), Cell>,
    /// Rows that did not measure, as (variant, length, status).
    pub failed: BTreeMap<(String, usize), String>,
    pub baseline: String,
}

impl SpeedTable {
    /// Builds the table from rows of one backend/kernel/scope (the first of each
    /// (variant, length) wins when a run holds several batches).
    pub fn from_rows(rows: &[Row], baseline: &str) -> Self {
        let mut variants: Vec<String> = Vec::new();
        let mut lengths: Vec<usize> = Vec::new();
        let mut cells = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for r in rows {
            if !variants.contains(&r.variant) {
                variants.push(r.variant.clone());
            }
            if !lengths.contains(&r.seq_len) {
                lengths.push(r.seq_len);
            }
            let key = (r.variant.clone(), r.seq_len);
            match r.median_ms {
                Some(ms) if r.is_ok() => {
                    cells.entry(key).or_insert(Cell {
                        median_ms: ms,
                        speedup: None,
                    });
                }
                _ => {
                    failed.entry(key).or_insert_with(|| r.status.clone());
                }
            }
        }
        variants.sort_by_key(|k| variant::order_of(k));
        lengths.sort_unstable();
        let base: BTreeMap<usize, f64> = cells
            .iter()
            .filter(|((v, _), _)| v == baseline)
            .map(|((_, n), c)| (*n, c.median_ms))
            .collect();
        for ((_, n), c) in cells.iter_mut() {
            c.speedup = base.get(n).map(|b| b / c.median_ms);
        }
        SpeedTable {
            variants,
            lengths,
            cells,
            failed,
            baseline: baseline.to_string(),
        }
    }

    /// A plain-text table for the terminal: `time ms (speedup×)` per cell.
    pub fn to_text(&self) -> String {
        let mut header = vec![format!(
            "variant (ms, × vs {})",
            variant::display_name(&self.baseline)
        )];
        header.extend(self.lengths.iter().map(|&n| length_label(n)));
        let mut lines = vec![header];
        for v in &self.variants {
            let mut line = vec![variant::display_name(v)];
            for &n in &self.lengths {
                let key = (v.clone(), n);
                line.push(match (self.cells.get(&key), self.failed.get(&key)) {
                    (Some(c), _) => match c.speedup {
                        Some(s) => format!("{} ({s:.2}×)", fmt_ms(c.median_ms)),
                        None => fmt_ms(c.median_ms),
                    },
                    (None, Some(status)) => status.clone(),
                    (None, None) => "—".to_string(),
                });
            }
            lines.push(line);
        }
        align(&lines)
    }
}

/// Milliseconds with three significant digits at least.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.4}")
    }
}

/// Left-aligns the first column, right-aligns the others, two spaces apart.
pub fn align(lines: &[Vec<String>]) -> String {
    let cols = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        for (c, cell) in l.iter().enumerate() {
            let pad = width[c] - cell.chars().count();
            if c == 0 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}
