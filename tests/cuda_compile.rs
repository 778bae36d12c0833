//! NVRTC compilation with the real library (from `.toolchain/` in CI, where a missing
//! NVRTC is a failure; skipped with a message elsewhere), ptxas reports, the disk cache.

use sqa_bench::backend::cuda::compile::{self, Output, Source};
use sqa_bench::backend::cuda::kernels::FAMILIES;
use sqa_bench::backend::cuda::{libs, ptxas};

/// The NVRTC version, or `None` (test skipped) outside CI when NVRTC is missing.
fn nvrtc() -> Option<libs::NvrtcLib> {
    match libs::load_nvrtc(None) {
        Ok(l) => Some(l),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI needs NVRTC (ci/test.sh installs it into .toolchain/): {e}")
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

const TINY: &str = r#"#include "tiny.cuh"
extern "C" __global__ void tiny(float* x) { x[threadIdx.x] = twice(x[threadIdx.x]); }
"#;
const TINY_H: (&str, &str) = (
    "tiny.cuh",
    "__device__ inline float twice(float v) { return 2.0f * v; }\n",
);

/// Entry points known to spill registers, as (family, d_head): a tracked defect, listed
/// here so the rest stays enforced. The simple kernel keeps its query row and its
/// accumulator (2 × 128 floats) in registers at d = 128. An entry that stops spilling must
/// leave this list (the test fails otherwise).
const KNOWN_SPILLS: &[(&str, usize)] = &[("simple", 128)];

#[test]
fn every_kernel_compiles_for_sm80_and_sm90_without_spills() {
    let Some(lib) = nvrtc() else { return };
    let ptxas = ptxas::find_ptxas(lib.path.as_deref());
    if ptxas.is_none() && std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI needs ptxas (ci/test.sh installs it into .toolchain/)");
    }
    let dir = tempfile::tempdir().unwrap();
    for arch in ["sm_80", "sm_90"] {
        for fam in FAMILIES {
            let ptx = compile::compile(
                &fam.program(),
                &compile::options(arch, Output::Ptx),
                Output::Ptx,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let text = String::from_utf8_lossy(&ptx)
                .trim_end_matches('\0')
                .to_string();
            let file = dir.path().join(format!("{}-{arch}.ptx", fam.name));
            std::fs::write(&file, &text).unwrap();
            let Some(ptxas) = &ptxas else { continue };
            let report = ptxas::run_ptxas(ptxas, &file, arch).unwrap();
            for (_, d, entry) in fam.entries() {
                assert!(
                    text.contains(&format!(".entry {entry}(")),
                    "{entry} not in the PTX"
                );
                let r = report.iter().find(|r| r.function == entry).unwrap();
                eprintln!(
                    "{arch} {entry}: {} registers, {} B smem, spills {}/{}",
                    r.registers, r.smem_bytes, r.spill_stores, r.spill_loads
                );
                let known = KNOWN_SPILLS.contains(&(fam.name, d));
                assert_eq!(
                    r.spills(),
                    known,
                    "{entry} on {arch}: {r:?} (known spill: {known})"
                );
                let dynamic = (fam.geometry)(d).smem_bytes;
                assert!(
                    r.smem_bytes + dynamic <= 227 * 1024,
                    "{entry}: shared memory over the H100 limit"
                );
                if arch == "sm_80" {
                    assert!(
                        r.smem_bytes + dynamic <= 163 * 1024,
                        "{entry}: shared memory over the A100 limit"
                    );
                }
            }
        }
    }
}

/// The path a GPU run takes: every family straight to a cubin for the device (sm_90 here).
#[test]
fn every_kernel_compiles_to_a_cubin_through_the_cache() {
    let Some(lib) = nvrtc() else { return };
    let dir = tempfile::tempdir().unwrap();
    for fam in FAMILIES {
        let cubin = compile::compile_cached(
            &fam.program(),
            "sm_90",
            Output::Cubin,
            lib.version,
            Some(dir.path()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&cubin[..4], b"\x7fELF", "{}", fam.file);
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        FAMILIES.len()
    );
}

#[test]
fn cubin_for_a_real_arch_and_named_headers() {
    let Some(_) = nvrtc() else { return };
    let h = [TINY_H];
    let src = Source {
        name: "tiny.cu",
        text: TINY,
        headers: &h,
    };
    let cubin = compile::compile(
        &src,
        &compile::options("sm_90", Output::Cubin),
        Output::Cubin,
    )
    .unwrap();
    assert_eq!(&cubin[..4], b"\x7fELF", "a cubin is an ELF image");
    let ptx = compile::compile(&src, &compile::options("sm_80", Output::Ptx), Output::Ptx).unwrap();
    let text = String::from_utf8_lossy(&ptx);
    assert!(
        text.contains(".entry tiny(") && text.contains(".target sm_80"),
        "{text}"
    );
    assert_eq!(
        ptx.last(),
        Some(&0),
        "PTX handed to the driver is NUL-terminated"
    );
}

#[test]
fn compile_errors_carry_the_file_and_line() {
    let Some(_) = nvrtc() else { return };
    let bad = "extern \"C\" __global__ void k(float* x) {\n  x[0] = undefined_thing;\n}\n";
    let src = Source {
        name: "broken.cu",
        text: bad,
        headers: &[],
    };
    let e = compile::compile(&src, &compile::options("sm_90", Output::Ptx), Output::Ptx)
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.cu(2)"), "{e}");
    assert!(e.contains("undefined_thing"), "{e}");
    // A missing header is an error too, not a search of the disk.
    let src = Source {
        name: "tiny.cu",
        text: TINY,
        headers: &[],
    };
    let e =
        compile::compile(&src, &compile::options("sm_90", Output::Ptx), Output::Ptx).unwrap_err();
    assert!(e.to_string().contains("tiny.cuh"), "{e}");
}

#[test]
fn second_compile_comes_from_the_cache() {
    let Some(lib) = nvrtc() else { return };
    let dir = tempfile::tempdir().unwrap();
    let h = [TINY_H];
    let src = Source {
        name: "tiny.cu",
        text: TINY,
        headers: &h,
    };
    let first =
        compile::compile_cached(&src, "sm_90", Output::Cubin, lib.version, Some(dir.path()))
            .unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), first);
    assert_eq!(
        files[0],
        compile::cache_file(dir.path(), &src, "sm_90", Output::Cubin, lib.version),
        "the backend evicts a damaged entry by this name"
    );
    // Replace the cached image: the next call must return it without compiling.
    std::fs::write(&files[0], b"cached image").unwrap();
    let second =
        compile::compile_cached(&src, "sm_90", Output::Cubin, lib.version, Some(dir.path()))
            .unwrap();
    assert_eq!(second, b"cached image");
    // Another architecture is another entry.
    compile::compile_cached(&src, "sm_80", Output::Cubin, lib.version, Some(dir.path())).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}
