//! The published SQA timings load exactly as published, and `compare` computes the
//! right ratios and speedups on synthetic runs.

mod common;

use common::{meta, row};
use sqa_bench::compare::{compare, Basis};
use sqa_bench::published;
use sqa_bench::results::Row;

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
    // The synthetic run has the published batch except at 131k (batch 2 vs 1).
    for r in &c.rows {
        let scaled = r.measured_batch != r.published_batch;
        assert_eq!(
            r.basis,
            Basis::ScopeDiffers(scaled),
            "{} {}",
            r.variant,
            r.seq_len
        );
    }
    assert!(c.rows.iter().any(|r| r.basis == Basis::ScopeDiffers(true)));
    assert!(c.rows.iter().any(|r| r.basis == Basis::ScopeDiffers(false)));
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
