//! A run against the published SQA timings: per (variant, length) present in both, the
//! published and measured seconds per step, their ratio, and each side's speedup over GQA.
//!
//! Rows match one to one (same batch, same length) only when the run timed the same
//! scope as the publication (`model`); otherwise the measured time is scaled per token
//! to the published batch and every output says the scopes differ. Speedups over GQA
//! stay comparable across devices and scopes; absolute ratios do not.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::export::Table;
use crate::plan::length_label;
use crate::published::PublishedSet;
use crate::results::{Meta, Row};
use crate::variant;

/// The variant every speedup is taken over (as in the SQA paper).
pub const BASELINE: &str = "gqa";

/// How a measured row was matched to the published one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Same scope (`model`), same batch, same length: one to one.
    Exact,
    /// Same scope, another batch: measured time scaled per token to the published batch.
    ScaledBatch,
    /// Another scope (kernel or layer vs whole model); `true` when the measured time was
    /// also scaled per token to the published batch.
    ScopeDiffers(bool),
}

impl Basis {
    pub fn label(self) -> &'static str {
        match self {
            Basis::Exact => "same batch",
            Basis::ScaledBatch => "scaled per token",
            Basis::ScopeDiffers(false) => "other scope, same batch",
            Basis::ScopeDiffers(true) => "other scope, scaled per token",
        }
    }
}

/// One (backend, variant, length) in both the run and the published set.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRow {
    pub backend: String,
    pub kernel: String,
    pub scope: String,
    pub variant: String,
    pub seq_len: usize,
    pub published_batch: usize,
    pub published_s: f64,
    pub measured_batch: usize,
    /// Median seconds of one measured call, as in `timings.csv`.
    pub measured_s: f64,
    /// `measured_s` × published batch / measured batch.
    pub measured_s_per_step: f64,
    pub basis: Basis,
    /// measured_s_per_step / published_s.
    pub ratio: f64,
    /// Published GQA time / published time, at the same length.
    pub published_speedup: Option<f64>,
    /// Measured GQA time / measured time, same backend and length.
    pub measured_speedup: Option<f64>,
}

/// The comparison of a run with a published set.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub set: String,
    pub citation: String,
    pub run_device: String,
    pub rows: Vec<CompareRow>,
    /// Plain statements of what differs between the run and the publication.
    pub differences: Vec<String>,
    /// The published set's own notes.
    pub published_notes: Vec<String>,
}

/// Compares the measured rows of a run with a published set.
pub fn compare(rows: &[Row], meta: Option<&Meta>, set: &PublishedSet) -> Result<Comparison> {
    // First measured row per (backend, scope, variant, length).
    let mut measured: BTreeMap<(String, String, String, usize), &Row> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.is_ok()) {
        measured
            .entry((
                r.backend.clone(),
                r.scope.clone(),
                r.variant.clone(),
                r.seq_len,
            ))
            .or_insert(r);
    }
    let mut out = Vec::new();
    for ((backend, scope, v, n), r) in &measured {
        let Some(p) = set.get(v, *n) else { continue };
        let measured_s = r.median_s().unwrap_or(f64::NAN);
        let per_step = measured_s * p.batch as f64 / r.batch as f64;
        let basis = if *scope != set.scope {
            Basis::ScopeDiffers(r.batch != p.batch)
        } else if r.batch != p.batch {
            Basis::ScaledBatch
        } else {
            Basis::Exact
        };
        let base_m = measured
            .get(&(backend.clone(), scope.clone(), BASELINE.to_string(), *n))
            .and_then(|b| b.median_s());
        out.push(CompareRow {
            backend: backend.clone(),
            kernel: r.kernel.clone(),
            scope: scope.clone(),
            variant: v.clone(),
            seq_len: *n,
            published_batch: p.batch,
            published_s: p.seconds_per_step,
            measured_batch: r.batch,
            measured_s,
            measured_s_per_step: per_step,
            basis,
            ratio: per_step / p.seconds_per_step,
            published_speedup: set
                .get(BASELINE, *n)
                .map(|b| b.seconds_per_step / p.seconds_per_step),
            measured_speedup: base_m.map(|b| b / measured_s),
        });
    }
    if out.is_empty() {
        let ours: Vec<String> = {
            let mut l: Vec<usize> = measured.keys().map(|k| k.3).collect();
            l.sort_unstable();
            l.dedup();
            l.into_iter().map(length_label).collect()
        };
        return Err(Error::invalid(format!(
            "the run has no (variant, length) in common with the published set '{}' \
             (published lengths {}; variants {}; measured lengths {})",
            set.name,
            set.lengths()
                .into_iter()
                .map(length_label)
                .collect::<Vec<_>>()
                .join(", "),
            {
                let mut v: Vec<&str> = set.rows.iter().map(|r| r.variant.as_str()).collect();
                v.sort_by_key(|k| variant::order_of(k));
                v.dedup();
                v.into_iter()
                    .map(variant::display_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if ours.is_empty() {
                "none".to_string()
            } else {
                ours.join(", ")
            }
        )));
    }
    out.sort_by_key(|c| (c.backend.clone(), c.seq_len, variant::order_of(&c.variant)));
    let differences = differences(&out, rows, meta, set);
    Ok(Comparison {
        set: set.name.clone(),
        citation: set.citation.clone(),
        run_device: meta.map(|m| m.device.clone()).unwrap_or_default(),
        rows: out,
        differences,
        published_notes: set.notes.clone(),
    })
}

/// Plain sentences about every way the run differs from the publication.
fn differences(
    cmp: &[CompareRow],
    rows: &[Row],
    meta: Option<&Meta>,
    set: &PublishedSet,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut scopes: Vec<(&str, &str)> = cmp
        .iter()
        .map(|c| (c.backend.as_str(), c.scope.as_str()))
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    for (backend, scope) in scopes {
        if scope != set.scope {
            out.push(format!(
                "SCOPES DIFFER: backend {backend} timed the '{scope}' scope ({}), the published \
                 rows time a whole-model forward step ({}); the time ratios are not like for \
                 like, compare the speedups over GQA.",
                scope_words(scope),
                set.model
            ));
        }
    }
    let scaled: Vec<String> = cmp
        .iter()
        .filter(|c| c.measured_batch != c.published_batch)
        .map(|c| {
            format!(
                "{} batch {}→{}",
                length_label(c.seq_len),
                c.measured_batch,
                c.published_batch
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !scaled.is_empty() {
        out.push(format!(
            "Measured seconds per step are scaled per token to the published batch \
             (measured time × published batch / measured batch): {}.",
            scaled.join(", ")
        ));
    }
    let used: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            cmp.iter()
                .any(|c| c.backend == r.backend && c.variant == r.variant && c.seq_len == r.seq_len)
        })
        .collect();
    let mut seen = |what: &str, ours: Vec<String>, theirs: String| {
        let mut ours = ours;
        ours.sort();
        ours.dedup();
        if ours.iter().any(|o| *o != theirs) {
            out.push(format!(
                "{what}: run {}, published {theirs}.",
                ours.join(" / ")
            ));
        }
    };
    seen(
        "Storage type",
        used.iter().map(|r| r.dtype.clone()).collect(),
        set.dtype.clone(),
    );
    seen(
        "Model shape (d_model, heads, d_head)",
        used.iter()
            .map(|r| format!("{}, {}, {}", r.d_model, r.heads_total, r.d_head))
            .collect(),
        format!("{}, {}, {}", set.d_model, set.heads, set.d_head),
    );
    seen(
        "Mask of the dense variants",
        used.iter()
            .filter(|r| r.window == 0)
            .map(|r| r.pattern.clone())
            .collect(),
        set.pattern.clone(),
    );
    seen(
        "Window of SWA",
        used.iter()
            .filter(|r| r.window != 0)
            .map(|r| r.window.to_string())
            .collect(),
        set.window.to_string(),
    );
    if let Some(m) = meta {
        out.push(format!(
            "Devices: run on {} ({}), published on {} with {}.",
            m.device, m.backend, set.device, set.software
        ));
    }
    out
}

fn scope_words(scope: &str) -> &'static str {
    match scope {
        "kernel" => "one attention call",
        "layer" => "one attention layer with its projections",
        "model" => "a whole-model step",
        _ => "unknown scope",
    }
}

fn secs(x: f64) -> String {
    if x >= 1.0 {
        format!("{x:.3}")
    } else if x >= 0.001 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

fn times(x: Option<f64>) -> String {
    x.map(|s| format!("{s:.2}×")).unwrap_or_else(|| "—".into())
}

impl Comparison {
    /// The comparison as a table (one row per backend, variant and length).
    pub fn table(&self) -> Table {
        let several = self.rows.iter().any(|r| r.backend != self.rows[0].backend);
        let mut header: Vec<String> = vec!["Variant".into()];
        if several {
            header.push("Backend".into());
        }
        header.extend(
            [
                "Length",
                "Published s/step",
                "Measured s/step",
                "Measured / published",
                "Speedup vs GQA (published)",
                "Speedup vs GQA (measured)",
                "Basis",
            ]
            .map(String::from),
        );
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let mut line = vec![variant::display_name(&r.variant)];
                if several {
                    line.push(r.backend.clone());
                }
                line.extend([
                    length_label(r.seq_len),
                    secs(r.published_s),
                    secs(r.measured_s_per_step),
                    format!("{:.3}", r.ratio),
                    times(r.published_speedup),
                    times(r.measured_speedup),
                    r.basis.label().to_string(),
                ]);
                line
            })
            .collect();
        Table {
            header,
            rows,
            caption: Some(format!(
                "Measured{} vs published ({}), seconds per step and speedup over GQA",
                if self.run_device.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", self.run_device)
                },
                self.citation
            )),
        }
    }

    /// Machine-readable rows with full precision.
    pub fn to_csv(&self) -> String {
        let mut t = Table {
            header: [
                "backend",
                "kernel",
                "scope",
                "variant",
                "seq_len",
                "published_batch",
                "published_s_per_step",
                "measured_batch",
                "measured_s",
                "measured_s_per_step",
                "basis",
                "ratio",
                "published_speedup_vs_gqa",
                "measured_speedup_vs_gqa",
            ]
            .map(String::from)
            .to_vec(),
            ..Table::default()
        };
        let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        for r in &self.rows {
            t.rows.push(vec![
                r.backend.clone(),
                r.kernel.clone(),
                r.scope.clone(),
                r.variant.clone(),
                r.seq_len.to_string(),
                r.published_batch.to_string(),
                r.published_s.to_string(),
                r.measured_batch.to_string(),
                r.measured_s.to_string(),
                r.measured_s_per_step.to_string(),
                r.basis.label().to_string(),
                r.ratio.to_string(),
                opt(r.published_speedup),
                opt(r.measured_speedup),
            ]);
        }
        t.to_csv()
    }

    /// Markdown: the table, then what differs and the published notes as lists.
    pub fn to_markdown(&self) -> String {
        let mut out = self.table().to_markdown();
        out.push_str("\nDifferences between this run and the publication:\n\n");
        for d in &self.differences {
            out.push_str(&format!("- {d}\n"));
        }
        out.push_str("\nNotes on the published numbers:\n\n");
        for n in &self.published_notes {
            out.push_str(&format!("- {n}\n"));
        }
        out
    }

    /// The differences and notes as plain lines, for the terminal.
    pub fn notes_text(&self) -> String {
        let mut out = String::new();
        for d in &self.differences {
            out.push_str(&format!("note: {d}\n"));
        }
        for n in &self.published_notes {
            out.push_str(&format!("published: {n}\n"));
        }
        out
    }
}
