//! `sqa-bench kernels`: compiles every kernel of `cuda/` to PTX with NVRTC, without a
//! GPU, and prints `ptxas`' resource report (registers, shared memory, spills).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use sqa_bench::backend::cuda::compile::{self, Output};
use sqa_bench::backend::cuda::kernels::FAMILIES;
use sqa_bench::backend::cuda::{libs, ptxas};
use sqa_bench::report::align;

#[derive(Debug, Args)]
pub struct KernelsArgs {
    /// Target architectures (sm_80 = A100, sm_90 = H100/H200).
    #[arg(long, default_value = "sm_80,sm_90", value_delimiter = ',')]
    pub arch: Vec<String>,
    /// Folder for the PTX files (and ptxas' cubins).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Fail (exit 2) when ptxas is not found instead of skipping the resource report.
    #[arg(long)]
    pub require_ptxas: bool,
    /// Report register spills without failing (exit status 0).
    #[arg(long)]
    pub allow_spills: bool,
}

pub fn run(a: KernelsArgs) -> anyhow::Result<ExitCode> {
    let archs = a
        .arch
        .iter()
        .map(|s| compile::parse_arch(s))
        .collect::<Result<Vec<_>, _>>()
        .context("--arch")?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("sqa-bench-kernels"));
    std::fs::create_dir_all(&out).with_context(|| format!("--out {}", out.display()))?;
    let nvrtc = libs::load_nvrtc(None)?;
    println!(
        "NVRTC {}.{} ({})",
        nvrtc.version.0,
        nvrtc.version.1,
        nvrtc
            .path
            .as_ref()
            .map_or("system library path".into(), |p| p.display().to_string())
    );
    let ptxas = ptxas::find_ptxas(nvrtc.path.as_deref());
    match &ptxas {
        Some(p) => println!("ptxas {}", p.display()),
        None if a.require_ptxas => anyhow::bail!(
            "ptxas not found (next to NVRTC, $CUDA_HOME/bin, /usr/local/cuda/bin, $PATH)"
        ),
        None => println!("note: ptxas not found: PTX only, no resource report"),
    }

    let mut table = vec![[
        "kernel", "arch", "entry", "regs", "smem", "dyn smem", "stack", "spill st", "spill ld",
    ]
    .map(String::from)
    .to_vec()];
    let mut spilling = Vec::new();
    for arch in &archs {
        for fam in FAMILIES {
            let ptx = compile::compile(
                &fam.program(),
                &compile::options(arch, Output::Ptx),
                Output::Ptx,
            )?;
            let text = String::from_utf8_lossy(&ptx);
            let text = text.trim_end_matches('\0');
            for (_, _, entry) in fam.entries() {
                if !text.contains(&format!(".entry {entry}(")) {
                    anyhow::bail!("{}: entry point {entry} is missing from the PTX", fam.file);
                }
            }
            let file = out.join(format!("{}-{arch}.ptx", fam.name));
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
            println!("wrote {}", file.display());
            let Some(ptxas) = &ptxas else { continue };
            let report = ptxas::run_ptxas(ptxas, &file, arch)?;
            for (_, d, entry) in fam.entries() {
                let r = report
                    .iter()
                    .find(|r| r.function == entry)
                    .with_context(|| format!("ptxas reported nothing for {entry}"))?;
                if r.spills() {
                    spilling.push(format!("{entry} ({arch})"));
                }
                table.push(vec![
                    fam.name.to_string(),
                    arch.clone(),
                    entry.clone(),
                    r.registers.to_string(),
                    r.smem_bytes.to_string(),
                    (fam.geometry)(d).smem_bytes.to_string(),
                    r.stack_bytes.to_string(),
                    r.spill_stores.to_string(),
                    r.spill_loads.to_string(),
                ]);
            }
        }
    }
    if table.len() > 1 {
        print!("{}", align(&table));
    }
    if !spilling.is_empty() && a.allow_spills {
        println!(
            "warning: {} entry points spill registers: {}",
            spilling.len(),
            spilling.join(", ")
        );
    } else if !spilling.is_empty() {
        eprintln!(
            "error: {} entry points spill registers: {}",
            spilling.len(),
            spilling.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    println!(
        "compiled {} kernel families for {}",
        FAMILIES.len(),
        archs.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
