//! A sweep: a validated plan of problems, run one by one on a backend, each finished
//! measurement written as a row at once. A problem that fails becomes a row with its
//! status and the sweep goes on.

use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::inputs::Inputs;
use crate::measure::{measure, MeasureConfig};
use crate::model::cost::problem_cost;
use crate::problem::{Problem, Scope};
use crate::results::{CsvSink, Row};
use crate::verify::{self, Tolerance};

/// Random rows checked against the reference per problem, on top of the edge rows.
const VERIFY_RANDOM_ROWS: usize = 3;

/// A row describing `problem` on `backend`, with cost filled in and no measurement yet.
pub fn base_row(backend: &dyn Backend, device: &str, p: &Problem) -> Row {
    let s = &p.shape;
    let c = problem_cost(p);
    Row {
        backend: backend.name().to_string(),
        device: device.to_string(),
        kernel: backend.kernel(p),
        scope: p.scope.name().to_string(),
        variant: p.variant.clone(),
        heads_total: s.heads.total,
        heads_q: s.heads.q,
        heads_kv: s.heads.kv,
        heads_eff: s.heads.eff(),
        d_model: p.d_model,
        d_head: s.d_head,
        batch: s.batch,
        seq_len: s.seq_len,
        dtype: p.dtype.name().to_string(),
        pattern: s.pattern.kind().to_string(),
        window: s.pattern.window(),
        iters: 0,
        median_ms: None,
        min_ms: None,
        max_ms: None,
        mean_ms: None,
        cv: None,
        flops: c.flops,
        tflops_per_s: None,
        bytes: c.bytes,
        gb_per_s: None,
        peak_mem_bytes: None,
        verified: "no".to_string(),
        max_abs_err: None,
        status: "ok".to_string(),
        error: String::new(),
        attn_flops_share: Some(c.attn_flops / c.flops),
        attn_time_share: None,
    }
}

/// Measures one problem and fills `row`; an error leaves the row for the caller to mark.
pub fn measure_problem(
    backend: &dyn Backend,
    p: &Problem,
    cfg: &MeasureConfig,
    seed: u64,
    check: bool,
    row: &mut Row,
) -> Result<()> {
    backend.check(p)?;
    let inputs = Inputs::for_problem(p, seed);
    let mut prepared = backend.prepare(p, &inputs)?;
    let stats = measure(cfg, || prepared.run())?;
    row.iters = stats.iters;
    row.median_ms = Some(stats.median_s * 1e3);
    row.min_ms = Some(stats.min_s * 1e3);
    row.max_ms = Some(stats.max_s * 1e3);
    row.mean_ms = Some(stats.mean_s * 1e3);
    row.cv = Some(stats.cv);
    row.tflops_per_s = Some(row.flops / stats.median_s / 1e12);
    row.gb_per_s = Some(row.bytes / stats.median_s / 1e9);
    row.peak_mem_bytes = prepared.peak_mem_bytes();
    row.attn_time_share = prepared
        .attention_seconds()
        .map(|a| a / stats.median_s.max(f64::MIN_POSITIVE));
    // Layer and model outputs are checked by `verify --scope`, not per row.
    if check && p.scope == Scope::Kernel {
        let out = prepared.output()?;
        let rows = verify::sample_rows(p.shape.seq_len, p.shape.pattern, VERIFY_RANDOM_ROWS, seed);
        let tol = Tolerance::for_output(backend.output_dtype(p));
        let c = verify::check_rows(&p.shape, &inputs, &out, &rows, tol);
        row.verified = if c.passed() { "pass" } else { "fail" }.to_string();
        row.max_abs_err = Some(c.max_abs);
    }
    Ok(())
}

/// Runs every problem of `plan`, writing each row to `sink` as soon as it is measured.
pub fn run(
    backend: &dyn Backend,
    plan: &[Problem],
    cfg: &MeasureConfig,
    seed: u64,
    sink: &mut CsvSink,
    show_progress: bool,
) -> Result<Vec<Row>> {
    let device = backend.device();
    let bar = if show_progress {
        ProgressBar::new(plan.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:32} {pos}/{len} [{elapsed_precise}] {msg}")
            .expect("static template"),
    );
    let mut rows = Vec::with_capacity(plan.len());
    for p in plan {
        bar.set_message(format!(
            "{} N={} B={}",
            p.variant, p.shape.seq_len, p.shape.batch
        ));
        let mut row = base_row(backend, &device, p);
        if let Err(e) = measure_problem(backend, p, cfg, seed, true, &mut row) {
            mark_failed(&mut row, &e);
        }
        sink.write(&row)?;
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// Marks a row as failed with `e` (its measurement fields are cleared).
pub fn mark_failed(row: &mut Row, e: &Error) {
    row.status = e.status().to_string();
    row.error = e.to_string();
    row.iters = 0;
    row.median_ms = None;
    row.min_ms = None;
    row.max_ms = None;
    row.mean_ms = None;
    row.cv = None;
    row.tflops_per_s = None;
    row.gb_per_s = None;
}
