//! The GEMMs of the layer and model scopes through cuBLAS (`cublasGemmEx`: bf16 or f16
//! operands and output, f32 accumulation).
//!
//! The program's GEMMs are row-major, `out[m, n] = in[m, k] · w[k, n]`; cuBLAS is
//! column-major. A row-major `[r, c]` matrix is the column-major `[c, r]` matrix of its
//! transpose, so the product is computed as `outᵀ = wᵀ · inᵀ` with no transposition
//! flag: [`ColMajorGemm::for_row_major`] holds that mapping (tested on the CPU against
//! `model::cpu::matmul`), [`Cublas::gemm`] only passes it on.

use std::ffi::c_void;

use cudarc::cublas::result as blas;
use cudarc::cublas::sys as bsys;
use cudarc::driver::{sys, CudaStream};

use crate::error::{Error, Result};
use crate::problem::Dtype;

/// Which row-major operand of the program goes into a cuBLAS slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// The weight `w[k, n]`.
    Weight,
    /// The activation `in[m, k]`.
    Input,
}

/// The arguments of one column-major `C = op(A) · op(B)` call (`C: m × n`, inner `k`),
/// both `op`s the identity (`CUBLAS_OP_N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColMajorGemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Operand,
    pub lda: usize,
    pub b: Operand,
    pub ldb: usize,
    /// C is always the program's output `out[m, n]`.
    pub ldc: usize,
}

impl ColMajorGemm {
    /// The call computing row-major `out[m, n] = in[m, k] · w[k, n]`: column-major
    /// `(m', n', k') = (n, m, k)`, `A = w` (ld n), `B = in` (ld k), `C = out` (ld n).
    pub fn for_row_major(m: usize, k: usize, n: usize) -> Self {
        ColMajorGemm {
            m: n,
            n: m,
            k,
            a: Operand::Weight,
            lda: n,
            b: Operand::Input,
            ldb: k,
            ldc: n,
        }
    }
}

/// cuBLAS' name of a 16-bit storage type.
pub fn data_type(dtype: Dtype) -> Result<bsys::cudaDataType> {
    match dtype {
        Dtype::Bf16 => Ok(bsys::cudaDataType::CUDA_R_16BF),
        Dtype::F16 => Ok(bsys::cudaDataType::CUDA_R_16F),
        Dtype::F32 => Err(Error::BackendUnavailable(
            "the CUDA layer and model scopes store bf16 or f16, not f32".into(),
        )),
    }
}

/// `CUBLAS_STATUS_... ` as a backend error.
fn blas_err(what: &str, e: blas::CublasError) -> Error {
    Error::Backend {
        backend: "cuda",
        msg: format!("cuBLAS {what}: {:?}", e.0),
    }
}

/// A cuBLAS handle bound to one stream, with a workspace the caller owns (so that its
/// memory is allocated, counted and checked like every other buffer).
pub struct Cublas {
    handle: bsys::cublasHandle_t,
}

impl Cublas {
    /// Creates the handle in the current context, on `stream`, with `workspace`.
    ///
    /// # Safety
    /// cuBLAS is loaded (`libs::load_cublas`); `stream`'s context is current; `workspace`
    /// is a device allocation of `bytes` bytes in it; both outlive the handle.
    pub unsafe fn new(
        stream: &CudaStream,
        workspace: sys::CUdeviceptr,
        bytes: usize,
    ) -> Result<Self> {
        let handle = blas::create_handle().map_err(|e| blas_err("handle creation", e))?;
        let me = Cublas { handle };
        // SAFETY: the handle is live; the stream belongs to the current context and
        // outlives the handle (caller's contract). cudarc binds the driver's and the
        // runtime's stream types separately; both are the same opaque `CUstream_st*`.
        unsafe { blas::set_stream(me.handle, stream.cu_stream() as bsys::cudaStream_t) }
            .map_err(|e| blas_err("set stream", e))?;
        // SAFETY: `workspace` is a live device allocation of `bytes` bytes (cuMemAlloc
        // aligns to 256 bytes, as cuBLAS requires) that outlives the handle.
        unsafe { bsys::cublasSetWorkspace_v2(me.handle, workspace as *mut c_void, bytes) }
            .result()
            .map_err(|e| blas_err("set workspace", e))?;
        Ok(me)
    }

    /// Enqueues row-major `out[m, n] = input[m, k] · w[k, n]` (all three stored as
    /// `dtype`, accumulated in f32) on the handle's stream.
    ///
    /// # Safety
    /// `input`, `w` and `out` are live device allocations of at least `m·k`, `k·n` and
    /// `m·n` elements of `dtype`, and `out` overlaps neither input.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm(
        &self,
        dtype: Dtype,
        m: usize,
        k: usize,
        n: usize,
        input: sys::CUdeviceptr,
        w: sys::CUdeviceptr,
        out: sys::CUdeviceptr,
    ) -> Result<()> {
        let t = data_type(dtype)?;
        let g = ColMajorGemm::for_row_major(m, k, n);
        let ptr = |o: Operand| match o {
            Operand::Weight => w as *const c_void,
            Operand::Input => input as *const c_void,
        };
        let int = |x: usize| {
            i32::try_from(x)
                .map_err(|_| Error::invalid(format!("GEMM dimension {x} exceeds cuBLAS' int")))
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: pointer sizes are the caller's contract; the dimensions and leading
        // dimensions come from `for_row_major` (lda ≥ m', ldb ≥ k', ldc ≥ m'); alpha and
        // beta are f32 host values, as CUBLAS_COMPUTE_32F with the default host pointer
        // mode requires.
        unsafe {
            blas::gemm_ex(
                self.handle,
                bsys::cublasOperation_t::CUBLAS_OP_N,
                bsys::cublasOperation_t::CUBLAS_OP_N,
                int(g.m)?,
                int(g.n)?,
                int(g.k)?,
                &alpha as *const f32 as *const c_void,
                ptr(g.a),
                t,
                int(g.lda)?,
                ptr(g.b),
                t,
                int(g.ldb)?,
                &beta as *const f32 as *const c_void,
                out as *mut c_void,
                t,
                int(g.ldc)?,
                bsys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                bsys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| blas_err(&format!("GEMM [{m}, {k}] x [{k}, {n}]"), e))
    }
}

impl Drop for Cublas {
    fn drop(&mut self) {
        // SAFETY: the handle is live and destroyed once; errors cannot be reported here.
        let _ = unsafe { blas::destroy_handle(self.handle) };
    }
}
