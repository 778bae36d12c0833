//! Run-time compilation of the kernel sources with NVRTC, and the on-disk cache.
//!
//! A kernel family's `.cu` file is compiled as one program (every dtype × d_head entry
//! point at once) with `common.cuh` passed as a named header, so no include path and no
//! CUDA header is needed. On a GPU the program is compiled straight to a cubin for the
//! device's own `sm_XY` (no driver JIT, no PTX-version mismatch with an older driver);
//! `sqa-bench kernels` asks for PTX (`compute_XY`) so that `ptxas` can report resources.
//!
//! Compiled images are cached under `$SQA_BENCH_CACHE_DIR` (default
//! `$XDG_CACHE_HOME/sqa-bench` or `~/.cache/sqa-bench`), keyed by a SHA-256 of the
//! source, headers, options, target and NVRTC version: a second run starts at once.

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use cudarc::nvrtc::{result as nvrtc, sys};

use crate::error::{Error, Result};

/// Environment variable overriding the cache folder.
pub const CACHE_DIR_ENV: &str = "SQA_BENCH_CACHE_DIR";

/// What NVRTC should produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// Virtual-architecture PTX (`compute_XY`), for `ptxas` and inspection.
    Ptx,
    /// Machine code for one real architecture (`sm_XY`), loaded as is by the driver.
    Cubin,
}

impl Output {
    pub fn extension(self) -> &'static str {
        match self {
            Output::Ptx => "ptx",
            Output::Cubin => "cubin",
        }
    }
}

/// One NVRTC program: a named source and its named headers.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// File name shown in compile errors (`attention_simple.cu(42): error: ...`).
    pub name: &'a str,
    pub text: &'a str,
    /// `(include name, text)` pairs resolved by NVRTC without touching the disk.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Checks and normalises an architecture name: `sm_90`, `90` or `9.0` → `sm_90`.
pub fn parse_arch(s: &str) -> Result<String> {
    let t = s
        .trim()
        .trim_start_matches("sm_")
        .trim_start_matches("compute_");
    let digits: String = t.chars().filter(|c| *c != '.').collect();
    if digits.len() >= 2 && digits.len() <= 3 && digits.chars().all(|c| c.is_ascii_digit()) {
        let n: u32 = digits.parse().unwrap_or(0);
        if n >= 80 {
            return Ok(format!("sm_{digits}"));
        }
        return Err(Error::invalid(format!(
            "architecture {s}: the kernels need sm_80 or newer (mma.sync, cp.async, bf16)"
        )));
    }
    Err(Error::invalid(format!(
        "architecture '{s}' is not of the form sm_80, sm_90, ..."
    )))
}

/// NVRTC options for `arch` (`sm_XY`) and `output`.
pub fn options(arch: &str, output: Output) -> Vec<String> {
    let target = match output {
        Output::Ptx => arch.replacen("sm_", "compute_", 1),
        Output::Cubin => arch.to_string(),
    };
    vec![
        format!("--gpu-architecture={target}"),
        "--std=c++17".into(),
        "--generate-line-info".into(),
        // Kernels use ex2.approx explicitly; keep every other operation IEEE.
        "--fmad=true".into(),
    ]
}

/// The cache key: SHA-256 over everything that changes the compiled image.
pub fn cache_key(src: &Source, options: &[String], nvrtc_version: (i32, i32)) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(src.name.as_bytes());
    field(src.text.as_bytes());
    for (name, text) in src.headers {
        field(name.as_bytes());
        field(text.as_bytes());
    }
    for o in options {
        field(o.as_bytes());
    }
    field(format!("nvrtc {}.{}", nvrtc_version.0, nvrtc_version.1).as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache folder of this process (it may not exist yet).
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var(CACHE_DIR_ENV)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("sqa-bench")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/sqa-bench")))
}

/// The file in cache folder `dir` holding `src` compiled for `arch` as `output`.
pub fn cache_file(
    dir: &Path,
    src: &Source,
    arch: &str,
    output: Output,
    nvrtc_version: (i32, i32),
) -> PathBuf {
    let key = cache_key(src, &options(arch, output), nvrtc_version);
    dir.join(format!(
        "{}-{arch}-{}.{}",
        src.name.trim_end_matches(".cu"),
        &key[..32],
        output.extension()
    ))
}

/// Compiles `src` for `arch`, through the cache in `cache` when given.
pub fn compile_cached(
    src: &Source,
    arch: &str,
    output: Output,
    nvrtc_version: (i32, i32),
    cache: Option<&Path>,
) -> Result<Vec<u8>> {
    let opts = options(arch, output);
    let file = cache.map(|d| cache_file(d, src, arch, output, nvrtc_version));
    if let Some(image) = file.as_ref().and_then(|f| std::fs::read(f).ok()) {
        if !image.is_empty() {
            return Ok(image);
        }
    }
    let image = compile(src, &opts, output)?;
    if let (Some(dir), Some(file)) = (cache, &file) {
        // The cache only saves time: a folder we cannot write is not an error.
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, &image))
            .and_then(|_| std::fs::rename(&tmp, file));
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(image)
}

/// Compiles `src` with `options` and returns the PTX (NUL-terminated, as the driver wants
/// it) or the cubin. A compile error carries NVRTC's log, with file names and lines.
pub fn compile(src: &Source, options: &[String], output: Output) -> Result<Vec<u8>> {
    // Loads NVRTC on first use (an error, never cudarc's panic, when it is missing).
    super::libs::load_nvrtc(None)?;
    let err = |msg: String| Error::Backend {
        backend: "cuda",
        msg,
    };
    let cstr =
        |s: &str| CString::new(s).map_err(|_| err(format!("{}: NUL byte in source", src.name)));
    let text = cstr(src.text)?;
    let name = cstr(src.name)?;
    let header_texts = src
        .headers
        .iter()
        .map(|h| cstr(h.1))
        .collect::<Result<Vec<_>>>()?;
    let header_names = src
        .headers
        .iter()
        .map(|h| cstr(h.0))
        .collect::<Result<Vec<_>>>()?;
    let text_ptrs: Vec<*const c_char> = header_texts.iter().map(|c| c.as_ptr()).collect();
    let name_ptrs: Vec<*const c_char> = header_names.iter().map(|c| c.as_ptr()).collect();

    let mut prog: sys::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: every pointer refers to a NUL-terminated string that outlives the program
    // (they are dropped at the end of this function, after `destroy_program`), and the
    // two header arrays have `headers.len()` entries each.
    unsafe {
        sys::nvrtcCreateProgram(
            &mut prog,
            text.as_ptr(),
            name.as_ptr(),
            src.headers.len() as i32,
            text_ptrs.as_ptr(),
            name_ptrs.as_ptr(),
        )
    }
    .result()
    .map_err(|e| err(format!("nvrtcCreateProgram({}): {e:?}", src.name)))?;

    // SAFETY: `prog` was created above and is destroyed exactly once, below.
    let compiled = unsafe { nvrtc::compile_program(prog, options) };
    // SAFETY: as above; the log exists whether or not compilation succeeded.
    let log = unsafe { nvrtc::get_program_log(prog) }
        .map(|l| {
            // SAFETY: NVRTC writes a NUL-terminated log into the buffer it sized.
            unsafe { CStr::from_ptr(l.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let image = match compiled {
        Err(e) => Err(err(format!(
            "NVRTC could not compile {} ({e:?}, options {}):\n{}",
            src.name,
            options.join(" "),
            log.trim_end()
        ))),
        Ok(()) => match output {
            // SAFETY: `prog` compiled successfully.
            Output::Ptx => unsafe { nvrtc::get_ptx(prog) }
                .map(|p| p.into_iter().map(|c| c as u8).collect())
                .map_err(|e| err(format!("nvrtcGetPTX({}): {e:?}", src.name))),
            // SAFETY: `prog` compiled successfully.
            Output::Cubin => unsafe { get_cubin(prog) }
                .map_err(|e| err(format!("nvrtcGetCUBIN({}): {e:?}", src.name))),
        },
    };
    // SAFETY: `prog` is valid and not used after this.
    let _ = unsafe { nvrtc::destroy_program(prog) };
    image
}

/// # Safety
/// `prog` must be a successfully compiled, not yet destroyed program for a real `sm_XY`.
unsafe fn get_cubin(prog: sys::nvrtcProgram) -> std::result::Result<Vec<u8>, nvrtc::NvrtcError> {
    let mut size = 0usize;
    // SAFETY: the caller guarantees `prog`; `size` is valid for writes.
    unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }.result()?;
    let mut buf = vec![0 as c_char; size];
    // SAFETY: `buf` holds the `size` bytes NVRTC asked for.
    unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr()) }.result()?;
    Ok(buf.into_iter().map(|c| c as u8).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        assert_eq!(parse_arch("sm_90").unwrap(), "sm_90");
        assert_eq!(parse_arch("80").unwrap(), "sm_80");
        assert_eq!(parse_arch("9.0").unwrap(), "sm_90");
        assert_eq!(parse_arch("sm_100").unwrap(), "sm_100");
        assert!(parse_arch("sm_75").is_err());
        assert!(parse_arch("hopper").is_err());
        assert!(parse_arch("sm_9x").is_err());
        assert_eq!(
            options("sm_90", Output::Ptx)[0],
            "--gpu-architecture=compute_90"
        );
        assert_eq!(
            options("sm_90", Output::Cubin)[0],
            "--gpu-architecture=sm_90"
        );
    }

    #[test]
    fn cache_key_changes_with_every_input() {
        let h = [("common.cuh", "#define A 1")];
        let base = Source {
            name: "a.cu",
            text: "k",
            headers: &h,
        };
        let opts = options("sm_80", Output::Cubin);
        let k = cache_key(&base, &opts, (13, 0));
        assert_eq!(k, cache_key(&base, &opts, (13, 0)), "deterministic");
        assert_eq!(k.len(), 64);
        let h2 = [("common.cuh", "#define A 2")];
        let changed = [
            cache_key(&Source { text: "k2", ..base }, &opts, (13, 0)),
            cache_key(
                &Source {
                    headers: &h2,
                    ..base
                },
                &opts,
                (13, 0),
            ),
            cache_key(&base, &options("sm_90", Output::Cubin), (13, 0)),
            cache_key(&base, &options("sm_80", Output::Ptx), (13, 0)),
            cache_key(&base, &opts, (13, 1)),
            cache_key(&base, &opts, (12, 0)),
        ];
        for c in &changed {
            assert_ne!(&k, c);
        }
        // Field boundaries are part of the hash: moving text between fields changes it.
        let a = Source {
            name: "ab",
            text: "c",
            headers: &[],
        };
        let b = Source {
            name: "a",
            text: "bc",
            headers: &[],
        };
        assert_ne!(cache_key(&a, &opts, (13, 0)), cache_key(&b, &opts, (13, 0)));
    }
}
