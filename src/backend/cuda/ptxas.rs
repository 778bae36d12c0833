//! Resource reports of `ptxas -v`: registers, shared memory and spills per entry point.
//!
//! `sqa-bench kernels` (and CI) assemble the PTX NVRTC produced with the toolkit's
//! `ptxas` and parse its verbose report, so that a register spill or a shared-memory
//! overflow is seen without a GPU.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Resources of one entry point as `ptxas -v` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub function: String,
    pub arch: String,
    pub registers: u32,
    /// Static shared memory in bytes (dynamic shared memory is added at launch).
    pub smem_bytes: u32,
    pub stack_bytes: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
}

impl Resources {
    pub fn spills(&self) -> bool {
        self.spill_stores > 0 || self.spill_loads > 0
    }
}

/// The number written just before `unit` in `text` (`"40 registers"` → 40).
fn number_before(text: &str, unit: &str) -> Option<u32> {
    let at = text.find(unit)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

/// Parses the report of `ptxas -v` (any number of entry points).
pub fn parse_report(text: &str) -> Vec<Resources> {
    let mut out: Vec<Resources> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line
            .split("Compiling entry function '")
            .nth(1)
            .filter(|_| line.starts_with("ptxas info"))
        {
            let mut parts = rest.split('\'');
            let function = parts.next().unwrap_or_default().to_string();
            let arch = parts.nth(1).unwrap_or_default().to_string();
            out.push(Resources {
                function,
                arch,
                ..Default::default()
            });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if line.contains("bytes stack frame") {
            cur.stack_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
            cur.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
            cur.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.starts_with("ptxas info") && line.contains("Used ") {
            cur.registers = number_before(line, "registers").unwrap_or(0);
            cur.smem_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out
}

/// `ptxas` next to the NVRTC in use or on the usual toolkit paths, `$PATH` last.
pub fn find_ptxas(nvrtc: Option<&Path>) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(lib) = nvrtc.and_then(Path::parent) {
        // Toolkit: lib64/../bin; pip wheel: nvidia/cu13/lib/../bin.
        candidates.push(lib.join("../bin/ptxas"));
        candidates.push(lib.join("../../bin/ptxas"));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(home) = std::env::var_os(var) {
            candidates.push(PathBuf::from(home).join("bin/ptxas"));
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda/bin/ptxas"));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("ptxas")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or(p))
}

/// Assembles `ptx_file` for `arch` with `ptxas -v` and returns the parsed report.
pub fn run_ptxas(ptxas: &Path, ptx_file: &Path, arch: &str) -> Result<Vec<Resources>> {
    let out_file = ptx_file.with_extension("cubin");
    let output = Command::new(ptxas)
        .arg("-v")
        .arg(format!("--gpu-name={arch}"))
        .arg(ptx_file)
        .arg("-o")
        .arg(&out_file)
        .output()
        .map_err(|e| Error::io(ptxas, e))?;
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::Backend {
            backend: "cuda",
            msg: format!(
                "ptxas failed on {} for {arch}:\n{}",
                ptx_file.display(),
                text.trim_end()
            ),
        });
    }
    Ok(parse_report(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ptxas_13_and_12_reports() {
        let text = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'attention_simple_bf16_d64' for 'sm_90'
ptxas info    : Function properties for attention_simple_bf16_d64
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 72 registers, used 1 barriers, 16384 bytes smem, 400 bytes cmem[0]
ptxas info    : Compiling entry function 'attention_mma_f16_d128' for 'sm_80'
ptxas info    : Function properties for attention_mma_f16_d128
    24 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 255 registers, 384 bytes cmem[0]
";
        let r = parse_report(text);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            Resources {
                function: "attention_simple_bf16_d64".into(),
                arch: "sm_90".into(),
                registers: 72,
                smem_bytes: 16384,
                stack_bytes: 0,
                spill_stores: 0,
                spill_loads: 0,
            }
        );
        assert!(!r[0].spills());
        assert_eq!((r[1].registers, r[1].smem_bytes), (255, 0));
        assert_eq!(
            (r[1].stack_bytes, r[1].spill_stores, r[1].spill_loads),
            (24, 8, 12)
        );
        assert!(r[1].spills());
        assert!(parse_report("garbage\n").is_empty());
    }
}
