//! Opening the GPU: probing the driver without panicking, the device's facts for
//! `meta.json`, NVML telemetry (clocks, temperature, power) and the peak-rate table.

use std::sync::Arc;

use cudarc::driver::{result as drv, sys, CudaContext, CudaStream, DriverError};

use crate::error::{Error, Result};

use super::libs::{self, NvrtcLib};

/// An opened GPU with everything the backend needs to know about it.
pub struct Device {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub name: String,
    /// Compute capability (major, minor).
    pub cc: (i32, i32),
    /// `sm_XY`, the NVRTC target.
    pub arch: String,
    pub sm_count: u32,
    pub total_mem_bytes: u64,
    pub l2_bytes: u64,
    /// Largest dynamic shared memory a block may opt in to.
    pub max_smem_optin: u32,
    /// CUDA version the driver supports, e.g. 13000.
    pub driver_cuda_version: i32,
    /// Max SM clock from the device attribute, in kHz (0 where unknown).
    pub clock_khz: i32,
    pub pci_bus_id: String,
    pub nvrtc: NvrtcLib,
}

/// A driver error as a backend error: `what` failed, and the driver's name for why.
pub fn driver_err(what: &str, e: DriverError) -> Error {
    Error::Backend {
        backend: "cuda",
        msg: format!("{what}: {}", describe(e)),
    }
}

/// `CUDA_ERROR_OUT_OF_MEMORY (out of memory)`.
pub fn describe(e: DriverError) -> String {
    let text = e
        .error_string()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{:?} ({text})", e.0)
}

/// Oldest driver (as the CUDA version it supports) this build's bindings run on: the
/// CUDA 13 bindings call entry points added in CUDA 12.8 (e.g. `cuEventElapsedTime_v2`).
#[cfg(not(feature = "cuda-12"))]
pub const MIN_DRIVER_VERSION: i32 = 12080;
/// Oldest driver (as the CUDA version it supports) this build's bindings run on.
#[cfg(feature = "cuda-12")]
pub const MIN_DRIVER_VERSION: i32 = 12020;

/// `12.8` from 12080.
pub fn version_text(v: i32) -> String {
    format!("{}.{}", v / 1000, v % 1000 / 10)
}

/// The CUDA major version of a driver version number (13000 → 13).
pub fn cuda_major(version: i32) -> u32 {
    (version / 1000).max(0) as u32
}

/// Opens GPU `ordinal`. Every way this can fail (no driver library, no device, a driver
/// too old, no NVRTC) is a [`Error::BackendUnavailable`] with one line saying which.
pub fn open(ordinal: usize) -> Result<Device> {
    let unavailable = |m: String| Error::BackendUnavailable(m);
    if !libs::driver_present() {
        return Err(unavailable(
            "no CUDA driver: libcuda.so.1 is not on the system library path (is the NVIDIA driver installed?)".into(),
        ));
    }
    drv::init().map_err(|e| {
        unavailable(format!(
            "the CUDA driver did not initialise: {}",
            describe(e)
        ))
    })?;
    let count = drv::device::get_count()
        .map_err(|e| unavailable(format!("cannot count CUDA devices: {}", describe(e))))?;
    if count <= ordinal as i32 {
        return Err(unavailable(format!(
            "no CUDA device {ordinal}: the driver reports {count} device(s)"
        )));
    }
    let mut version = 0;
    // SAFETY: the driver is initialised; `version` is valid for writes.
    unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(|e| unavailable(format!("cuDriverGetVersion: {}", describe(e))))?;
    if version < MIN_DRIVER_VERSION {
        return Err(unavailable(format!(
            "the driver supports CUDA {}, this build needs {} or newer: build with `--no-default-features --features cuda-12` for older drivers",
            version_text(version),
            version_text(MIN_DRIVER_VERSION)
        )));
    }
    let nvrtc = libs::load_nvrtc(Some(cuda_major(version)))?;

    let ctx = CudaContext::new(ordinal).map_err(|e| driver_err("creating the CUDA context", e))?;
    // One stream, raw launches: no per-buffer event bookkeeping inside timed regions.
    // SAFETY: called before any buffer is created in this context.
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx.default_stream();
    let attr = |a: sys::CUdevice_attribute| {
        ctx.attribute(a)
            .map_err(|e| driver_err(&format!("device attribute {a:?}"), e))
    };
    use sys::CUdevice_attribute as A;
    let cc = (
        attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
        attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
    );
    if cc.0 < 8 {
        return Err(unavailable(format!(
            "the GPU has compute capability {}.{}; the kernels need 8.0 or newer",
            cc.0, cc.1
        )));
    }
    let mut bus = [0 as std::ffi::c_char; 32];
    // SAFETY: `bus` has room for the 32 bytes passed as its length.
    let pci_bus_id =
        match unsafe { sys::cuDeviceGetPCIBusId(bus.as_mut_ptr(), 32, ctx.cu_device()) }.result() {
            // SAFETY: the driver wrote a NUL-terminated string into `bus`.
            Ok(()) => unsafe { std::ffi::CStr::from_ptr(bus.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
            Err(_) => String::new(),
        };
    Ok(Device {
        name: ctx.name().map_err(|e| driver_err("device name", e))?,
        arch: format!("sm_{}{}", cc.0, cc.1),
        cc,
        sm_count: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
        total_mem_bytes: ctx
            .total_mem()
            .map_err(|e| driver_err("device memory", e))? as u64,
        l2_bytes: attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?.max(0) as u64,
        max_smem_optin: attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)?.max(0)
            as u32,
        driver_cuda_version: version,
        clock_khz: attr(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE).unwrap_or(0),
        pci_bus_id,
        nvrtc,
        ctx,
        stream,
    })
}

impl Device {
    /// Free and total device memory in bytes.
    pub fn mem_info(&self) -> Result<(u64, u64)> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| driver_err("binding the CUDA context", e))?;
        let (free, total) = drv::mem_get_info().map_err(|e| driver_err("cuMemGetInfo", e))?;
        Ok((free as u64, total as u64))
    }

    /// Static facts for `meta.json`.
    pub fn facts(&self) -> serde_json::Value {
        let v = self.driver_cuda_version;
        let clock_mhz = telemetry_max_sm_clock(&self.pci_bus_id)
            .map(f64::from)
            .unwrap_or(self.clock_khz as f64 / 1e3);
        let (peak, peak_source) = match published_peak(&self.name) {
            Some((tf, gpu)) => (
                Some(tf),
                format!("published dense bf16 tensor-core peak of the {gpu} (NVIDIA data sheet)"),
            ),
            None => {
                let peak = peak_tflops(self.cc, self.sm_count, clock_mhz);
                let source = match peak {
                    Some(_) => format!(
                        "table: dense bf16 tensor-core FLOPs/clock/SM for sm_{}{} × {} SMs × {clock_mhz:.0} MHz max SM clock",
                        self.cc.0, self.cc.1, self.sm_count
                    ),
                    None => "unknown for this compute capability".to_string(),
                };
                (peak, source)
            }
        };
        serde_json::json!({
            "gpu_name": self.name,
            "compute_capability": format!("{}.{}", self.cc.0, self.cc.1),
            "arch": self.arch,
            "sm_count": self.sm_count,
            "memory_total_bytes": self.total_mem_bytes,
            "l2_cache_bytes": self.l2_bytes,
            "max_shared_memory_per_block_optin_bytes": self.max_smem_optin,
            "pci_bus_id": self.pci_bus_id,
            "cuda_driver_api_version": version_text(v),
            "nvrtc_version": format!("{}.{}", self.nvrtc.version.0, self.nvrtc.version.1),
            "nvrtc_library": self.nvrtc.path.as_ref().map_or("system library path".to_string(), |p| p.display().to_string()),
            "peak_tflops_per_s": peak,
            "peak_source": peak_source,
        })
    }
}

/// Published dense bf16 peaks (TFLOP/s, without sparsity) by GPU name, most specific first.
/// NVIDIA quotes Hopper at 1830 MHz, below the max clock NVML reports, so the data sheet
/// is preferred over the clock formula where the GPU is known.
const PUBLISHED_PEAKS: &[(&str, f64)] = &[
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H800", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10", 125.0),
];

/// The published peak of a GPU named `name` (e.g. "NVIDIA H200"), with the model matched.
pub fn published_peak(name: &str) -> Option<(f64, &'static str)> {
    let words: Vec<&str> = name
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty())
        .collect();
    PUBLISHED_PEAKS.iter().find_map(|&(model, tf)| {
        let parts: Vec<&str> = model.split_whitespace().collect();
        // Whole words in sequence, so "A10" does not match "A100" and "L4" not "L40S".
        words
            .windows(parts.len())
            .any(|w| w.iter().zip(&parts).all(|(a, b)| a.eq_ignore_ascii_case(b)))
            .then_some((tf, model))
    })
}

/// Dense bf16 tensor-core FLOPs per clock per SM (f32 accumulation), by compute capability.
pub fn bf16_flops_per_clock_per_sm(cc: (i32, i32)) -> Option<f64> {
    match cc {
        (8, 0) => Some(2048.0),          // A100, A30
        (8, 6) | (8, 7) => Some(1024.0), // A10, A40, Orin (data-centre rates)
        (8, 9) => Some(1024.0),          // L4, L40S
        (9, 0) => Some(4096.0),          // H100, H200, H20 (wgmma)
        (10, 0) => Some(8192.0),         // B200
        _ => None,
    }
}

/// Peak dense bf16 rate in TFLOP/s from the table, SM count and max SM clock (MHz).
pub fn peak_tflops(cc: (i32, i32), sm_count: u32, clock_mhz: f64) -> Option<f64> {
    let per = bf16_flops_per_clock_per_sm(cc)?;
    (clock_mhz > 0.0).then(|| per * sm_count as f64 * clock_mhz * 1e6 / 1e12)
}

/// NVML, opened by its driver soname (the unversioned name exists only with dev packages).
fn nvml() -> std::result::Result<nvml_wrapper::Nvml, String> {
    nvml_wrapper::Nvml::builder()
        .lib_path(std::ffi::OsStr::new("libnvidia-ml.so.1"))
        .init()
        .or_else(|_| nvml_wrapper::Nvml::init())
        .map_err(|e| e.to_string())
}

fn telemetry_max_sm_clock(pci_bus_id: &str) -> Option<u32> {
    let nvml = nvml().ok()?;
    let dev = nvml.device_by_pci_bus_id(pci_bus_id).ok()?;
    dev.max_clock_info(nvml_wrapper::enum_wrappers::device::Clock::SM)
        .ok()
}

/// Clocks, temperature and power now, from NVML; `{"nvml": "unavailable: ..."}` without it.
pub fn telemetry(pci_bus_id: &str) -> serde_json::Value {
    use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
    let nvml = match nvml() {
        Ok(n) => n,
        Err(e) => return serde_json::json!({ "nvml": format!("unavailable: {e}") }),
    };
    let dev = match nvml.device_by_pci_bus_id(pci_bus_id) {
        Ok(d) => d,
        Err(e) => return serde_json::json!({ "nvml": format!("no device {pci_bus_id}: {e}") }),
    };
    serde_json::json!({
        "utc": crate::results::utc_now(),
        "driver_version": nvml.sys_driver_version().ok(),
        "sm_clock_mhz": dev.clock_info(Clock::SM).ok(),
        "memory_clock_mhz": dev.clock_info(Clock::Memory).ok(),
        "max_sm_clock_mhz": dev.max_clock_info(Clock::SM).ok(),
        "max_memory_clock_mhz": dev.max_clock_info(Clock::Memory).ok(),
        "temperature_c": dev.temperature(TemperatureSensor::Gpu).ok(),
        "power_w": dev.power_usage().ok().map(|mw| mw as f64 / 1e3),
        "power_limit_w": dev.enforced_power_limit().ok().map(|mw| mw as f64 / 1e3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_table_matches_published_rates() {
        // A100 SXM: 108 SMs at 1410 MHz, 312 TFLOP/s dense bf16.
        let a100 = peak_tflops((8, 0), 108, 1410.0).unwrap();
        assert!((a100 - 312.0).abs() < 1.0, "{a100}");
        // H100 SXM: 132 SMs at 1830 MHz, 989 TFLOP/s dense bf16.
        let h100 = peak_tflops((9, 0), 132, 1830.0).unwrap();
        assert!((h100 - 989.0).abs() < 2.0, "{h100}");
        assert_eq!(peak_tflops((7, 5), 40, 1500.0), None);
        assert_eq!(peak_tflops((9, 0), 132, 0.0), None);
        assert_eq!(cuda_major(13000), 13);
        assert_eq!(cuda_major(12020), 12);
        assert_eq!(version_text(12080), "12.8");
        assert_eq!(published_peak("NVIDIA H200"), Some((989.4, "H200")));
        assert_eq!(
            published_peak("NVIDIA H100 PCIe"),
            Some((756.0, "H100 PCIe"))
        );
        assert_eq!(
            published_peak("NVIDIA H100 80GB HBM3"),
            Some((989.4, "H100"))
        );
        assert_eq!(
            published_peak("NVIDIA A100-SXM4-80GB"),
            Some((312.0, "A100"))
        );
        assert_eq!(published_peak("NVIDIA A1000"), None, "whole words only");
        assert_eq!(
            published_peak("NVIDIA A100 80GB PCIe"),
            Some((312.0, "A100"))
        );
        assert_eq!(published_peak("NVIDIA A10"), Some((125.0, "A10")));
        assert_eq!(published_peak("NVIDIA L40S"), Some((362.1, "L40S")));
        assert_eq!(published_peak("NVIDIA GeForce RTX 4090"), None);
        assert_eq!(version_text(13000), "13.0");
    }
}
