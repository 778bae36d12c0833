//! `ci/peers.py --dry-run` (no torch, no GPU needed): its rows parse as sqa-bench rows,
//! with the columns in `results::Row` order, and its shapes, FLOPs and bytes agree with
//! the variant table and `cost`. Skipped (with a note) where `python3` is missing.

use std::path::PathBuf;
use std::process::Command;

use sqa_bench::cost;
use sqa_bench::problem::{AttnShape, Dtype, Heads, Pattern};
use sqa_bench::results::{read_rows, Row};
use sqa_bench::variant::VARIANTS;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ci/peers.py")
}

fn python() -> Option<Command> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("python3 not found: ci/peers.py not checked");
        return None;
    }
    let mut c = Command::new("python3");
    c.arg(script())
        .arg("--sqa-bench")
        .arg(env!("CARGO_BIN_EXE_sqa-bench"));
    Some(c)
}

fn header_of(row: &Row) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(row).unwrap();
    let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
    text.lines().next().unwrap().to_string()
}

#[test]
fn dry_run_rows_are_sqa_bench_rows() {
    let Some(mut cmd) = python() else { return };
    let out = std::env::temp_dir().join(format!("sqa-peers-{}.csv", std::process::id()));
    let status = cmd
        .args(["--dry-run", "--variants", "all", "--seqlen", "4k,131k"])
        .args([
            "--tokens-per-step",
            "65536",
            "--window",
            "1024",
            "--dtype",
            "f16",
        ])
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let rows = read_rows(&out).unwrap();
    std::fs::remove_file(&out).ok();

    assert_eq!(text.lines().next().unwrap(), header_of(&rows[0]));
    // Per length and variant: three SDPA rows, plus flex for the window variants.
    let per_len: usize = VARIANTS.iter().map(|v| 3 + v.windowed as usize).sum();
    assert_eq!(rows.len(), 2 * per_len);
    for r in &rows {
        let v = VARIANTS.iter().find(|v| v.key == r.variant).unwrap();
        let heads: Heads = v.heads(16).unwrap();
        assert_eq!(
            (r.heads_q, r.heads_kv, r.heads_eff),
            (heads.q, heads.kv, heads.eff())
        );
        assert_eq!(r.batch, (65536 / r.seq_len).max(1));
        assert_eq!((r.d_model, r.d_head, r.dtype.as_str()), (256, 16, "f16"));
        let pattern = Pattern::from_parts(&r.pattern, r.window).unwrap();
        assert_eq!(pattern, v.pattern(Pattern::Causal, 1024));
        let shape = AttnShape {
            batch: r.batch,
            seq_len: r.seq_len,
            heads,
            d_head: r.d_head,
            pattern,
        };
        let c = cost::attention(&shape, Dtype::F16);
        assert_eq!(r.flops, c.flops, "{} {}", r.variant, r.seq_len);
        assert_eq!(r.bytes, c.bytes, "{} {}", r.variant, r.seq_len);
        assert_eq!(
            (r.status.as_str(), r.verified.as_str()),
            ("unsupported", "no")
        );
        assert!(r.median_ms.is_none());
        let flex = r.backend == "torch-flex";
        assert!(
            flex || r.backend.starts_with("torch-sdpa-"),
            "{}",
            r.backend
        );
        assert!(
            !flex || v.windowed,
            "flex runs the window variants only by default"
        );
    }
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    for args in [
        &["--variants", "nope"][..],
        &["--seqlen", "4q"],
        &["--backends", "flash,tpu"],
        &["--heads", "6", "--variants", "lsqa"],
    ] {
        let Some(mut cmd) = python() else { return };
        let o = cmd.arg("--dry-run").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.lines().count() == 1,
            "{err}"
        );
        assert!(o.stdout.is_empty(), "{args:?} wrote rows");
    }
}

/// `--like RUN_DIR` times exactly the shapes of an sqa-bench run, and `--run-dir` writes a
/// run folder (`timings.csv` + `meta.json`) that the crate reads back.
#[test]
fn like_takes_the_shapes_of_a_sweep_and_writes_a_run_folder() {
    let Some(mut cmd) = python() else { return };
    let root = std::env::temp_dir().join(format!("sqa-peers-like-{}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    let sweep = Command::new(env!("CARGO_BIN_EXE_sqa-bench"))
        .args(["run", "--backend", "cpu", "--variants", "gqa,rsqa,sw-xsqa"])
        .args(["--seqlen", "96,130", "--batch", "2", "--dtype", "f16"])
        .args(["--warmup", "0", "--min-iters", "1", "--min-time", "0"])
        .arg("--out")
        .arg(root.join("runs"))
        .output()
        .unwrap();
    assert!(sweep.status.success(), "{sweep:?}");
    let run = std::fs::read_dir(root.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let peers_dir = root.join("peers");
    let status = cmd
        .args(["--dry-run", "--like"])
        .arg(&run)
        .arg("--run-dir")
        .arg(&peers_dir)
        .status()
        .unwrap();
    assert!(status.success());

    let ours = read_rows(&run).unwrap();
    let peers = read_rows(&peers_dir).unwrap();
    let meta = sqa_bench::results::Meta::read(&peers_dir).unwrap();
    std::fs::remove_dir_all(&root).ok();
    assert_eq!(meta.backend, "torch");
    assert!(meta.finished_utc.is_some());
    let shape = |r: &Row| {
        (
            r.variant.clone(),
            r.heads_q,
            r.heads_kv,
            r.d_head,
            r.batch,
            r.seq_len,
            r.dtype.clone(),
            r.pattern.clone(),
            r.window,
            r.flops,
            r.bytes,
        )
    };
    for o in &ours {
        let same: Vec<&Row> = peers.iter().filter(|p| shape(p) == shape(o)).collect();
        let expected = if o.pattern == "window" { 4 } else { 3 };
        assert_eq!(same.len(), expected, "peer rows for {:?}", shape(o));
    }
    assert_eq!(
        peers.len(),
        ours.iter()
            .map(|o| if o.pattern == "window" { 4 } else { 3 })
            .sum::<usize>()
    );
}
