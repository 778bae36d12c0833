//! The host SIMT simulator: the CUDA kernels of `cuda/`, compiled for the CPU by
//! `build.rs` and run by the simulator of `cuda/sim/`, so that `cargo test` checks
//! the very kernel sources NVRTC compiles, on a machine without a GPU.
//!
//! Shared memory starts every block as NaN, and divergent warp collectives, barrier
//! deadlocks and misaligned shared-memory addresses end a launch with an error, so a
//! kernel bug shows up as a failed comparison or an [`Error::Backend`] here. Launches
//! are serialised inside the simulator.

use std::ffi::{c_char, c_int, CStr, CString};

use crate::error::{Error, Result};
use crate::problem::{AttnShape, Dtype, Pattern};

const BACKEND: &str = "simulator";
const ERR_LEN: usize = 512;

extern "C" {
    fn sqa_sim_attention_mode(
        family: *const c_char,
        dtype: c_int,
        d: c_int,
        q: *const u16,
        k: *const u16,
        v: *const u16,
        o: *mut u16,
        batch: c_int,
        seq_len: c_int,
        heads_q: c_int,
        heads_kv: c_int,
        causal: c_int,
        window: c_int,
        scale_log2: f32,
        threads_mode: c_int,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
}

/// How the simulator runs the threads of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fibers, or OS threads when the environment variable `SQA_SIM_THREADS=1`.
    FromEnv,
    /// Cooperative fibers on one OS thread (fast).
    Fibers,
    /// One OS thread per simulated thread (slow; for ThreadSanitizer).
    Threads,
}

/// Runs the attention kernel `family` (`simple`, `simple-mutant-barrier`, ...) for
/// `dtype` (bf16 or f16) on the simulator. Inputs are f32 values in the layout of
/// [`crate::problem`]; they are rounded to `dtype`, and the output (`[B, H_eff, N, d]`)
/// comes back as f32 values of `dtype`.
pub fn attention(
    family: &str,
    dtype: Dtype,
    shape: &AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> Result<Vec<f32>> {
    attention_in(Mode::FromEnv, family, dtype, shape, q, k, v)
}

/// [`attention`] in a given simulator [`Mode`].
pub fn attention_in(
    mode: Mode,
    family: &str,
    dtype: Dtype,
    shape: &AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
) -> Result<Vec<f32>> {
    shape.validate()?;
    if q.len() != shape.q_len() || k.len() != shape.kv_len() || v.len() != shape.kv_len() {
        return Err(Error::invalid(format!(
            "simulator: input lengths q {}, k {}, v {} do not match the shape (q {}, k/v {})",
            q.len(),
            k.len(),
            v.len(),
            shape.q_len(),
            shape.kv_len()
        )));
    }
    let code = dtype_code(dtype)?;
    let int = |what: &str, x: usize| {
        c_int::try_from(x).map_err(|_| Error::invalid(format!("simulator: {what} {x} too large")))
    };
    let (causal, window) = match shape.pattern {
        Pattern::Full => (0, 0),
        Pattern::Causal => (1, 0),
        Pattern::Window(w) => (1, int("window", w as usize)?),
    };
    let family_c = CString::new(family)
        .map_err(|_| Error::invalid(format!("simulator: bad kernel family name {family:?}")))?;
    let (qb, kb, vb) = (to_bits(dtype, q), to_bits(dtype, k), to_bits(dtype, v));
    let mut ob = vec![0u16; shape.o_len()];
    let scale_log2 = (std::f64::consts::LOG2_E / (shape.d_head as f64).sqrt()) as f32;
    let mut err = [0 as c_char; ERR_LEN];
    let threads_mode = match mode {
        Mode::FromEnv => -1,
        Mode::Fibers => 0,
        Mode::Threads => 1,
    };
    // SAFETY: every pointer comes from a live slice or array of the length the C ABI
    // expects for this shape (q: B·H_q·N·d, k/v: B·H_kv·N·d, o: B·H_eff·N·d, err:
    // ERR_LEN); the call does not keep any of them.
    let rc = unsafe {
        sqa_sim_attention_mode(
            family_c.as_ptr(),
            code,
            int("d_head", shape.d_head)?,
            qb.as_ptr(),
            kb.as_ptr(),
            vb.as_ptr(),
            ob.as_mut_ptr(),
            int("batch", shape.batch)?,
            int("seq_len", shape.seq_len)?,
            int("heads_q", shape.heads.q as usize)?,
            int("heads_kv", shape.heads.kv as usize)?,
            causal,
            window,
            scale_log2,
            threads_mode,
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(from_bits(dtype, &ob))
}

/// The simulator's dtype code: 0 bf16, 1 f16.
fn dtype_code(dtype: Dtype) -> Result<c_int> {
    match dtype {
        Dtype::Bf16 => Ok(0),
        Dtype::F16 => Ok(1),
        Dtype::F32 => Err(Error::invalid(
            "simulator: kernels take bf16 or f16 storage, not f32",
        )),
    }
}

/// f32 values to the raw bits of `dtype` (round to nearest even; f32 is rounded as f16,
/// callers check the dtype first with `dtype_code`).
pub fn to_bits(dtype: Dtype, x: &[f32]) -> Vec<u16> {
    dtype
        .to_bits16(x)
        .unwrap_or_else(|| Dtype::F16.to_bits16(x).expect("f16 has 16-bit words"))
}

/// Raw bits of `dtype` to f32 values (exact).
pub fn from_bits(dtype: Dtype, x: &[u16]) -> Vec<f32> {
    dtype.from_bits16(x)
}

/// Turns a C ABI return code and its message buffer into a `Result`.
fn check(rc: c_int, err: &[c_char]) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: the buffer is zero-initialised and the C side always NUL-terminates
    // what it writes within `err.len()` bytes, so a NUL lies inside the buffer.
    let msg = unsafe { CStr::from_ptr(err.as_ptr()) };
    Err(Error::Backend {
        backend: BACKEND,
        msg: msg.to_string_lossy().into_owned(),
    })
}

pub mod model;
pub mod selftest;
