//! The CUDA backend: kernels from `cuda/` compiled at run time by NVRTC for the device's
//! own architecture, launched through the driver API (cudarc, loaded dynamically: the
//! binary starts on machines without CUDA).
//!
//! Split by concern: [`libs`] finds the libraries, [`device`] opens and describes the
//! GPU, [`compile`] runs NVRTC with its disk cache, [`kernels`] is the kernel table,
//! [`launch`] owns buffers and timed launches, [`ptxas`] reads resource reports.
//! The layer and model scopes: [`scope`] runs the forward program (`model::program`)
//! with the GEMMs of [`gemm`] (cuBLAS) and the kernels of `cuda/model.cu`
//! ([`model_kernels`]).

pub mod compile;
pub mod device;
pub mod gemm;
pub mod kernels;
pub mod launch;
pub mod libs;
pub mod model_kernels;
pub mod ptxas;
pub mod scope;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{sys, CudaFunction, CudaModule};
use cudarc::nvrtc::Ptx;

use crate::backend::{Backend, Prepared};
use crate::error::{Error, Result};
use crate::inputs::Inputs;
use crate::problem::{Dtype, Problem, Scope};

use compile::Source;
use device::{driver_err, Device};
use kernels::{Family, Geometry, KernelChoice};
use launch::{Args, CudaPrepared, DeviceBuffer};

/// Fraction of free device memory a problem may use (the rest: context, fragmentation).
const MEM_HEADROOM: f64 = 0.92;

/// Options of the CUDA backend.
#[derive(Debug, Clone)]
pub struct CudaOptions {
    pub kernel: KernelChoice,
    /// Flush L2 before every timed launch (default); `--no-l2-flush` turns it off.
    pub l2_flush: bool,
    pub ordinal: usize,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions {
            kernel: KernelChoice::Auto,
            l2_flush: true,
            ordinal: 0,
        }
    }
}

pub struct CudaBackend {
    // Fields drop in order: modules and buffers before the device's context.
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    flush: OnceLock<DeviceBuffer>,
    telemetry_start: serde_json::Value,
    opts: CudaOptions,
    dev: Device,
}

impl CudaBackend {
    /// Opens the GPU; see [`device::open`] for the errors.
    pub fn open(opts: CudaOptions) -> Result<Self> {
        let dev = device::open(opts.ordinal)?;
        let telemetry_start = device::telemetry(&dev.pci_bus_id);
        Ok(CudaBackend {
            dev,
            opts,
            modules: Mutex::new(HashMap::new()),
            flush: OnceLock::new(),
            telemetry_start,
        })
    }

    pub fn device_handle(&self) -> &Device {
        &self.dev
    }

    /// The loaded module of `fam`, compiled (or read from the cache) on first use.
    pub fn module(&self, fam: &'static Family) -> Result<Arc<CudaModule>> {
        self.load_program(fam.name, &fam.program())
    }

    /// The loaded module of program `src` (cached under `key`), compiled on first use.
    pub fn load_program(
        &self,
        key: &'static str,
        src: &Source<'static>,
    ) -> Result<Arc<CudaModule>> {
        let mut mods = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = mods.get(key) {
            return Ok(m.clone());
        }
        let compile = |cache: Option<&std::path::Path>| {
            compile::compile_cached(
                src,
                &self.dev.arch,
                compile::Output::Cubin,
                self.dev.nvrtc.version,
                cache,
            )
        };
        let load = |image: Vec<u8>| self.dev.ctx.load_module(Ptx::from_binary(image));
        let cache = compile::cache_dir();
        let m = match (load(compile(cache.as_deref())?), &cache) {
            (Ok(m), _) => Ok(m),
            // A damaged cache entry must not stick: drop it and compile afresh once.
            (Err(_), Some(dir)) => {
                let v = self.dev.nvrtc.version;
                let file = compile::cache_file(dir, src, &self.dev.arch, compile::Output::Cubin, v);
                let _ = std::fs::remove_file(file);
                load(compile(cache.as_deref())?)
            }
            (Err(e), None) => Err(e),
        }
        .map_err(|e| driver_err(&format!("loading {} for {}", src.name, self.dev.arch), e))?;
        mods.insert(key, m.clone());
        Ok(m)
    }

    /// The attention entry point of `fam` for a (dtype, d_head) problem, its shared-memory
    /// limit raised where the geometry needs more than the default 48 KiB.
    pub fn attention_function(
        &self,
        fam: &'static Family,
        dtype: Dtype,
        d_head: usize,
    ) -> Result<(CudaFunction, Geometry)> {
        let geometry = (fam.geometry)(d_head);
        let entry = kernels::entry_name(fam.name, dtype, d_head);
        let func = self
            .module(fam)?
            .load_function(&entry)
            .map_err(|e| driver_err(&format!("kernel {entry} in {}", fam.file), e))?;
        if geometry.smem_bytes > 48 * 1024 {
            // SAFETY: `func` is a live function of a loaded module; the value was checked
            // against the device's opt-in limit in `check`.
            unsafe {
                cudarc::driver::result::function::set_function_attribute(
                    func.cu_function(),
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    geometry.smem_bytes as i32,
                )
            }
            .map_err(|e| driver_err(&format!("raising the shared memory limit of {entry}"), e))?;
        }
        Ok((func, geometry))
    }

    /// Bytes a problem allocates on the device (Q, K, V, O in 16 bits; the L2 flush buffer
    /// is allocated once per process and counted while it does not exist yet).
    pub fn device_bytes(&self, p: &Problem) -> u64 {
        let s = &p.shape;
        let tensors = (s.q_len() + 2 * s.kv_len() + s.o_len()) as u64 * 2;
        let flush = if self.opts.l2_flush && self.flush.get().is_none() {
            self.flush_bytes() as u64
        } else {
            0
        };
        tensors + flush
    }

    /// Twice the L2 size (at least 64 MiB): enough writes to evict every line.
    fn flush_bytes(&self) -> usize {
        ((self.dev.l2_bytes as usize) * 2).max(64 << 20)
    }

    fn flush_buffer(&self) -> Result<Option<&DeviceBuffer>> {
        if !self.opts.l2_flush {
            return Ok(None);
        }
        if let Some(b) = self.flush.get() {
            return Ok(Some(b));
        }
        let b = DeviceBuffer::alloc(&self.dev, self.flush_bytes(), "the L2 flush buffer")?;
        Ok(Some(self.flush.get_or_init(|| b)))
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn device(&self) -> String {
        self.dev.name.clone()
    }

    fn device_info(&self) -> serde_json::Value {
        let mut info = self.dev.facts();
        info["l2_flush"] = serde_json::json!(self.opts.l2_flush);
        info["telemetry_start"] = self.telemetry_start.clone();
        info["telemetry_now"] = device::telemetry(&self.dev.pci_bus_id);
        if let Some(lib) = libs::cublas_loaded() {
            info["cublas_library"] =
                serde_json::json!(lib.path.map_or("system library path".to_string(), |p| p
                    .display()
                    .to_string()));
        }
        info
    }

    fn kernel(&self, p: &Problem) -> String {
        match self.opts.kernel.resolve(p.dtype, p.shape.d_head) {
            Ok(f) => f.name.to_string(),
            Err(_) => match &self.opts.kernel {
                KernelChoice::Named(f) => f.name.to_string(),
                KernelChoice::Auto => "auto".to_string(),
            },
        }
    }

    fn output_dtype(&self, p: &Problem) -> Dtype {
        p.dtype
    }

    fn check(&self, p: &Problem) -> Result<()> {
        let fam = self.opts.kernel.resolve(p.dtype, p.shape.d_head)?;
        let g = (fam.geometry)(p.shape.d_head);
        if g.smem_bytes > self.dev.max_smem_optin {
            return Err(Error::BackendUnavailable(format!(
                "kernel {} at d_head {} needs {} bytes of shared memory; this GPU allows {}",
                fam.name, p.shape.d_head, g.smem_bytes, self.dev.max_smem_optin
            )));
        }
        launch::grid(&p.shape, &g)?;
        Args::for_shape(&p.shape)?;
        if p.scope != Scope::Kernel {
            return scope::check(self, p);
        }
        let (free, _) = self.dev.mem_info()?;
        fits_memory(self.device_bytes(p), free, || {
            format!(
                "{} at N = {}, batch {} on {}",
                p.variant, p.shape.seq_len, p.shape.batch, self.dev.name
            )
        })
    }

    fn prepare<'a>(&'a self, p: &Problem, inputs: &Inputs) -> Result<Box<dyn Prepared + 'a>> {
        self.check(p)?;
        if p.scope != Scope::Kernel {
            return Ok(Box::new(scope::ScopePrepared::new(self, p, inputs.seed)?));
        }
        let s = &p.shape;
        let fam = self.opts.kernel.resolve(p.dtype, s.d_head)?;
        let (func, geometry) = self.attention_function(fam, p.dtype, s.d_head)?;
        let flush = self.flush_buffer()?;
        let (free_before, _) = self.dev.mem_info()?;
        let what = |t: &str| format!("{t} of {} at N = {}", p.variant, s.seq_len);
        let q = DeviceBuffer::upload(&self.dev, &launch::to_bits(&inputs.q, p.dtype)?, &what("Q"))?;
        let k = DeviceBuffer::upload(&self.dev, &launch::to_bits(&inputs.k, p.dtype)?, &what("K"))?;
        let v = DeviceBuffer::upload(&self.dev, &launch::to_bits(&inputs.v, p.dtype)?, &what("V"))?;
        let o = DeviceBuffer::alloc(&self.dev, s.o_len() * 2, &what("O"))?;
        let (free_after, _) = self.dev.mem_info()?;
        let event = || {
            self.dev
                .ctx
                .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| driver_err("creating a timing event", e))
        };
        let prepared = CudaPrepared {
            dev: &self.dev,
            func,
            geometry,
            grid: launch::grid(s, &geometry)?,
            args: Args::for_shape(s)?,
            dtype: p.dtype,
            q,
            k,
            v,
            o,
            flush,
            start: event()?,
            end: event()?,
            flushes: 0,
            peak_mem: Some(free_before.saturating_sub(free_after)),
        };
        prepared.poison()?;
        Ok(Box::new(prepared))
    }
}

/// `need` bytes fit when they stay under [`MEM_HEADROOM`] of the `free` device memory.
pub fn fits_memory(need: u64, free: u64, what: impl FnOnce() -> String) -> Result<()> {
    if need as f64 > free as f64 * MEM_HEADROOM {
        return Err(Error::OutOfMemory {
            what: what(),
            need_bytes: need,
            avail_bytes: free,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_check_keeps_headroom_and_reports_oom() {
        let gib = 1u64 << 30;
        assert!(fits_memory(gib, 2 * gib, String::new).is_ok());
        assert!(fits_memory(2 * gib, 2 * gib, String::new).is_err());
        let e = fits_memory(140 * gib, 139 * gib, || "MHA at N = 131072".into()).unwrap_err();
        assert_eq!(e.status(), "oom");
        assert!(e.to_string().contains("MHA at N = 131072"), "{e}");
    }
}

#[cfg(all(feature = "cuda-12", feature = "cuda-13"))]
compile_error!(
    "pick one CUDA major: `--no-default-features --features cuda-12` for CUDA 12 drivers"
);
