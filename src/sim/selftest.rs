//! Safe wrappers over the simulator self-test kernels (`cuda/sim/tests/selftest.cu`),
//! used by `tests/sim_selftest.rs` to check the simulator and the primitives of
//! `cuda/common.cuh` (shuffles, mma, ldmatrix, cp.async, conversions).

use std::ffi::{c_char, c_int};

use super::{check, dtype_code, ERR_LEN};
use crate::error::{Error, Result};
use crate::problem::Dtype;

extern "C" {
    fn sqa_sim_test_shfl(out: *mut f32, threads_mode: c_int, err: *mut c_char, len: c_int)
        -> c_int;
    fn sqa_sim_test_diverge(
        how: c_int,
        out: *mut f32,
        threads_mode: c_int,
        err: *mut c_char,
        len: c_int,
    ) -> c_int;
    fn sqa_sim_test_deadlock(
        out: *mut f32,
        threads_mode: c_int,
        err: *mut c_char,
        len: c_int,
    ) -> c_int;
    fn sqa_sim_test_mma(
        dtype: c_int,
        mode: c_int,
        a: *const u16,
        b: *const u16,
        c: *const f32,
        d: *mut f32,
        err: *mut c_char,
        len: c_int,
    ) -> c_int;
    fn sqa_sim_test_cp_async(
        src: *const f32,
        before: *mut f32,
        mid0: *mut f32,
        mid1: *mut f32,
        after: *mut f32,
        err: *mut c_char,
        len: c_int,
    ) -> c_int;
    fn sqa_sim_test_dynamic_smem(
        src: *const f32,
        before: *mut f32,
        after: *mut f32,
        err: *mut c_char,
        len: c_int,
    ) -> c_int;
    fn sqa_sim_test_pack(
        pairs: c_int,
        input: *const f32,
        packed_bf16: *mut u32,
        packed_f16: *mut u32,
        scalar_bf16: *mut u16,
        scalar_f16: *mut u16,
        err: *mut c_char,
        len: c_int,
    ) -> c_int;
}

/// Threads in the shuffle, divergence and deadlock test blocks (two warps).
pub const BLOCK: usize = 64;

/// Runs one of the 64-thread test kernels with a `[f32; 64·per_thread]` output.
fn run64(
    per_thread: usize,
    threads: bool,
    f: unsafe extern "C" fn(*mut f32, c_int, *mut c_char, c_int) -> c_int,
) -> Result<Vec<f32>> {
    let mut out = vec![0f32; BLOCK * per_thread];
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `out` holds the BLOCK·per_thread floats the kernel writes at most, `err`
    // ERR_LEN bytes; neither is kept after the call.
    let rc = unsafe {
        f(
            out.as_mut_ptr(),
            threads as c_int,
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(out)
}

/// `sim_test_shfl`: out[6·tid + i] = warp_shfl_xor(tid, 1 << i) for i < 5, and
/// out[6·tid + 5] = the butterfly sum of tid over the warp.
pub fn shfl(threads: bool) -> Result<Vec<f32>> {
    run64(6, threads, sqa_sim_test_shfl)
}

/// What the other half of each warp does in `sim_test_diverge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divergence {
    /// Skips the shuffle and exits.
    Exits = 0,
    /// Waits at a barrier.
    Barrier = 1,
    /// Runs a different warp collective (an mma).
    OtherCollective = 2,
}

/// `sim_test_diverge`: half of each warp runs a shuffle, the other half does `how`
/// (must fail).
pub fn diverge(how: Divergence, threads: bool) -> Result<Vec<f32>> {
    let mut out = vec![0f32; BLOCK];
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `out` holds the BLOCK floats the kernel writes at most, `err` ERR_LEN
    // bytes; neither is kept after the call.
    let rc = unsafe {
        sqa_sim_test_diverge(
            how as c_int,
            out.as_mut_ptr(),
            threads as c_int,
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(out)
}

/// `sim_test_deadlock`: only the first warp reaches a barrier (must fail).
pub fn deadlock(threads: bool) -> Result<Vec<f32>> {
    run64(1, threads, sqa_sim_test_deadlock)
}

/// How `sim_test_mma` builds its operand fragments (see selftest.cu).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragments {
    /// By hand from global memory, per the documented PTX layouts.
    ByHand = 0,
    /// ldmatrix_x4 (A) and ldmatrix_x4_trans (B).
    X4Trans = 1,
    /// ldmatrix_x4 (A) and ldmatrix_x2 from B transposed.
    X2 = 2,
    /// ldmatrix_x4_trans from A transposed and ldmatrix_x2_trans (B).
    X2Trans = 3,
}

/// `sim_test_mma`: D = A·B + C for row-major 16×16 A, B (values rounded to `dtype`)
/// and C, through two mma.m16n8k16 of one warp.
pub fn mma(dtype: Dtype, how: Fragments, a: &[f32], b: &[f32], c: &[f32]) -> Result<Vec<f32>> {
    if a.len() != 256 || b.len() != 256 || c.len() != 256 {
        return Err(Error::invalid("mma self-test: A, B and C are 16x16"));
    }
    let code = dtype_code(dtype)?;
    let (ab, bb) = (super::to_bits(dtype, a), super::to_bits(dtype, b));
    let mut d = vec![0f32; 256];
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: a, b, c and d all hold the 256 elements the kernel reads or writes;
    // `err` holds ERR_LEN bytes; nothing is kept after the call.
    let rc = unsafe {
        sqa_sim_test_mma(
            code,
            how as c_int,
            ab.as_ptr(),
            bb.as_ptr(),
            c.as_ptr(),
            d.as_mut_ptr(),
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(d)
}

/// What `sim_test_cp_async` saw in shared memory (64 floats each).
#[derive(Debug, Clone)]
pub struct CpAsync {
    /// Buffer 0 right after the copies were issued.
    pub before: Vec<f32>,
    /// Buffers 0 and 1 after `cp_async_wait<1>`.
    pub mid0: Vec<f32>,
    pub mid1: Vec<f32>,
    /// Buffer 1 after `cp_async_wait<0>`.
    pub after: Vec<f32>,
}

/// 16-byte aligned storage for the cp.async source.
#[repr(C, align(16))]
struct Aligned([f32; 64]);

/// `sim_test_cp_async` on 64 source floats.
pub fn cp_async(src: &[f32; 64]) -> Result<CpAsync> {
    let src = Aligned(*src);
    let mut bufs = vec![vec![0f32; 64]; 4];
    let mut err = [0 as c_char; ERR_LEN];
    let [before, mid0, mid1, after] = &mut bufs[..] else {
        unreachable!("four buffers")
    };
    // SAFETY: the source is 64 floats aligned to 16 bytes, each output 64 floats, as
    // the kernel expects; nothing is kept after the call.
    let rc = unsafe {
        sqa_sim_test_cp_async(
            src.0.as_ptr(),
            before.as_mut_ptr(),
            mid0.as_mut_ptr(),
            mid1.as_mut_ptr(),
            after.as_mut_ptr(),
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    let after = bufs.pop().unwrap_or_default();
    let mid1 = bufs.pop().unwrap_or_default();
    let mid0 = bufs.pop().unwrap_or_default();
    let before = bufs.pop().unwrap_or_default();
    Ok(CpAsync {
        before,
        mid0,
        mid1,
        after,
    })
}

/// `sim_test_dynamic_smem` on 64 source floats: (before, after), 128 floats each
/// (two blocks): the dynamic shared memory before any write, and after a cp.async by
/// each thread and a barrier, read rotated by one thread.
pub fn dynamic_smem(src: &[f32; 64]) -> Result<(Vec<f32>, Vec<f32>)> {
    let src = Aligned(*src);
    let (mut before, mut after) = (vec![0f32; 128], vec![0f32; 128]);
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: the source is 64 floats aligned to 16 bytes, the outputs 128 floats each,
    // as the two-block kernel expects; nothing is kept after the call.
    let rc = unsafe {
        sqa_sim_test_dynamic_smem(
            src.0.as_ptr(),
            before.as_mut_ptr(),
            after.as_mut_ptr(),
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok((before, after))
}

/// What `sim_test_pack` produced for each pair (x[2i], x[2i+1]).
#[derive(Debug, Clone)]
pub struct Packed {
    pub bf16x2: Vec<u32>,
    pub f16x2: Vec<u32>,
    /// from_float of x[2i].
    pub bf16: Vec<u16>,
    pub f16: Vec<u16>,
}

/// `sim_test_pack` on an even number (2..=2048) of floats.
pub fn pack(x: &[f32]) -> Result<Packed> {
    let pairs = x.len() / 2;
    if !x.len().is_multiple_of(2) || pairs == 0 || pairs > 1024 {
        return Err(Error::invalid("pack self-test: 2..=2048 floats, even"));
    }
    let mut p = Packed {
        bf16x2: vec![0; pairs],
        f16x2: vec![0; pairs],
        bf16: vec![0; pairs],
        f16: vec![0; pairs],
    };
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `x` holds 2·pairs floats and each output `pairs` values, as the kernel
    // (one thread per pair) expects; nothing is kept after the call.
    let rc = unsafe {
        sqa_sim_test_pack(
            pairs as c_int,
            x.as_ptr(),
            p.bf16x2.as_mut_ptr(),
            p.f16x2.as_mut_ptr(),
            p.bf16.as_mut_ptr(),
            p.f16.as_mut_ptr(),
            err.as_mut_ptr(),
            ERR_LEN as c_int,
        )
    };
    check(rc, &err)?;
    Ok(p)
}
