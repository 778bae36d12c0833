//! Result rows (long format, units in column names), `timings.csv` and `meta.json`.
//!
//! Rows are written and flushed one by one as each measurement finishes, so a crash
//! at 131k tokens loses nothing that was already measured.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// File name of the rows inside a run folder.
pub const TIMINGS: &str = "timings.csv";
/// File name of the run's metadata inside a run folder.
pub const META: &str = "meta.json";

/// One measurement: one (backend, kernel, scope, variant, shape, dtype) combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `cpu`, `cuda`, or a peer such as `torch-sdpa-flash`.
    pub backend: String,
    /// CPU model or GPU name.
    pub device: String,
    /// Kernel that ran (`cpu-flash`, `simple`, `mma`, ...).
    pub kernel: String,
    /// `kernel`, `layer` or `model`.
    pub scope: String,
    /// Variant key from the variant table, or `custom`.
    pub variant: String,
    /// H: total heads of the model.
    pub heads_total: u32,
    /// H_q: query heads.
    pub heads_q: u32,
    /// H_kv: key/value heads.
    pub heads_kv: u32,
    /// max(H_q, H_kv): heads computed and written.
    pub heads_eff: u32,
    pub d_model: usize,
    pub d_head: usize,
    pub batch: usize,
    pub seq_len: usize,
    /// `bf16`, `f16` or `f32`.
    pub dtype: String,
    /// `full`, `causal` or `window`.
    pub pattern: String,
    /// Window size in tokens, 0 without a window.
    pub window: u32,
    /// Timed repetitions behind the statistics.
    pub iters: u32,
    pub median_ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    /// Coefficient of variation of the timed repetitions.
    pub cv: Option<f64>,
    /// Forward FLOPs of one repetition (FlashAttention convention).
    pub flops: f64,
    /// FLOPs / median time, in 10^12 per second.
    pub tflops_per_s: Option<f64>,
    /// Minimum bytes moved by one repetition.
    pub bytes: f64,
    /// Bytes / median time, in 10^9 per second.
    pub gb_per_s: Option<f64>,
    /// Peak device memory of the row, measured, where the backend can measure it.
    pub peak_mem_bytes: Option<u64>,
    /// `pass`, `fail` or `no` (not checked against the reference).
    pub verified: String,
    /// Largest absolute error against the fp64 reference on the checked rows.
    pub max_abs_err: Option<f64>,
    /// `ok`, `oom`, `unsupported`, `invalid` or `error`.
    pub status: String,
    /// The error message of a failed row.
    pub error: String,
    /// Share of `flops` that is attention (1 at kernel scope).
    pub attn_flops_share: Option<f64>,
    /// Share of the measured step time spent in attention, where the backend times it.
    pub attn_time_share: Option<f64>,
}

impl Row {
    /// Median time in seconds, for rows that were measured.
    pub fn median_s(&self) -> Option<f64> {
        self.median_ms.map(|ms| ms / 1e3)
    }

    pub fn is_ok(&self) -> bool {
        self.status == "ok" && self.median_ms.is_some()
    }
}

/// `meta.json`: where and how a run was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub backend: String,
    pub device: String,
    /// Backend-specific facts (CPU model and threads, GPU, driver, clocks).
    pub device_info: serde_json::Value,
    pub crate_version: String,
    pub git_commit: Option<String>,
    pub command_line: String,
    pub seed: u64,
    /// UTC, ISO 8601.
    pub started_utc: String,
    pub finished_utc: Option<String>,
}

impl Meta {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(META);
        let text = serde_json::to_string_pretty(self).expect("meta serialises");
        fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))
    }

    pub fn read(dir: &Path) -> Result<Meta> {
        let path = dir.join(META);
        let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::bad_file(&path, e.to_string()))
    }
}

/// Appends rows to `timings.csv`, flushing after each.
pub struct CsvSink {
    path: PathBuf,
    writer: csv::Writer<File>,
}

impl CsvSink {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(CsvSink {
            path: path.to_path_buf(),
            writer: csv::Writer::from_writer(file),
        })
    }

    pub fn write(&mut self, row: &Row) -> Result<()> {
        let path = &self.path;
        self.writer
            .serialize(row)
            .map_err(|e| Error::bad_file(path, e.to_string()))?;
        self.writer.flush().map_err(|e| Error::io(path, e))
    }
}

/// Reads every row of a `timings.csv` (or of a run folder holding one).
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let file = if path.is_dir() {
        path.join(TIMINGS)
    } else {
        path.to_path_buf()
    };
    let mut reader = csv::Reader::from_path(&file).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(&file, io),
        other => Error::bad_file(&file, format!("{other:?}")),
    })?;
    let mut rows = Vec::new();
    for (i, rec) in reader.deserialize::<Row>().enumerate() {
        rows.push(rec.map_err(|e| Error::bad_file(&file, format!("row {}: {e}", i + 1)))?);
    }
    Ok(rows)
}

/// Creates a fresh run folder `<parent>/<UTC timestamp>-<backend>-<device>/` (never reuses one).
pub fn create_run_dir(parent: &Path, backend: &str, device: &str) -> Result<PathBuf> {
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let stamp = utc_now().replace([':', '-'], "").replace('T', "-");
    let base = format!(
        "{}-{}-{}",
        stamp.trim_end_matches('Z'),
        backend,
        slug(device)
    );
    for n in 0..1000 {
        let name = if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = parent.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    Err(Error::invalid(format!(
        "too many run folders named {base} in {}",
        parent.display()
    )))
}

/// Checks that a folder can be written, by creating and removing a probe file.
pub fn check_writable(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let probe = dir.join(".sqa-bench-write-probe");
    File::create(&probe)
        .and_then(|mut f| f.write_all(b"ok"))
        .map_err(|e| Error::io(dir, e))?;
    fs::remove_file(&probe).map_err(|e| Error::io(&probe, e))
}

/// Lower-case, dash-separated, at most 40 characters: safe in a folder name.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    out.chars()
        .take(40)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// The current time in UTC as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc_from_unix(secs)
}

/// Formats seconds since the Unix epoch as UTC ISO 8601 (proleptic Gregorian calendar).
pub fn utc_from_unix(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_from_unix(1_795_901_696), "2026-11-28T21:34:56Z");
    }

    #[test]
    fn slugs_are_folder_safe() {
        assert_eq!(slug("NVIDIA H200 (SXM) 141GB"), "nvidia-h200-sxm-141gb");
        assert_eq!(
            slug("  AMD EPYC 7B13 64-Core Processor"),
            "amd-epyc-7b13-64-core-processor"
        );
        assert!(slug(&"x".repeat(100)).len() <= 40);
    }
}
