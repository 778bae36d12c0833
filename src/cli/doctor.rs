//! `sqa-bench doctor`: what the CUDA backend finds on this machine — driver, GPU, NVRTC,
//! ptxas, NVML — and whether every kernel compiles and loads for this GPU. Exit status 2
//! when the GPU cannot be used, with the reason on one line.

use std::process::ExitCode;

use clap::Args;

use sqa_bench::backend::cuda::kernels::FAMILIES;
use sqa_bench::backend::cuda::{
    compile, device, libs, model_kernels, ptxas, CudaBackend, CudaOptions,
};
use sqa_bench::backend::Backend;

#[derive(Debug, Args)]
pub struct DoctorArgs {}

pub fn run(_: DoctorArgs) -> anyhow::Result<ExitCode> {
    let spec = libs::SearchSpec::from_env();
    println!("NVRTC majors this build loads: {:?}", libs::NVRTC_MAJORS);
    println!("{} = {:?}", libs::LIB_DIR_ENV, spec.lib_dir);
    println!("folders searched for NVRTC:");
    for d in spec.dirs() {
        println!("  {}", d.display());
    }
    println!(
        "CUDA driver library: {}",
        if libs::driver_present() {
            "found"
        } else {
            "not found"
        }
    );
    println!(
        "kernel cache: {}",
        compile::cache_dir().map_or("none (no HOME)".into(), |d| d.display().to_string())
    );

    let backend = CudaBackend::open(CudaOptions::default())?;
    let dev = backend.device_handle();
    println!(
        "{}",
        serde_json::to_string_pretty(&backend.device_info()).unwrap_or_default()
    );
    match ptxas::find_ptxas(dev.nvrtc.path.as_deref()) {
        Some(p) => println!("ptxas: {}", p.display()),
        None => println!("ptxas: not found (only `kernels` needs it)"),
    }
    for fam in FAMILIES {
        let t0 = std::time::Instant::now();
        let module = backend.module(fam)?;
        for (_, _, entry) in fam.entries() {
            module.load_function(&entry).map_err(|e| {
                anyhow::anyhow!("{entry} missing from the loaded {}: {e}", fam.file)
            })?;
        }
        println!(
            "kernel family {}: {} entry points compiled for {} and loaded in {:.2} s",
            fam.name,
            fam.entries().len(),
            dev.arch,
            t0.elapsed().as_secs_f64()
        );
    }
    // The layer and model scopes: model.cu's kernels, and cuBLAS (kernel scope runs without it).
    let module = backend.load_program("model", &model_kernels::model_program())?;
    for k in model_kernels::MODEL_KERNELS {
        for dt in ["bf16", "f16"] {
            let entry = format!("{k}_{dt}");
            module
                .load_function(&entry)
                .map_err(|e| anyhow::anyhow!("{entry} missing from the loaded model.cu: {e}"))?;
        }
    }
    println!(
        "model.cu: {} entry points loaded",
        2 * model_kernels::MODEL_KERNELS.len()
    );
    match libs::load_cublas(Some(device::cuda_major(dev.driver_cuda_version))) {
        Ok(lib) => println!(
            "cuBLAS: {}",
            lib.path
                .map_or("system library path".into(), |p| p.display().to_string())
        ),
        Err(e) => println!("cuBLAS: not usable, --scope layer and model will refuse: {e}"),
    }
    println!("the CUDA backend is ready");
    Ok(ExitCode::SUCCESS)
}
