//! Published SQA timings (arXiv 2510.01817 Table 3 and the announcement post's 50-step
//! totals), shipped as data files under `results/published/` and embedded at build time.
//!
//! The numbers live only in those files; this module parses and checks them.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::variant;

/// Metadata and notes of every set, `results/published/sets.json`.
const SETS_JSON: &str = include_str!("../results/published/sets.json");

/// The data files named by `sets.json`, embedded.
const FILES: &[(&str, &str)] = &[
    (
        "sqa-paper-table3.csv",
        include_str!("../results/published/sqa-paper-table3.csv"),
    ),
    (
        "sqa-post-totals.csv",
        include_str!("../results/published/sqa-post-totals.csv"),
    ),
];

/// One published measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    /// Our variant key (the published SWA(128)/"Flex" is `swa`).
    pub variant: String,
    /// The name as published.
    pub label: String,
    pub seq_len: usize,
    pub batch: usize,
    pub device: String,
    /// Seconds per step: as published, or the published total divided by the steps.
    pub seconds_per_step: f64,
    /// Steps behind a published total.
    pub steps: Option<u32>,
    /// Published total over `steps` steps, in seconds.
    pub total_seconds: Option<f64>,
    pub source: String,
}

/// A set of published measurements and what they measured.
#[derive(Debug, Clone, Deserialize)]
pub struct PublishedSet {
    /// `paper` or `post`.
    pub name: String,
    pub file: String,
    pub title: String,
    pub citation: String,
    /// Always `model`: a forward step of the whole model.
    pub scope: String,
    pub device: String,
    pub software: String,
    pub dtype: String,
    pub pattern: String,
    /// Window of the published SWA baseline.
    pub window: u32,
    pub model: String,
    pub layers: u32,
    pub d_model: usize,
    pub heads: u32,
    pub d_head: usize,
    pub tokens_per_step: usize,
    /// Notes shared by every set (filled from `sets.json`).
    #[serde(skip)]
    pub notes: Vec<String>,
    #[serde(skip)]
    pub rows: Vec<PublishedRow>,
}

impl PublishedSet {
    /// The published row of a (variant, length), if any.
    pub fn get(&self, variant: &str, seq_len: usize) -> Option<&PublishedRow> {
        self.rows
            .iter()
            .find(|r| r.variant == variant && r.seq_len == seq_len)
    }

    /// Lengths with at least one row, ascending.
    pub fn lengths(&self) -> Vec<usize> {
        let mut l: Vec<usize> = self.rows.iter().map(|r| r.seq_len).collect();
        l.sort_unstable();
        l.dedup();
        l
    }
}

#[derive(Deserialize)]
struct SetsFile {
    sets: Vec<PublishedSet>,
    notes: Vec<String>,
}

/// One line of a data file as written.
#[derive(Deserialize)]
struct RawRow {
    variant: String,
    label: String,
    seq_len: usize,
    batch: usize,
    device: String,
    seconds_per_step: Option<f64>,
    steps: Option<u32>,
    total_seconds: Option<f64>,
    source: String,
}

/// Names of the shipped sets.
pub fn names() -> Vec<String> {
    parse_sets()
        .map(|s| s.sets.into_iter().map(|s| s.name).collect())
        .unwrap_or_default()
}

/// Loads a shipped set by name (`paper` or `post`).
pub fn load(name: &str) -> Result<PublishedSet> {
    let file = parse_sets()?;
    let mut set = file
        .sets
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            Error::invalid(format!(
                "no published set '{name}' (known: {})",
                names().join(", ")
            ))
        })?;
    let text = FILES
        .iter()
        .find(|(f, _)| *f == set.file)
        .map(|(_, t)| *t)
        .ok_or_else(|| Error::bad_file(data_path(&set.file), "not embedded"))?;
    set.rows = parse_rows(&set.file, text)?;
    set.notes = file.notes;
    Ok(set)
}

fn data_path(file: &str) -> std::path::PathBuf {
    Path::new("results/published").join(file)
}

fn parse_sets() -> Result<SetsFile> {
    serde_json::from_str(SETS_JSON)
        .map_err(|e| Error::bad_file(data_path("sets.json"), e.to_string()))
}

/// Parses and checks one data file: known variants, positive numbers, a per-step value
/// or a total with its steps, and published per-step values that are the totals / steps
/// truncated to 4 decimals where both were published.
fn parse_rows(file: &str, text: &str) -> Result<Vec<PublishedRow>> {
    let path = data_path(file);
    let bad = |line: usize, msg: String| Error::bad_file(&path, format!("line {line}: {msg}"));
    let mut rows = Vec::new();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    for (i, rec) in reader.deserialize::<RawRow>().enumerate() {
        let line = i + 2;
        let r = rec.map_err(|e| bad(line, e.to_string()))?;
        let key = variant::find(&r.variant)
            .map_err(|e| bad(line, e.to_string()))?
            .key;
        if r.seq_len == 0 || r.batch == 0 {
            return Err(bad(line, "seq_len and batch must be positive".into()));
        }
        let derived = match (r.total_seconds, r.steps) {
            (Some(t), Some(s)) if t > 0.0 && s > 0 => Some(t / s as f64),
            (None, _) => None,
            _ => return Err(bad(line, "a total needs a positive steps count".into())),
        };
        let per_step = match (r.seconds_per_step, derived) {
            (Some(p), Some(d)) => {
                if (d - p) < -1e-9 || (d - p) >= 1e-4 + 1e-9 {
                    return Err(bad(
                        line,
                        format!("{p} s per step is not the total / steps ({d}) truncated"),
                    ));
                }
                p
            }
            (Some(p), None) => p,
            (None, Some(d)) => d,
            (None, None) => {
                return Err(bad(line, "neither seconds_per_step nor a total".into()));
            }
        };
        if !(per_step.is_finite() && per_step > 0.0) {
            return Err(bad(line, "times must be positive".into()));
        }
        rows.push(PublishedRow {
            variant: key.to_string(),
            label: r.label,
            seq_len: r.seq_len,
            batch: r.batch,
            device: r.device,
            seconds_per_step: per_step,
            steps: r.steps,
            total_seconds: r.total_seconds,
            source: r.source,
        });
    }
    if rows.is_empty() {
        return Err(Error::bad_file(&path, "no rows"));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sets_load_with_notes() {
        for name in ["paper", "post"] {
            let s = load(name).unwrap();
            assert_eq!(s.scope, "model");
            assert!(s.notes.iter().any(|n| n.contains("FlexAttention")));
            assert!(s.rows.iter().all(|r| r.seconds_per_step > 0.0));
        }
        assert!(load("nope").unwrap_err().to_string().contains("paper"));
    }

    #[test]
    fn inconsistent_totals_are_refused() {
        let head =
            "variant,label,seq_len,batch,device,seconds_per_step,steps,total_seconds,source\n";
        let ok = format!("{head}gqa,GQA,1024,1,A,0.0785,50,3.9252,s\n");
        assert_eq!(
            parse_rows("t.csv", &ok).unwrap()[0].seconds_per_step,
            0.0785
        );
        let wrong = format!("{head}gqa,GQA,1024,1,A,0.0786,50,3.9252,s\n");
        assert!(parse_rows("t.csv", &wrong).is_err());
        let unknown = format!("{head}zzz,Z,1024,1,A,0.1,,,s\n");
        assert!(parse_rows("t.csv", &unknown).is_err());
        let empty = format!("{head}gqa,GQA,1024,1,A,,,,s\n");
        assert!(parse_rows("t.csv", &empty).is_err());
    }
}
