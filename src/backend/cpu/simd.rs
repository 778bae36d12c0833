//! The few vector operations the tile kernel needs, for each instruction set it is
//! compiled for: AVX-512 (16 lanes), AVX2+FMA (8 lanes) and a scalar fallback.
//!
//! Explicit intrinsics rather than auto-vectorisation: left alone, the compiler
//! vectorises the register-blocked loops along the wrong axis (with gathers). Every
//! operation is `unsafe` because it may only run on a CPU that has the instructions;
//! the kernel entry points check that once (see `Isa` in `mod.rs`).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// A vector of `LANES` f32.
pub trait Simd {
    const LANES: usize;
    /// Whether the instruction set has a fused multiply-add.
    const FMA: bool;
    type V: Copy;

    /// # Safety
    /// The CPU has this instruction set.
    unsafe fn zero() -> Self::V;
    /// # Safety
    /// The CPU has this instruction set.
    unsafe fn splat(x: f32) -> Self::V;
    /// `a · b + c`.
    ///
    /// # Safety
    /// The CPU has this instruction set.
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// # Safety
    /// The CPU has this instruction set; `p` is valid for `LANES` reads.
    unsafe fn load(p: *const f32) -> Self::V;
    /// # Safety
    /// The CPU has this instruction set; `p` is valid for `LANES` writes.
    unsafe fn store(p: *mut f32, v: Self::V);
}

/// AVX-512F: 16 lanes, fused multiply-add.
#[cfg(target_arch = "x86_64")]
pub struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const LANES: usize = 16;
    const FMA: bool = true;
    type V = __m512;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable f32 at p.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees 16 writable f32 at p.
        unsafe { _mm512_storeu_ps(p, v) }
    }
}

/// AVX2 with FMA: 8 lanes.
#[cfg(target_arch = "x86_64")]
pub struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const LANES: usize = 8;
    const FMA: bool = true;
    type V = __m256;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable f32 at p.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees 8 writable f32 at p.
        unsafe { _mm256_storeu_ps(p, v) }
    }
}

/// Any CPU: one lane, separate multiply and add (a fused multiply-add without
/// hardware support would be a slow library call).
pub struct Scalar;

impl Simd for Scalar {
    const LANES: usize = 1;
    const FMA: bool = false;
    type V = f32;

    #[inline(always)]
    unsafe fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        // SAFETY: the caller guarantees one readable f32 at p.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        // SAFETY: the caller guarantees one writable f32 at p.
        unsafe { *p = v }
    }
}
