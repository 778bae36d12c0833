//! `--preset paper` plans exactly the published benchmark: model scope, the paper's
//! variants, d_model 256, 16 heads (d_head 16), and 131,072 tokens per step.

use std::process::Command;

fn dry_run(args: &[&str]) -> Vec<Vec<String>> {
    let out = Command::new(env!("CARGO_BIN_EXE_sqa-bench"))
        .args(["run", "--backend", "cpu", "--dry-run"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn paper_preset_has_published_shapes_and_batches() {
    let rows = dry_run(&["--preset", "paper"]);
    let published = ["mha", "gqa", "mqa", "sqa", "ssqa", "xsqa", "swa"];
    assert_eq!(rows.len(), published.len() * 5);
    let batches = [
        (1024, 128),
        (4096, 32),
        (32768, 4),
        (131072, 1),
        (200000, 1),
    ];
    for r in &rows {
        // scope, variant, batch, seq_len, H_q, H_kv, d_head, pattern, dtype, GFLOP
        assert_eq!(r[0], "model(L=8,", "{r:?}");
        let (variant, batch, n): (&str, usize, usize) =
            (&r[3], r[4].parse().unwrap(), r[5].parse().unwrap());
        assert!(published.contains(&variant), "{variant}");
        assert!(batches.contains(&(n, batch)), "{n} {batch}");
        assert_eq!(r[8], "16", "d_head");
        assert_eq!(r[10], "bf16");
        let (hq, hkv): (u32, u32) = (r[6].parse().unwrap(), r[7].parse().unwrap());
        let want = match variant {
            "mha" => (16, 16),
            "gqa" => (16, 4),
            "mqa" => (16, 1),
            "sqa" => (8, 4),
            "ssqa" => (8, 8),
            "xsqa" => (4, 4),
            _ => (16, 4),
        };
        assert_eq!((hq, hkv), want, "{variant}");
        assert_eq!(
            r[9],
            if variant == "swa" {
                "window(128)"
            } else {
                "causal"
            }
        );
    }
    assert!(rows
        .iter()
        .any(|r| r[1] == "d_ff=768," && r[2] == "V=10000)"));
}

#[test]
fn flags_override_the_preset() {
    let rows = dry_run(&[
        "--preset",
        "paper",
        "--scope",
        "kernel",
        "--seqlen",
        "2k",
        "--variants",
        "xsqa",
    ]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "kernel");
    assert_eq!(rows[0][2], "64", "131072 tokens per step at 2k is batch 64");
}
