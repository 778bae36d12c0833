//! The CUDA paths of the command line on a machine without a GPU: clear one-line
//! errors with exit status 2, nothing written; `kernels` works without a GPU.

use std::process::Command;

use sqa_bench::backend::cuda::{libs, CudaBackend, CudaOptions};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sqa-bench"))
}

fn no_driver() -> bool {
    if libs::driver_present() {
        eprintln!("skipped: this machine has a CUDA driver");
        return false;
    }
    true
}

#[test]
fn cuda_backend_without_a_driver_is_one_line_exit_2_and_writes_nothing() {
    if !no_driver() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["run", "--seqlen", "1k", "--backend", "cuda", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: backend unavailable: no CUDA driver"),
        "{err}"
    );
    assert!(err.contains("libcuda.so.1"), "{err}");
    let out = bin()
        .args(["verify", "--backend", "cuda"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("no CUDA driver"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn doctor_lists_the_search_then_fails_in_one_line() {
    if !no_driver() {
        return;
    }
    let out = bin().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("folders searched for NVRTC"), "{text}");
    assert!(text.contains("CUDA driver library: not found"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("no CUDA driver"), "{err}");
}

#[test]
fn probe_maps_a_missing_driver_to_backend_unavailable() {
    if !no_driver() {
        return;
    }
    match CudaBackend::open(CudaOptions::default()) {
        Err(e @ sqa_bench::Error::BackendUnavailable(_)) => assert_eq!(e.status(), "unsupported"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a GPU without a driver"),
    }
}

#[test]
fn auto_falls_back_to_the_cpu_with_a_note() {
    if !no_driver() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "run",
            "--backend",
            "auto",
            "--seqlen",
            "64",
            "--variants",
            "mqa",
            "--d-model",
            "64",
            "--heads",
            "4",
        ])
        .args([
            "--warmup",
            "0",
            "--min-iters",
            "1",
            "--min-time",
            "0",
            "--quiet",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("note: backend unavailable: no CUDA driver"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "one run folder"
    );
}

#[test]
fn bad_kernel_and_arch_names_are_refused() {
    let out = bin().args(["run", "--kernel", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kernel 'nope'"));
    let out = bin().args(["kernels", "--arch", "sm_75"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sm_80 or newer"));
}

#[test]
fn kernels_writes_ptx_for_the_requested_arch() {
    if libs::load_nvrtc(None).is_err() {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI needs NVRTC");
        eprintln!("skipped: no NVRTC");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["kernels", "--arch", "sm_90", "--allow-spills", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for fam in sqa_bench::backend::cuda::kernels::FAMILIES {
        let ptx =
            std::fs::read_to_string(dir.path().join(format!("{}-sm_90.ptx", fam.name))).unwrap();
        assert!(ptx.contains(".target sm_90"));
        for (_, _, entry) in fam.entries() {
            assert!(ptx.contains(&entry));
        }
    }
    assert!(
        !dir.path().join("simple-sm_80.ptx").exists(),
        "only the requested arch"
    );
}
