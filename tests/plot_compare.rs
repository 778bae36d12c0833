//! Charts (decoded PNG, parsed SVG), `table`, `compare` and `plot` through the command
//! line, and bad inputs, on synthetic run folders.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{meta, row, scratch, write_run};
use sqa_bench::plot::{self, ChartOptions, Source};
use sqa_bench::published;
use sqa_bench::results::{Row, META, TIMINGS};
use sqa_bench::variant;

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
