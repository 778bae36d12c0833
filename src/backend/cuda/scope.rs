//! The layer and model scopes on the GPU: the CUDA executor of `model::program`.
//!
//! Every buffer of the program is allocated once (activations reused by every layer,
//! `H` in f32, token ids in i32, the rest in the problem's 16-bit dtype) and every weight
//! of `StepData::random` is uploaded as 16-bit words. A step runs the ops in order on the
//! device's one stream: `Gemm` through cuBLAS ([`super::gemm`]), `Attention` through the
//! same attention kernel the kernel scope times (`--kernel`), the rest through the
//! kernels of `cuda/model.cu` ([`super::model_kernels`]). Two events bracket the whole step and two more each
//! attention op, so a row reports the share of its time spent in attention.

use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;

use cudarc::driver::{result as drv, sys, CudaEvent, CudaFunction};

use crate::backend::Prepared;
use crate::error::{Error, Result};
use crate::model::program::{Buf, Op, Program, Weight};
use crate::model::weights::StepData;
use crate::problem::{AttnShape, Dtype, Problem, Scope};

use super::device::{cuda_major, driver_err, Device};
use super::gemm::{self, Cublas};
use super::kernels::Geometry;
use super::launch::{self, Args, DeviceBuffer, POISON_U16};
use super::model_kernels::{
    kernel_call, model_program, Arg, KernelCall, MODEL_KERNELS, MODEL_THREADS,
};
use super::{fits_memory, libs, CudaBackend};

/// cuBLAS workspace: NVIDIA's recommendation for Hopper (32 MiB), plenty on Ampere.
pub const CUBLAS_WORKSPACE_BYTES: usize = 32 << 20;
/// The f32 NaN written into `H` before the first step (unwritten values stay visible).
const POISON_F32: u32 = 0x7FC0_0000;

/// Every weight the program reads, with its element count, in first-use order.
pub fn weight_elems(program: &Program, p: &Problem) -> Vec<(Weight, usize)> {
    let d = p.d_model;
    let mut out: Vec<(Weight, usize)> = Vec::new();
    for op in &program.ops {
        let w = match *op {
            Op::Embed => match p.scope {
                Scope::Model(m) => Some((Weight::Embed, m.vocab * d)),
                _ => None,
            },
            Op::RmsNorm { gain } => Some((gain, d)),
            Op::Gemm { w, k, n, .. } => Some((w, k * n)),
            _ => None,
        };
        if let Some(w) = w.filter(|w| !out.iter().any(|o| o.0 == w.0)) {
            out.push(w);
        }
    }
    out
}

/// Bytes of one activation buffer: `H` in f32, token ids in i32, the rest in `dtype`.
pub fn buffer_bytes(program: &Program, buf: Buf, dtype: Dtype) -> usize {
    program.len(buf)
        * match buf {
            Buf::H | Buf::Tokens => 4,
            _ => dtype.bytes() as usize,
        }
}

/// What a layer- or model-scope problem allocates on the device, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeBytes {
    pub weights: u64,
    pub activations: u64,
    pub workspace: u64,
}

impl ScopeBytes {
    /// The bytes of `p` (`None` at kernel scope).
    pub fn of(p: &Problem) -> Option<Self> {
        let program = Program::of(p)?;
        let b = p.dtype.bytes();
        Some(ScopeBytes {
            weights: weight_elems(&program, p)
                .iter()
                .map(|w| w.1 as u64 * b)
                .sum(),
            activations: program.activation_bytes(b),
            workspace: CUBLAS_WORKSPACE_BYTES as u64,
        })
    }

    pub fn total(&self) -> u64 {
        self.weights + self.activations + self.workspace
    }
}

/// Refuses a layer or model problem this GPU cannot run, before anything is allocated:
/// a dtype without 16-bit storage, sizes past the kernels' `int`s, no cuBLAS, or bytes
/// (weights + activations + cuBLAS workspace, + the L2 flush buffer while it does not
/// exist) over the free device memory less headroom.
pub fn check(b: &CudaBackend, p: &Problem) -> Result<()> {
    gemm::data_type(p.dtype)?;
    let s = &p.shape;
    if !s.d_head.is_multiple_of(2) {
        return Err(Error::invalid(format!(
            "rotary embedding needs an even d_head, not {}",
            s.d_head
        )));
    }
    let bytes = ScopeBytes::of(p).ok_or_else(|| Error::invalid("kernel scope has no program"))?;
    // Token counts are the `int` rows of rmsnorm and the `int` m of every GEMM.
    if i32::try_from(s.batch * s.seq_len).is_err() {
        return Err(Error::invalid(format!(
            "{} tokens per step exceed the kernels' int",
            s.batch * s.seq_len
        )));
    }
    libs::load_cublas(Some(cuda_major(b.dev.driver_cuda_version)))?;
    let flush = if b.opts.l2_flush && b.flush.get().is_none() {
        b.flush_bytes() as u64
    } else {
        0
    };
    let (free, _) = b.dev.mem_info()?;
    fits_memory(bytes.total() + flush, free, || {
        format!(
            "{} scope of {} at N = {}, batch {} on {} (weights {} B, activations {} B)",
            p.scope.name(),
            p.variant,
            s.seq_len,
            s.batch,
            b.dev.name,
            bytes.weights,
            bytes.activations
        )
    })
}

/// One kernel argument with its device address, passed by address to `cuLaunchKernel`.
enum KArg {
    Ptr(sys::CUdeviceptr),
    I32(i32),
    I64(i64),
    F32(f32),
}

/// The attention launch of the problem's shape.
struct AttentionLaunch {
    func: CudaFunction,
    geometry: Geometry,
    grid: (u32, u32, u32),
    args: Args,
}

/// A layer or model problem on the GPU: buffers allocated, weights uploaded, events ready.
pub struct ScopePrepared<'a> {
    // Fields drop in order: the cuBLAS handle before its workspace and buffers.
    blas: Cublas,
    dev: &'a Device,
    program: Program,
    shape: AttnShape,
    d_model: usize,
    dtype: Dtype,
    kernels: HashMap<&'static str, CudaFunction>,
    attention: AttentionLaunch,
    bufs: BTreeMap<Buf, DeviceBuffer>,
    weights: HashMap<Weight, DeviceBuffer>,
    _workspace: DeviceBuffer,
    flush: Option<&'a DeviceBuffer>,
    flushes: u8,
    start: CudaEvent,
    end: CudaEvent,
    /// One (start, end) pair per attention op of the program.
    attn_events: Vec<(CudaEvent, CudaEvent)>,
    attn_s: Option<f64>,
    free_before: u64,
    peak_mem: u64,
    runs: u64,
}

impl<'a> ScopePrepared<'a> {
    /// Allocates and uploads everything for `p`, with the weights and input of
    /// `StepData::random(p, seed)` (the data every backend uses).
    pub fn new(b: &'a CudaBackend, p: &Problem, seed: u64) -> Result<Self> {
        let dev = &b.dev;
        let program =
            Program::of(p).ok_or_else(|| Error::invalid("kernel scope has no program"))?;
        let data = StepData::random(p, seed)
            .ok_or_else(|| Error::invalid("kernel scope has no step data"))?;
        let s = p.shape;
        // Compiling and loading modules first: their memory is the process's, not the row's.
        let module = b.load_program("model", &model_program())?;
        let mut kernels = HashMap::new();
        for k in MODEL_KERNELS {
            let entry = format!("{k}_{}", p.dtype.name());
            let f = module
                .load_function(&entry)
                .map_err(|e| driver_err(&format!("kernel {entry} in model.cu"), e))?;
            kernels.insert(k, f);
        }
        let fam = b.opts.kernel.resolve(p.dtype, s.d_head)?;
        let (func, geometry) = b.attention_function(fam, p.dtype, s.d_head)?;
        let attention = AttentionLaunch {
            func,
            geometry,
            grid: launch::grid(&s, &geometry)?,
            args: Args::for_shape(&s)?,
        };
        let flush = b.flush_buffer()?;
        let event = || {
            dev.ctx
                .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| driver_err("creating a timing event", e))
        };
        let attn_count = program.ops.iter().filter(|o| **o == Op::Attention).count();
        let attn_events = (0..attn_count)
            .map(|_| Ok((event()?, event()?)))
            .collect::<Result<Vec<_>>>()?;

        // Peak memory, measured: free device memory (cuMemGetInfo) now, after every
        // allocation of the row (buffers, weights, workspace, cuBLAS handle), and after
        // the first step (cuBLAS may load kernels lazily); the row reports the largest
        // drop. Other processes on the GPU would show in it: the benchmark assumes none.
        let (free_before, _) = dev.mem_info()?;
        let what = |t: String| format!("{t} of {} at N = {}", p.variant, s.seq_len);
        let mut bufs = BTreeMap::new();
        for buf in program.buffers() {
            let bytes = buffer_bytes(&program, buf, p.dtype);
            bufs.insert(
                buf,
                DeviceBuffer::alloc(dev, bytes, &what(format!("buffer {buf:?}")))?,
            );
        }
        let mut weights = HashMap::new();
        for (w, len) in weight_elems(&program, p) {
            let host = data.weight(w).filter(|x| x.len() == len).ok_or_else(|| {
                Error::invalid(format!("the step has no weight {w:?} of {len} elements"))
            })?;
            let bits = launch::to_bits(host, p.dtype)?;
            weights.insert(
                w,
                DeviceBuffer::upload(dev, &bits, &what(format!("weight {w:?}")))?,
            );
        }
        let workspace = DeviceBuffer::alloc(dev, CUBLAS_WORKSPACE_BYTES, "the cuBLAS workspace")?;
        // SAFETY: `check` loaded cuBLAS; the allocations above made the context current;
        // the stream is the device's and the workspace is a field of the value returned,
        // declared after the handle, so both outlive it.
        let blas = unsafe { Cublas::new(&dev.stream, workspace.ptr, workspace.bytes) }?;
        let mut me = ScopePrepared {
            blas,
            dev,
            program,
            shape: s,
            d_model: p.d_model,
            dtype: p.dtype,
            kernels,
            attention,
            bufs,
            weights,
            _workspace: workspace,
            flush,
            flushes: 0,
            start: event()?,
            end: event()?,
            attn_events,
            attn_s: None,
            free_before,
            peak_mem: 0,
            runs: 0,
        };
        me.poison_and_upload(&data)?;
        me.note_memory()?;
        Ok(me)
    }

    fn stream(&self) -> sys::CUstream {
        self.dev.stream.cu_stream()
    }

    fn buf(&self, b: Buf) -> sys::CUdeviceptr {
        self.bufs[&b].ptr
    }

    /// NaN in every activation (an op that leaves its output unwritten cannot pass the
    /// check), then the step's input: `X` (layer) or the token ids (model).
    fn poison_and_upload(&self, data: &StepData) -> Result<()> {
        for (b, d) in &self.bufs {
            // SAFETY: `d` is a live allocation of `d.bytes` bytes of this context; the
            // stream belongs to it.
            let r = unsafe {
                match b {
                    Buf::H => sys::cuMemsetD32Async(d.ptr, POISON_F32, d.bytes / 4, self.stream()),
                    Buf::Tokens => continue,
                    _ => sys::cuMemsetD16Async(d.ptr, POISON_U16, d.bytes / 2, self.stream()),
                }
            };
            r.result()
                .map_err(|e| driver_err("poisoning the activations", e))?;
        }
        self.dev
            .stream
            .synchronize()
            .map_err(|e| driver_err("poisoning the activations", e))?;
        match data {
            StepData::Layer { x, .. } => {
                let bits = launch::to_bits(x, self.dtype)?;
                // SAFETY: `X` holds B·N·d 16-bit values, the length of `x`; the stream is idle.
                unsafe { drv::memcpy_htod_sync(self.buf(Buf::X), &bits) }
            }
            StepData::Model { tokens, .. } => {
                // Token ids are below the vocabulary size, so u32 and i32 bits agree.
                // SAFETY: `Tokens` holds B·N i32 values, the length of `tokens`; the stream is idle.
                unsafe { drv::memcpy_htod_sync(self.buf(Buf::Tokens), tokens) }
            }
        }
        .map_err(|e| driver_err("uploading the step input", e))
    }

    /// Updates the peak with the current drop of free device memory.
    fn note_memory(&mut self) -> Result<()> {
        let (free, _) = self.dev.mem_info()?;
        self.peak_mem = self.peak_mem.max(self.free_before.saturating_sub(free));
        Ok(())
    }

    /// Enqueues a `model.cu` launch (blocks of [`MODEL_THREADS`]).
    fn launch(&self, call: &KernelCall) -> Result<()> {
        let mut args: Vec<KArg> = call
            .args
            .iter()
            .map(|a| match *a {
                Arg::Buf(b) => KArg::Ptr(self.buf(b)),
                Arg::Weight(w) => KArg::Ptr(self.weights[&w].ptr),
                Arg::I32(x) => KArg::I32(x),
                Arg::I64(x) => KArg::I64(x),
                Arg::F32(x) => KArg::F32(x),
            })
            .collect();
        let mut params: Vec<*mut c_void> = args
            .iter_mut()
            .map(|a| match a {
                KArg::Ptr(p) => p as *mut sys::CUdeviceptr as *mut c_void,
                KArg::I32(x) => x as *mut i32 as *mut c_void,
                KArg::I64(x) => x as *mut i64 as *mut c_void,
                KArg::F32(x) => x as *mut f32 as *mut c_void,
            })
            .collect();
        let f = &self.kernels[call.kernel];
        // SAFETY: `kernel_call` gives the arguments of the entry point's signature in
        // `model.cu`, in order and with its C types (tests/cuda_scope.rs checks them
        // against the source); they live until the call returns (the driver copies
        // them); the counts are `Program::len` of the buffers they index.
        unsafe {
            drv::launch_kernel(
                f.cu_function(),
                (call.grid, 1, 1),
                (MODEL_THREADS, 1, 1),
                0,
                self.stream(),
                &mut params,
            )
        }
        .map_err(|e| driver_err(&format!("launching {}", call.kernel), e))
    }

    /// Enqueues one op; `attn` counts the attention ops enqueued so far.
    fn enqueue(&self, op: &Op, attn: &mut usize) -> Result<()> {
        match *op {
            Op::Gemm {
                input,
                w,
                out,
                k,
                n,
            } => {
                // SAFETY: `input` holds t·k, `w` k·n and `out` t·n elements of the dtype
                // (`Program::len` and `weight_elems` agree with the op), distinct buffers.
                unsafe {
                    self.blas.gemm(
                        self.dtype,
                        self.program.tokens(),
                        k,
                        n,
                        self.buf(input),
                        self.weights[&w].ptr,
                        self.buf(out),
                    )
                }
            }
            Op::Attention => {
                let (start, end) = &self.attn_events[*attn];
                *attn += 1;
                let stream = &self.dev.stream;
                start
                    .record(stream)
                    .map_err(|e| driver_err("recording an attention event", e))?;
                let a = &self.attention;
                // SAFETY: Qh, Kh, Vh and O hold `[B, H, N, dh]` of the problem's shape
                // (`Program::len`), which gave the grid and the arguments.
                unsafe {
                    launch::launch_attention(
                        &a.func,
                        &a.geometry,
                        a.grid,
                        stream,
                        [Buf::Qh, Buf::Kh, Buf::Vh, Buf::O].map(|b| self.buf(b)),
                        a.args,
                    )
                }?;
                end.record(stream)
                    .map_err(|e| driver_err("recording an attention event", e))
            }
            _ => {
                let call = kernel_call(op, &self.program, &self.shape, self.d_model)
                    .ok_or_else(|| Error::invalid(format!("no model.cu kernel for {op:?}")))?;
                self.launch(&call)
            }
        }
    }
}

impl Prepared for ScopePrepared<'_> {
    fn run(&mut self) -> Result<f64> {
        launch::flush_l2(self.flush, &mut self.flushes, self.dev)?;
        let stream = &self.dev.stream;
        self.start
            .record(stream)
            .map_err(|e| driver_err("recording the start event", e))?;
        let mut attn = 0;
        for op in &self.program.ops {
            self.enqueue(op, &mut attn)?;
        }
        self.end
            .record(stream)
            .map_err(|e| driver_err("recording the end event", e))?;
        let failed = |e| Error::Backend {
            backend: "cuda",
            msg: format!(
                "the {}-op step failed: {}",
                self.program.ops.len(),
                super::device::describe(e)
            ),
        };
        let ms = self.start.elapsed_ms(&self.end).map_err(failed)?;
        let mut attn_ms = 0.0f64;
        for (s, e) in &self.attn_events {
            attn_ms += s.elapsed_ms(e).map_err(failed)? as f64;
        }
        self.attn_s = Some(attn_ms / 1e3);
        if self.runs == 0 {
            self.note_memory()?;
        }
        self.runs += 1;
        Ok(ms as f64 / 1e3)
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        let what = if self.program.output == Buf::Logits {
            "the model step"
        } else {
            "the layer step"
        };
        launch::download_checked(self.dev, &self.bufs[&self.program.output], self.dtype, what)
    }

    fn attention_seconds(&self) -> Option<f64> {
        self.attn_s
    }

    fn peak_mem_bytes(&self) -> Option<u64> {
        Some(self.peak_mem)
    }
}
