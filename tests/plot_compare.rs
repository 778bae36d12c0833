//! Published data, `compare`, `table` and the charts, on synthetic run folders and
//! through the command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqa_bench::compare::{compare, Basis};
use sqa_bench::plot::{self, ChartOptions, Source};
use sqa_bench::published;
use sqa_bench::results::{CsvSink, Meta, Row, META, TIMINGS};
use sqa_bench::variant;

/// A fresh empty folder under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sqa-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn row(backend: &str, scope: &str, variant: &str, seq_len: usize, batch: usize, ms: f64) -> Row {
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
    }
}

fn meta(backend: &str, device: &str, peak: Option<f64>) -> Meta {
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

fn write_run(dir: &Path, meta: &Meta, rows: &[Row]) {
    std::fs::create_dir_all(dir).unwrap();
    meta.write(dir).unwrap();
    let mut sink = CsvSink::create(&dir.join(TIMINGS)).unwrap();
    for r in rows {
        sink.write(r).unwrap();
    }
}

/// Every variant of the published tables, in their column order.
const COLS: [&str; 7] = ["xsqa", "sqa", "ssqa", "swa", "mqa", "gqa", "mha"];

#[test]
fn published_paper_table_matches_the_paper() {
    let table: [(usize, usize, [f64; 7]); 5] = [
        (
            1024,
            128,
            [0.0570, 0.0642, 0.0669, 0.0759, 0.0760, 0.0785, 0.0869],
        ),
        (
            4096,
            32,
            [0.0637, 0.0750, 0.0793, 0.0794, 0.1001, 0.1027, 0.1114],
        ),
        (
            32768,
            4,
            [0.1348, 0.1991, 0.2117, 0.1871, 0.3612, 0.3637, 0.3727],
        ),
        (
            131072,
            1,
            [0.3759, 0.6308, 0.6630, 0.7531, 1.2530, 1.2558, 1.2648],
        ),
        (
            200000,
            1,
            [0.8194, 1.4116, 1.4824, 1.1871, 2.8555, 2.8596, 2.8734],
        ),
    ];
    let set = published::load("paper").unwrap();
    assert_eq!(set.rows.len(), 35);
    for (n, batch, values) in table {
        for (v, want) in COLS.iter().zip(values) {
            let r = set.get(v, n).unwrap_or_else(|| panic!("{v} at {n}"));
            assert_eq!(r.seconds_per_step, want, "{v} at {n}");
            assert_eq!(r.batch, batch);
            assert_eq!(r.device, "A100 40GB");
            assert!(r.source.contains("2510.01817"));
        }
    }
    assert_eq!(set.get("swa", 1024).unwrap().label, "SWA(128)");
    assert_eq!((set.scope.as_str(), set.tokens_per_step), ("model", 131072));
}

#[test]
fn published_post_totals_match_the_post_and_truncate_to_the_paper() {
    let totals: [(usize, [f64; 7]); 5] = [
        (
            1024,
            [2.8543, 3.2102, 3.3467, 3.7994, 3.8032, 3.9252, 4.3478],
        ),
        (
            4096,
            [3.1889, 3.7534, 3.9682, 3.9744, 5.0089, 5.1361, 5.5703],
        ),
        (
            32768,
            [6.7444, 9.9590, 10.5884, 9.3590, 18.0621, 18.1891, 18.6358],
        ),
        (
            131072,
            [
                18.7965, 31.5411, 33.1529, 37.6574, 62.6528, 62.7922, 63.2441,
            ],
        ),
        (
            200000,
            [
                40.9741, 70.5818, 74.1229, 59.3576, 142.7783, 142.9824, 143.6748,
            ],
        ),
    ];
    let post = published::load("post").unwrap();
    let paper = published::load("paper").unwrap();
    for (n, values) in totals {
        for (v, want) in COLS.iter().zip(values) {
            let r = post.get(v, n).unwrap();
            assert_eq!(
                (r.total_seconds, r.steps),
                (Some(want), Some(50)),
                "{v} {n}"
            );
            // The paper's per-step value is the total / 50, truncated to 4 decimals.
            let truncated = (want / 50.0 * 1e4 + 1e-9).floor() / 1e4;
            assert!((paper.get(v, n).unwrap().seconds_per_step - truncated).abs() < 1e-12);
        }
    }
    assert_eq!(post.get("swa", 32768).unwrap().label, "Flex");
    let flex = post.get("swa", 500000).unwrap();
    assert_eq!(
        (flex.seconds_per_step, flex.total_seconds),
        (1.2223, Some(61.1173))
    );
    assert_eq!(flex.device, "H100");
    let x = post.get("xsqa", 500000).unwrap();
    assert_eq!(
        (x.seconds_per_step, x.total_seconds),
        (2.5752, Some(128.7628))
    );
    assert!(post
        .notes
        .iter()
        .any(|n| n.contains("without device synchronisation")));
}

#[test]
fn compare_computes_ratios_and_speedups() {
    let set = published::load("paper").unwrap();
    // 32k at the published batch (4): one to one. 131k at batch 2: scaled to batch 1.
    let rows = vec![
        row("cuda", "model", "gqa", 32768, 4, 400.0),
        row("cuda", "model", "xsqa", 32768, 4, 100.0),
        row("cuda", "model", "gqa", 131072, 2, 2000.0),
        row("cuda", "model", "sqa", 131072, 2, 1000.0),
        row("cuda", "model", "rsqa", 131072, 2, 1000.0), // not published: left out
        row("cuda", "model", "mha", 8192, 16, 5.0),      // length not published
    ];
    let m = meta("cuda", "Test GPU 80GB", None);
    let c = compare(&rows, Some(&m), &set).unwrap();
    assert_eq!(c.rows.len(), 4);
    let get = |v: &str, n: usize| {
        c.rows
            .iter()
            .find(|r| r.variant == v && r.seq_len == n)
            .unwrap()
    };
    let x = get("xsqa", 32768);
    assert_eq!(x.basis, Basis::Exact);
    assert!((x.measured_s_per_step - 0.1).abs() < 1e-12);
    assert!((x.ratio - 0.1 / 0.1348).abs() < 1e-12);
    assert!((x.measured_speedup.unwrap() - 4.0).abs() < 1e-12);
    assert!((x.published_speedup.unwrap() - 0.3637 / 0.1348).abs() < 1e-12);
    let s = get("sqa", 131072);
    assert_eq!(s.basis, Basis::ScaledBatch);
    assert!(
        (s.measured_s_per_step - 0.5).abs() < 1e-12,
        "1 s at batch 2 = 0.5 s at batch 1"
    );
    assert!((s.ratio - 0.5 / 0.6308).abs() < 1e-12);
    assert!((s.measured_speedup.unwrap() - 2.0).abs() < 1e-12);
    assert!((get("gqa", 131072).published_speedup.unwrap() - 1.0).abs() < 1e-12);
    assert!(!c.differences.iter().any(|d| d.contains("SCOPES DIFFER")));
    assert!(c.differences.iter().any(|d| d.contains("131k batch 2→1")));
    let md = c.to_markdown();
    assert!(
        md.contains("| xSQA | 32k | 0.1348 | 0.1000 | 0.742 | 2.70× | 4.00× | same batch |"),
        "{md}"
    );
    assert!(md.contains("FlexAttention"));

    // Kernel scope: still compared, and the scopes are said to differ.
    let kernel: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            scope: "kernel".into(),
            ..r.clone()
        })
        .collect();
    let c = compare(&kernel, None, &set).unwrap();
    assert!(c.rows.iter().all(|r| r.basis == Basis::ScopeDiffers));
    assert!(c
        .differences
        .iter()
        .any(|d| d.contains("SCOPES DIFFER") && d.contains("'kernel'")));

    // No overlap: one clear error.
    let none = vec![row("cuda", "model", "gqa", 2048, 64, 1.0)];
    let e = compare(&none, None, &set).unwrap_err().to_string();
    assert!(
        e.contains("no (variant, length) in common") && e.contains("2k"),
        "{e}"
    );
}

/// Decodes a PNG: (width, height, number of distinct colours, has this colour).
fn png_stats(path: &Path, color: (u8, u8, u8)) -> (u32, u32, usize, bool) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "RGB expected");
    let mut colours = std::collections::HashSet::new();
    let mut found = false;
    for px in buf[..info.buffer_size()].chunks(step) {
        colours.insert((px[0], px[1], px[2]));
        found |= (px[0], px[1], px[2]) == color;
    }
    (info.width, info.height, colours.len(), found)
}

#[test]
fn charts_are_valid_png_and_svg_with_every_series() {
    let dir = scratch("charts");
    let lengths = [1024, 4096, 32768, 131072];
    let mut a = Vec::new();
    let mut b = Vec::new();
    for &n in &lengths {
        for (v, f) in [("gqa", 1.0), ("sqa", 0.6), ("xsqa", 0.35), ("mha", 1.1)] {
            a.push(row("cuda", "kernel", v, n, 1, f * n as f64 / 1000.0));
            b.push(row("cuda", "kernel", v, n, 1, 0.5 * f * n as f64 / 1000.0));
            b.push(row(
                "torch-sdpa-flash",
                "kernel",
                v,
                n,
                1,
                0.7 * f * n as f64 / 1000.0,
            ));
        }
    }
    let (ra, rb) = (dir.join("a100"), dir.join("h200"));
    write_run(&ra, &meta("cuda", "NVIDIA A100-SXM4-40GB", Some(312.0)), &a);
    write_run(&rb, &meta("cuda", "NVIDIA H200", None), &b);
    let sources = vec![plot::load_run(&ra).unwrap(), plot::load_run(&rb).unwrap()];
    let written =
        plot::write_default_charts(&sources, &dir.join("out/cmp"), &ChartOptions::default())
            .unwrap();
    assert_eq!((written.files.len(), written.skipped.len()), (6, 0));
    for kind in ["time", "throughput", "speedup"] {
        let png = dir.join(format!("out/cmp-{kind}.png"));
        let (w, h, colours, has_xsqa) = png_stats(&png, variant::color_of("xsqa"));
        assert_eq!((w, h), plot::PNG_SIZE);
        assert!(colours > 20, "{kind}: {colours} colours, looks blank");
        assert!(has_xsqa, "{kind}: no pixel of the xSQA colour");
        assert!(std::fs::metadata(&png).unwrap().len() < 1_000_000);
        let svg = std::fs::read_to_string(dir.join(format!("out/cmp-{kind}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let text: String = doc
            .descendants()
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join(" ");
        for name in [
            "GQA",
            "SQA",
            "xSQA",
            "MHA",
            "NVIDIA A100-SXM4-40GB",
            "NVIDIA H200",
            "torch-sdpa-flash",
        ] {
            assert!(text.contains(name), "{kind}: SVG lacks {name}");
        }
    }
    let svg = std::fs::read_to_string(dir.join("out/cmp-throughput.svg")).unwrap();
    assert!(svg.contains("TFLOP/s") && svg.contains("peak 312 TFLOP/s"));
    let svg = std::fs::read_to_string(dir.join("out/cmp-speedup.svg")).unwrap();
    assert!(svg.contains("32k") && svg.contains("131k"));

    // A published set as a run: every published variant appears in the time chart.
    let mut with_pub = vec![sources[0].clone()];
    with_pub.push(Source::from_published(&published::load("paper").unwrap()));
    plot::time_chart(&with_pub)
        .unwrap()
        .save(&dir.join("pub"))
        .unwrap();
    let svg = std::fs::read_to_string(dir.join("pub.svg")).unwrap();
    for name in ["SWA", "sSQA", "published: A100 40GB"] {
        assert!(svg.contains(name), "lacks {name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn charts_without_baseline_skip_speedup_and_keep_dotted_names() {
    let dir = scratch("nobase");
    let rows: Vec<Row> = [1024, 2048]
        .iter()
        .map(|&n| row("cpu", "kernel", "xsqa", n, 1, n as f64 / 100.0))
        .collect();
    let source = Source::from_run(Some(&meta("cpu", "Some CPU", None)), rows);
    let w =
        plot::write_default_charts(&[source], &dir.join("v1.2"), &ChartOptions::default()).unwrap();
    assert_eq!(w.files.len(), 4);
    assert!(
        w.skipped.len() == 1 && w.skipped[0].contains("GQA"),
        "{:?}",
        w.skipped
    );
    assert!(dir.join("v1.2-time.png").exists() && dir.join("v1.2-throughput.svg").exists());
    // CPU runs chart GFLOP/s.
    let svg = std::fs::read_to_string(dir.join("v1.2-throughput.svg")).unwrap();
    assert!(svg.contains("GFLOP/s") && !svg.contains("TFLOP/s"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wide_speedups_go_on_a_log_axis() {
    let dir = scratch("log");
    let rows = vec![
        row("cpu", "kernel", "gqa", 4096, 1, 100.0),
        row("cpu", "kernel", "sqa", 4096, 1, 50.0),
        row("cpu", "kernel", "swa", 4096, 1, 1.0),
    ];
    let source = Source::from_run(None, rows.clone());
    let opts = ChartOptions::default();
    plot::speedup_chart(&[source], &opts)
        .unwrap()
        .save(&dir.join("wide"))
        .unwrap();
    let svg = std::fs::read_to_string(dir.join("wide.svg")).unwrap();
    assert!(svg.contains("log scale") && svg.contains("SWA") && svg.contains("4k"));
    let narrow = Source::from_run(None, rows[..2].to_vec());
    plot::speedup_chart(&[narrow], &opts)
        .unwrap()
        .save(&dir.join("narrow"))
        .unwrap();
    let svg = std::fs::read_to_string(dir.join("narrow.svg")).unwrap();
    assert!(
        !svg.contains("log scale") && svg.contains("2.00"),
        "value label on the bar"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sqa-bench"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, _, err) = cli(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "{args:?}: {err}"
    );
}

#[test]
fn cli_compare_table_and_plot_on_a_run_folder() {
    let dir = scratch("cli");
    let run = dir.join("run");
    let mut rows = Vec::new();
    for (v, ms) in [("gqa", 360.0), ("xsqa", 130.0), ("sqa", 200.0)] {
        rows.push(row("cuda", "kernel", v, 32768, 4, ms));
        rows.push(row("cuda", "kernel", v, 131072, 1, ms * 3.5));
    }
    write_run(&run, &meta("cuda", "Test GPU 80GB", None), &rows);
    let r = run.to_str().unwrap();

    let (code, out, err) = cli(&["compare", r, "--format", "md"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("| xSQA | 32k | 0.1348 | 0.1300 |"), "{out}");
    assert!(out.contains("SCOPES DIFFER"));
    for f in [
        "compare-paper.csv",
        "compare-paper.md",
        "compare-paper-speedup.png",
        "compare-paper-speedup.svg",
    ] {
        assert!(run.join(f).exists(), "{f}");
    }
    let (code, out, _) = cli(&["compare", r, "--published", "post", "--format", "latex"]);
    assert_eq!(code, 0);
    assert!(out.contains("\\toprule") && out.contains("$\\times$"));

    let (code, out, _) = cli(&["table", r, "--format", "md"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("| xSQA | 130.0 (2.77×) | 455.0 (2.77×) |"),
        "{out}"
    );
    let (_, out, _) = cli(&["table", r, "--format", "csv"]);
    assert!(
        out.starts_with("backend,scope,device,variant,seq_len,batch,median_ms,speedup_vs_gqa\n")
    );
    assert_eq!(out.lines().count(), 7);

    let prefix = dir.join("charts/x");
    let (code, _, err) = cli(&[
        "plot",
        r,
        "--published",
        "paper",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.join("charts/x-speedup.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_bad_inputs_give_one_line_and_status_2() {
    let dir = scratch("bad");
    let missing = dir.join("nope");
    for cmd in ["plot", "compare", "table"] {
        assert_one_line_error(&[cmd, missing.to_str().unwrap()], "does not exist");
    }
    // A CSV without the timing columns.
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join(TIMINGS),
        "backend,variant,seq_len\ncuda,gqa,1024\n",
    )
    .unwrap();
    meta("cuda", "X", None).write(&broken).unwrap();
    for cmd in ["plot", "compare", "table"] {
        assert_one_line_error(&[cmd, broken.to_str().unwrap()], "missing field");
    }
    // No (variant, length) in common with the paper: nothing is written.
    let other = dir.join("other");
    write_run(
        &other,
        &meta("cpu", "CPU", None),
        &[row("cpu", "kernel", "gqa", 2048, 1, 1.0)],
    );
    assert_one_line_error(
        &["compare", other.to_str().unwrap()],
        "no (variant, length) in common",
    );
    assert!(!other.join("compare-paper.csv").exists());
    assert!(other.join(META).exists());
    assert_one_line_error(
        &["plot", other.to_str().unwrap(), "--baseline", "zzz"],
        "unknown variant",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_writes_charts_unless_no_plot() {
    let dir = scratch("run");
    let out = dir.to_str().unwrap();
    let common = [
        "run",
        "--backend",
        "cpu",
        "--seqlen",
        "128,256",
        "--variants",
        "gqa,xsqa",
        "--min-time",
        "0",
        "--min-iters",
        "1",
        "--warmup",
        "0",
        "--quiet",
        "--out",
        out,
    ];
    let (code, _, err) = cli(&common);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&[&common[..], &["--no-plot"]].concat());
    assert_eq!(code, 0, "{err}");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2);
    let charts = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("plot-")
            })
            .count()
    };
    let counts: Vec<usize> = runs.iter().map(|d| charts(d)).collect();
    assert!(counts.contains(&6) && counts.contains(&0), "{counts:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
