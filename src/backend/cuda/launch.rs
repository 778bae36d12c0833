//! Device buffers, one timed launch, and reading the output back.
//!
//! Timing: the L2 cache is flushed (a memset of a buffer twice the L2 size) before the
//! start event, then exactly one kernel launch sits between two events created with
//! timing enabled. Nothing is allocated, copied or printed inside the timed region.

use std::ffi::c_void;

use cudarc::driver::{result as drv, sys, CudaEvent, CudaFunction, CudaStream};

use crate::backend::Prepared;
use crate::error::{Error, Result};
use crate::problem::{AttnShape, Dtype};

use super::device::{describe, driver_err, Device};
use super::kernels::Geometry;

/// A 16-bit NaN in both bf16 and f16 (all exponent bits and mantissa bits set): a
/// kernel that leaves an output element unwritten is caught by the NaN check.
pub const POISON_U16: u16 = 0x7FFF;

/// Raw device memory, freed on drop.
pub struct DeviceBuffer {
    pub ptr: sys::CUdeviceptr,
    pub bytes: usize,
}

impl DeviceBuffer {
    /// Allocates `bytes`; CUDA's out-of-memory becomes [`Error::OutOfMemory`].
    pub fn alloc(dev: &Device, bytes: usize, what: &str) -> Result<Self> {
        dev.ctx
            .bind_to_thread()
            .map_err(|e| driver_err("binding the CUDA context", e))?;
        // SAFETY: the context is current; the pointer is owned by the returned buffer.
        match unsafe { drv::malloc_sync(bytes.max(1)) } {
            Ok(ptr) => Ok(DeviceBuffer { ptr, bytes }),
            Err(e) if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => Err(Error::OutOfMemory {
                what: what.to_string(),
                need_bytes: bytes as u64,
                avail_bytes: dev.mem_info().map(|m| m.0).unwrap_or(0),
            }),
            Err(e) => Err(driver_err(
                &format!("allocating {bytes} bytes for {what}"),
                e,
            )),
        }
    }

    /// Allocates and uploads `data`.
    pub fn upload(dev: &Device, data: &[u16], what: &str) -> Result<Self> {
        let buf = Self::alloc(dev, std::mem::size_of_val(data), what)?;
        // SAFETY: `buf` holds exactly `data.len()` u16 values.
        unsafe { drv::memcpy_htod_sync(buf.ptr, data) }
            .map_err(|e| driver_err(&format!("uploading {what}"), e))?;
        Ok(buf)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from cuMemAlloc and is freed once; errors cannot be reported
        // from a destructor and leave nothing to clean up.
        let _ = unsafe { drv::free_sync(self.ptr) };
    }
}

/// f32 values (already rounded to `dtype`) as the 16-bit words the kernels read.
pub fn to_bits(x: &[f32], dtype: Dtype) -> Result<Vec<u16>> {
    dtype.to_bits16(x).ok_or_else(|| {
        Error::BackendUnavailable("the CUDA kernels store bf16 or f16, not f32".into())
    })
}

/// 16-bit words back to f32.
pub fn from_bits(x: &[u16], dtype: Dtype) -> Vec<f32> {
    dtype.from_bits16(x)
}

/// Overwrites the L2 flush buffer on `dev`'s stream before a timed repetition, with a different
/// byte each time (`fills` counts them) so that nothing can elide the write; no-op without one.
pub fn flush_l2(flush: Option<&DeviceBuffer>, fills: &mut u8, dev: &Device) -> Result<()> {
    let Some(f) = flush else { return Ok(()) };
    *fills = fills.wrapping_add(1);
    // SAFETY: `f` is a live allocation of `f.bytes` bytes in the context of `dev`'s stream.
    unsafe { drv::memset_d8_async(f.ptr, *fills, f.bytes, dev.stream.cu_stream()) }
        .map_err(|e| driver_err("flushing L2", e))
}

/// Waits for the device's stream, copies a 16-bit buffer back as f32 and fails when any
/// element is NaN (poisoned and never written by `what`).
pub fn download_checked(
    dev: &Device,
    buf: &DeviceBuffer,
    dtype: Dtype,
    what: &str,
) -> Result<Vec<f32>> {
    dev.stream
        .synchronize()
        .map_err(|e| driver_err(&format!("waiting for {what}"), e))?;
    let mut bits = vec![0u16; buf.bytes / 2];
    // SAFETY: `bits` has room for every u16 of `buf`; the stream is idle.
    unsafe { drv::memcpy_dtoh_sync(&mut bits, buf.ptr) }
        .map_err(|e| driver_err("downloading the output", e))?;
    let out = from_bits(&bits, dtype);
    if let Some((first, count)) = find_nan(&out) {
        return Err(Error::Backend {
            backend: "cuda",
            msg: format!("{count} output elements of {what} are NaN or were never written (first at flat index {first})"),
        });
    }
    Ok(out)
}

/// Index and count of NaN elements (unwritten or poisoned outputs).
pub fn find_nan(x: &[f32]) -> Option<(usize, usize)> {
    let first = x.iter().position(|v| v.is_nan())?;
    Some((first, x[first..].iter().filter(|v| v.is_nan()).count()))
}

/// Kernel arguments, in the order of the kernel contract.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Args {
    pub seq_len: i32,
    pub heads_q: i32,
    pub heads_kv: i32,
    pub causal: i32,
    pub window: i32,
    pub scale_log2: f32,
}

impl Args {
    pub fn for_shape(s: &AttnShape) -> Result<Self> {
        let int = |x: usize, what: &str| {
            i32::try_from(x)
                .map_err(|_| Error::invalid(format!("{what} {x} is too large for the kernels")))
        };
        use crate::problem::Pattern;
        Ok(Args {
            seq_len: int(s.seq_len, "sequence length")?,
            heads_q: s.heads.q as i32,
            heads_kv: s.heads.kv as i32,
            causal: i32::from(!matches!(s.pattern, Pattern::Full)),
            window: s.pattern.window() as i32,
            scale_log2: (std::f64::consts::LOG2_E / (s.d_head as f64).sqrt()) as f32,
        })
    }
}

/// Grid of a launch: (ceil(N / block_q), H_eff, B). Errors when a dimension overflows.
pub fn grid(s: &AttnShape, g: &Geometry) -> Result<(u32, u32, u32)> {
    let x = s.seq_len.div_ceil(g.block_q as usize);
    if x > i32::MAX as usize || s.batch > 65_535 || s.heads.eff() > 65_535 {
        return Err(Error::invalid(format!(
            "grid ({x}, {}, {}) exceeds CUDA's limits",
            s.heads.eff(),
            s.batch
        )));
    }
    Ok((x as u32, s.heads.eff(), s.batch as u32))
}

/// A problem on the GPU: inputs uploaded, output poisoned, events ready.
pub struct CudaPrepared<'a> {
    pub dev: &'a Device,
    pub func: CudaFunction,
    pub geometry: Geometry,
    pub grid: (u32, u32, u32),
    pub args: Args,
    pub dtype: Dtype,
    pub q: DeviceBuffer,
    pub k: DeviceBuffer,
    pub v: DeviceBuffer,
    pub o: DeviceBuffer,
    /// Written before every timed launch to evict Q, K, V, O from L2; `None` skips.
    pub flush: Option<&'a DeviceBuffer>,
    pub start: CudaEvent,
    pub end: CudaEvent,
    pub flushes: u8,
    pub peak_mem: Option<u64>,
}

impl CudaPrepared<'_> {
    fn stream(&self) -> sys::CUstream {
        self.dev.stream.cu_stream()
    }

    /// Fills the output with [`POISON_U16`].
    pub fn poison(&self) -> Result<()> {
        // SAFETY: `o` holds `bytes / 2` u16 values; the stream belongs to the current context.
        unsafe { sys::cuMemsetD16Async(self.o.ptr, POISON_U16, self.o.bytes / 2, self.stream()) }
            .result()
            .map_err(|e| driver_err("poisoning the output", e))
    }

    fn launch(&self) -> Result<()> {
        // SAFETY: Q, K, V and O were allocated for this problem's shape, which gave the
        // grid and the arguments.
        unsafe {
            launch_attention(
                &self.func,
                &self.geometry,
                self.grid,
                &self.dev.stream,
                [self.q.ptr, self.k.ptr, self.v.ptr, self.o.ptr],
                self.args,
            )
        }
    }
}

/// Enqueues one attention launch on `stream` with the kernel contract's arguments
/// (`q, k, v, o` device pointers, then [`Args`]). The kernel scope and the attention ops
/// of the layer and model scopes both launch through here.
///
/// # Safety
/// `qkvo` are live device allocations of this context holding `Q [B, H_q, N, d]`,
/// `K, V [B, H_kv, N, d]` and `O [B, H_eff, N, d]` of the shape that `grid` and `args`
/// were computed from, in the dtype and head dimension of `func`.
pub unsafe fn launch_attention(
    func: &CudaFunction,
    g: &Geometry,
    grid: (u32, u32, u32),
    stream: &CudaStream,
    qkvo: [sys::CUdeviceptr; 4],
    args: Args,
) -> Result<()> {
    let [mut q, mut k, mut v, mut o] = qkvo;
    let mut a = args;
    let mut params: [*mut c_void; 10] = [
        &mut q as *mut _ as *mut c_void,
        &mut k as *mut _ as *mut c_void,
        &mut v as *mut _ as *mut c_void,
        &mut o as *mut _ as *mut c_void,
        &mut a.seq_len as *mut _ as *mut c_void,
        &mut a.heads_q as *mut _ as *mut c_void,
        &mut a.heads_kv as *mut _ as *mut c_void,
        &mut a.causal as *mut _ as *mut c_void,
        &mut a.window as *mut _ as *mut c_void,
        &mut a.scale_log2 as *mut _ as *mut c_void,
    ];
    // SAFETY: the ten parameters match the kernel contract's signature (four device
    // pointers, five ints, one float) and live until the call returns (the driver
    // copies them); the caller's buffers are large enough for the grid's shape.
    unsafe {
        drv::launch_kernel(
            func.cu_function(),
            grid,
            (g.threads, 1, 1),
            g.smem_bytes,
            stream.cu_stream(),
            &mut params,
        )
    }
    .map_err(|e| driver_err("kernel launch", e))
}

impl Prepared for CudaPrepared<'_> {
    fn run(&mut self) -> Result<f64> {
        flush_l2(self.flush, &mut self.flushes, self.dev)?;
        let stream = &self.dev.stream;
        self.start
            .record(stream)
            .map_err(|e| driver_err("recording the start event", e))?;
        self.launch()?;
        self.end
            .record(stream)
            .map_err(|e| driver_err("recording the end event", e))?;
        let ms = self
            .start
            .elapsed_ms(&self.end)
            .map_err(|e| Error::Backend {
                backend: "cuda",
                msg: format!("kernel failed: {}", describe(e)),
            })?;
        Ok(ms as f64 / 1e3)
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        download_checked(self.dev, &self.o, self.dtype, "the kernel")
    }

    fn peak_mem_bytes(&self) -> Option<u64> {
        self.peak_mem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Heads, Pattern};

    #[test]
    fn poison_is_nan_in_both_dtypes_and_bits_round_trip() {
        assert!(from_bits(&[POISON_U16], Dtype::Bf16)[0].is_nan());
        assert!(from_bits(&[POISON_U16], Dtype::F16)[0].is_nan());
        for dt in [Dtype::Bf16, Dtype::F16] {
            let x: Vec<f32> = [1.0, -0.5, 1.5, 0.1].iter().map(|&v| dt.round(v)).collect();
            assert_eq!(from_bits(&to_bits(&x, dt).unwrap(), dt), x);
        }
        assert!(to_bits(&[1.0], Dtype::F32).is_err());
        assert_eq!(find_nan(&[1.0, f32::NAN, 2.0, f32::NAN]), Some((1, 2)));
        assert_eq!(find_nan(&[1.0]), None);
    }

    #[test]
    fn arguments_and_grid_follow_the_contract() {
        let mut s = AttnShape {
            batch: 3,
            seq_len: 1000,
            heads: Heads {
                total: 16,
                q: 4,
                kv: 8,
            },
            d_head: 64,
            pattern: Pattern::Window(128),
        };
        let a = Args::for_shape(&s).unwrap();
        assert_eq!(
            (a.seq_len, a.heads_q, a.heads_kv, a.causal, a.window),
            (1000, 4, 8, 1, 128)
        );
        assert!((a.scale_log2 - (1.0f64.exp().log2() / 8.0) as f32).abs() < 1e-7);
        let g = Geometry {
            block_q: 64,
            threads: 64,
            smem_bytes: 0,
        };
        assert_eq!(grid(&s, &g).unwrap(), (16, 8, 3));
        s.pattern = Pattern::Full;
        let a = Args::for_shape(&s).unwrap();
        assert_eq!((a.causal, a.window), (0, 0));
        s.pattern = Pattern::Causal;
        assert_eq!(Args::for_shape(&s).unwrap().causal, 1);
        s.batch = 70_000;
        assert!(grid(&s, &g).is_err());
    }
}
