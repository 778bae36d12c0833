//! Every bad input gets one clear line on stderr, exit status 2, no panic, and no
//! results file. Runs the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sqa-bench"))
}

/// A fresh, empty folder under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sqa-bench-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Runs `run --backend cpu` with `args` into a scratch folder and checks the refusal.
fn refused(case: &str, args: &[&str], expect_in_message: &str) {
    let out_dir = scratch(case);
    let results = out_dir.join("results");
    let mut cmd = bin();
    cmd.args(["run", "--backend", "cpu", "--quiet", "--warmup", "0"]);
    for (flag, value) in [("--min-iters", "1"), ("--min-time", "0")] {
        if !args.iter().any(|a| a.starts_with(flag)) {
            cmd.args([flag, value]);
        }
    }
    if !args.contains(&"--out") {
        cmd.arg("--out").arg(&results);
    }
    let out = cmd.args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{case}: exit status; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{case}: panicked:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{case}: expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("error"), "{case}: {stderr}");
    assert!(
        lines[0]
            .to_lowercase()
            .contains(&expect_in_message.to_lowercase()),
        "{case}: message should mention '{expect_in_message}': {stderr}"
    );
    assert_eq!(entries(&results), 0, "{case}: a results folder was written");
    assert!(
        out.stdout.is_empty(),
        "{case}: printed to stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn zero_and_negative_sizes() {
    refused("batch0", &["--batch", "0", "--seqlen", "8"], "batch");
    refused(
        "tps0",
        &["--tokens-per-step", "0", "--seqlen", "8"],
        "tokens-per-step",
    );
    refused("dmodel0", &["--d-model", "0", "--seqlen", "8"], "d-model");
    refused("heads0", &["--heads", "0", "--seqlen", "8"], "heads");
    refused("seqlen0", &["--seqlen", "0"], "at least 1");
    refused("seqlen-neg", &["--seqlen=-5"], "-5");
    refused("batch-neg", &["--batch=-1", "--seqlen", "8"], "-1");
}

#[test]
fn unknown_variant_names_the_known_ones() {
    refused(
        "variant",
        &["--variants", "mha,xsqq", "--seqlen", "8"],
        "xsqq",
    );
    refused("baseline", &["--baseline", "nope", "--seqlen", "8"], "nope");
}

#[test]
fn head_counts_that_do_not_divide() {
    refused(
        "custom",
        &["--heads-q", "6", "--heads-kv", "4", "--seqlen", "8"],
        "multiple",
    );
    refused(
        "custom0",
        &["--heads-q", "0", "--heads-kv", "4", "--seqlen", "8"],
        "at least 1",
    );
    refused(
        "dmodel",
        &["--d-model", "250", "--seqlen", "8"],
        "divisible",
    );
    // GQA needs H/4 key/value heads: H = 6 has none.
    refused(
        "scaled",
        &["--heads", "6", "--d-model", "96", "--seqlen", "8"],
        "whole number",
    );
}

#[test]
fn window_zero() {
    refused("window", &["--window", "0", "--seqlen", "8"], "window");
}

#[test]
fn malformed_lengths() {
    for (case, list) in [
        ("x", "4x"),
        ("empty-item", "1k,,2k"),
        ("float", "1.5k"),
        ("empty", ""),
    ] {
        refused(case, &["--seqlen", list], "length");
    }
}

#[test]
fn length_that_does_not_fit_memory() {
    refused(
        "oom",
        &[
            "--seqlen",
            "4000000000",
            "--batch",
            "64",
            "--variants",
            "mha",
        ],
        "does not fit",
    );
}

#[test]
fn output_folder_that_cannot_be_written() {
    let dir = scratch("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("results");
    refused(
        "out",
        &["--seqlen", "8", "--out", out.to_str().unwrap()],
        "a-file",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_measurement_flags() {
    refused("iters", &["--seqlen", "8", "--min-iters", "0"], "min-iters");
    refused("time", &["--seqlen", "8", "--min-time=-1"], "min-time");
}

#[test]
fn a_small_valid_run_writes_rows_and_meta() {
    let dir = scratch("valid");
    let out = bin()
        .args([
            "run",
            "--backend",
            "cpu",
            "--quiet",
            "--seqlen",
            "33,64",
            "--variants",
            "gqa,xsqa,rsqa,swa",
        ])
        .args([
            "--min-iters",
            "2",
            "--min-time",
            "0",
            "--warmup",
            "1",
            "--window",
            "16",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let runs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let rows = sqa_bench::results::read_rows(&runs[0]).unwrap();
    assert_eq!(rows.len(), 8);
    assert!(
        rows.iter()
            .all(|r| r.is_ok() && r.verified == "pass" && r.iters >= 2),
        "{rows:?}"
    );
    let swa = rows.iter().find(|r| r.variant == "swa").unwrap();
    assert_eq!((swa.pattern.as_str(), swa.window), ("window", 16));
    let meta = sqa_bench::results::Meta::read(&runs[0]).unwrap();
    assert_eq!(meta.backend, "cpu");
    assert!(meta.finished_utc.is_some());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("xSQA") && stdout.contains("×"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
