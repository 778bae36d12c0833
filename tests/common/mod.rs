//! Helpers shared by the integration tests: scratch folders and synthetic run folders.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sqa_bench::results::{CsvSink, Meta, Row, TIMINGS};
use sqa_bench::variant;

/// A fresh empty folder under the system temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sqa-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A measured row of a variant at H = 16, d_head 16, with the given median.
pub fn row(
    backend: &str,
    scope: &str,
    variant: &str,
    seq_len: usize,
    batch: usize,
    ms: f64,
) -> Row {
    let heads = variant::find(variant).unwrap().heads(16).unwrap();
    let flops = 4.0 * batch as f64 * heads.eff() as f64 * 16.0 * (seq_len * seq_len) as f64 / 2.0;
    Row {
        backend: backend.into(),
        device: "Test GPU 80GB".into(),
        kernel: "k".into(),
        scope: scope.into(),
        variant: variant.into(),
        heads_total: 16,
        heads_q: heads.q,
        heads_kv: heads.kv,
        heads_eff: heads.eff(),
        d_model: 256,
        d_head: 16,
        batch,
        seq_len,
        dtype: "bf16".into(),
        pattern: if variant == "swa" { "window" } else { "causal" }.into(),
        window: if variant == "swa" { 128 } else { 0 },
        iters: 10,
        median_ms: Some(ms),
        min_ms: Some(ms),
        max_ms: Some(ms),
        mean_ms: Some(ms),
        cv: Some(0.0),
        flops,
        tflops_per_s: Some(flops / (ms / 1e3) / 1e12),
        bytes: 1.0,
        gb_per_s: Some(1.0),
        peak_mem_bytes: None,
        verified: "pass".into(),
        max_abs_err: Some(0.0),
        status: "ok".into(),
        error: String::new(),
        attn_flops_share: None,
        attn_time_share: None,
    }
}

/// `meta.json` of a run, with a peak throughput when given.
pub fn meta(backend: &str, device: &str, peak: Option<f64>) -> Meta {
    let info = match peak {
        Some(p) => serde_json::json!({"peak_tflops_per_s": p, "peak_source": "datasheet"}),
        None => serde_json::json!({}),
    };
    Meta {
        backend: backend.into(),
        device: device.into(),
        device_info: info,
        crate_version: "test".into(),
        git_commit: None,
        command_line: "test".into(),
        seed: 0,
        started_utc: "2026-01-01T00:00:00Z".into(),
        finished_utc: None,
    }
}

/// Writes a run folder: `meta.json` and `timings.csv`.
pub fn write_run(dir: &Path, meta: &Meta, rows: &[Row]) {
    std::fs::create_dir_all(dir).unwrap();
    meta.write(dir).unwrap();
    let mut sink = CsvSink::create(&dir.join(TIMINGS)).unwrap();
    for r in rows {
        sink.write(r).unwrap();
    }
}
