//! Rows survive a CSV round trip exactly, and are on disk as soon as they are written.

use sqa_bench::backend::cpu::CpuBackend;
use sqa_bench::problem::{AttnShape, Dtype, Heads, Pattern, Problem, Scope};
use sqa_bench::results::{read_rows, CsvSink};
use sqa_bench::sweep::{base_row, mark_failed};

#[test]
fn rows_round_trip_and_flush_per_row() {
    let dir = std::env::temp_dir().join(format!("sqa-bench-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("timings.csv");
    let backend = CpuBackend::new();
    let p = Problem {
        variant: "rsqa".into(),
        d_model: 256,
        shape: AttnShape {
            batch: 3,
            seq_len: 1000,
            heads: Heads {
                total: 16,
                q: 4,
                kv: 8,
            },
            d_head: 16,
            pattern: Pattern::Window(128),
        },
        dtype: Dtype::F16,
        scope: Scope::Kernel,
    };
    let mut ok = base_row(&backend, "dev, with \"quotes\"", &p);
    ok.iters = 7;
    ok.median_ms = Some(1.25);
    ok.min_ms = Some(1.0);
    ok.max_ms = Some(2.5);
    ok.mean_ms = Some(1.5);
    ok.cv = Some(0.125);
    ok.tflops_per_s = Some(0.001);
    ok.verified = "pass".into();
    ok.max_abs_err = Some(3.5e-7);
    let mut failed = base_row(&backend, "dev", &p);
    mark_failed(
        &mut failed,
        &sqa_bench::Error::OutOfMemory {
            what: "x, y".into(),
            need_bytes: 10,
            avail_bytes: 5,
        },
    );

    let mut sink = CsvSink::create(&path).unwrap();
    sink.write(&ok).unwrap();
    // Readable before the sink is dropped: the row was flushed.
    assert_eq!(read_rows(&path).unwrap(), vec![ok.clone()]);
    sink.write(&failed).unwrap();
    drop(sink);

    let rows = read_rows(&dir).unwrap();
    assert_eq!(rows, vec![ok, failed.clone()]);
    assert_eq!(rows[1].status, "oom");
    assert_eq!(rows[1].median_ms, None);
    assert!(rows[1].error.contains("does not fit"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_columns_are_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("sqa-bench-badcsv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("timings.csv");
    std::fs::write(&path, "backend,device\ncpu,x\n").unwrap();
    let err = read_rows(&path).unwrap_err().to_string();
    assert!(
        err.contains("timings.csv") && err.contains("row 1"),
        "{err}"
    );
    assert!(read_rows(&dir.join("nope.csv"))
        .unwrap_err()
        .to_string()
        .contains("nope.csv"));
    let _ = std::fs::remove_dir_all(&dir);
}
