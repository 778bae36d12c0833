// common.cuh: every device primitive the attention kernels use, in one header.
//
// Two builds of the same source:
//   * device (NVRTC): inline PTX, no CUDA header at all (NVRTC may not find them
//     at run time), so the 16-bit storage types and their conversions live here;
//   * host simulator (`SQA_SIM` defined, `cuda/sim/sim.h` force-included): each
//     primitive is emulated on the CPU. Warp-wide instructions (shuffle, mma,
//     ldmatrix) go through `sim_warp_collective`: every lane posts its operand and the
//     last lane to arrive computes the whole warp operation once, with the register
//     fragment layouts of the PTX ISA.
//
// Primitives:
//   block_sync()                      bar.sync 0 (__syncthreads)
//   warp_shfl_xor(v, lane_mask)       shfl.sync.bfly.b32, full warp
//   fast_exp2(x)                      ex2.approx.ftz.f32 (host: exp2f)
//   mma_m16n8k16_bf16/f16(d, a, b, c) mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}
//   ldmatrix_x{2,4}[_trans](r, smem)  ldmatrix.sync.aligned.m8n8.x{2,4}[.trans].shared.b16
//   cp_async_16(smem, gmem, full)     cp.async.cg.shared.global, 16 bytes, zero-fill if !full
//   cp_async_commit(), cp_async_wait<N>()
//   pack_bf16x2/pack_f16x2(lo, hi)    two f32 -> one .b32 of two 16-bit values, lo in bits 0..15
//   to_float(x), from_float<T>(f)     scalar storage conversions (round to nearest even)
//   SQA_DYNAMIC_SMEM(type, name)      declares the dynamic shared memory array `name`
//   SQA_NEG_INF                       -infinity as a float
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point
// type"), with g = lane / 4 and t = lane % 4, each .b32 register holding two 16-bit
// values, the lower column/row index in the low half:
//   A (16x16, row-major): a[0] = A[g][2t..2t+1],   a[1] = A[g+8][2t..2t+1],
//                         a[2] = A[g][2t+8..2t+9], a[3] = A[g+8][2t+8..2t+9]
//   B (16x8, "col"):      b[0] = B[2t..2t+1][g],   b[1] = B[2t+8..2t+9][g]
//   C, D (16x8, f32):     c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]
// ldmatrix (PTX ISA, "Warp-level matrix load instruction: ldmatrix"): lanes 8i..8i+7
// give the addresses of the 8 rows (16 bytes each) of matrix i; register r[i] of lane l
// holds row l/4, elements 2(l%4) and 2(l%4)+1 of matrix i; with .trans it holds
// elements (2(l%4), l/4) and (2(l%4)+1, l/4), i.e. the same of the transposed matrix.
#pragma once

#ifdef SQA_SIM
#include <cstdint>
#else
typedef unsigned int uint32_t;
typedef unsigned short uint16_t;
#endif

// 16-bit storage types: raw bits, no arithmetic (kernels compute in f32).
struct bf16_t {
    uint16_t bits;
};
struct f16_t {
    uint16_t bits;
};

template <class T>
__device__ __forceinline__ T from_float(float x);

#ifndef SQA_SIM
// ----------------------------------------------------------------------------------
// Device: inline PTX.
// ----------------------------------------------------------------------------------

#define SQA_NEG_INF (__int_as_float(0xff800000))
#define SQA_DYNAMIC_SMEM(type, name) extern __shared__ __align__(16) type name[]

__device__ __forceinline__ void block_sync() { __syncthreads(); }

__device__ __forceinline__ float warp_shfl_xor(float v, int lane_mask) {
    float r;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(lane_mask));
    return r;
}

__device__ __forceinline__ float fast_exp2(float x) {
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ float to_float(bf16_t x) { return __uint_as_float(((unsigned)x.bits) << 16); }

__device__ __forceinline__ float to_float(f16_t x) {
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(x.bits));
    return r;
}

template <>
__device__ __forceinline__ bf16_t from_float<bf16_t>(float x) {
    bf16_t r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
    return r;
}

template <>
__device__ __forceinline__ f16_t from_float<f16_t>(float x) {
    f16_t r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
    return r;
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    uint32_t r;
    // cvt.rn.bf16x2.f32 d, a, b puts a in the upper half and b in the lower half.
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ uint32_t pack_f16x2(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
}

__device__ __forceinline__ void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                 const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
}

// A generic pointer to shared memory as the 32-bit .shared address PTX wants.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    uint32_t r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
    return r;
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(smem)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(smem)));
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_addr(smem)));
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void* smem) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_addr(smem)));
}

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool full) {
    // src-size 0 reads nothing from gmem and fills the 16 bytes with zeros.
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(smem)), "l"(gmem),
                 "r"(full ? 16 : 0)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

#else
// ----------------------------------------------------------------------------------
// Host simulator: emulation on the CPU (sim.h provides sim_warp_collective and the
// sqa_sim runtime hooks).
// ----------------------------------------------------------------------------------

#define SQA_NEG_INF (-__builtin_inff())
#define SQA_DYNAMIC_SMEM(type, name) type* const name = static_cast<type*>(::sqa_sim::dynamic_smem())

inline void block_sync() { ::sqa_sim::block_sync(); }

inline float warp_shfl_xor(float v, int lane_mask) {
    struct In {
        float v;
        int mask;
    };
    return sim_warp_collective<In, float>(In{v, lane_mask}, [](const In* in, float* out) {
        for (int l = 0; l < 32; ++l) {
            // Lanes that do not exist (a partial last warp) read as NaN.
            int src = l ^ (in[l].mask & 31);
            out[l] = in[src].v;
        }
    });
}

inline float fast_exp2(float x) { return exp2f(x); }

inline float to_float(bf16_t x) { return ::sqa_sim::bf16_to_float(x.bits); }
inline float to_float(f16_t x) { return ::sqa_sim::f16_to_float(x.bits); }

template <>
inline bf16_t from_float<bf16_t>(float x) {
    return bf16_t{::sqa_sim::float_to_bf16(x)};
}
template <>
inline f16_t from_float<f16_t>(float x) {
    return f16_t{::sqa_sim::float_to_f16(x)};
}

inline uint32_t pack_bf16x2(float lo, float hi) {
    return (uint32_t)::sqa_sim::float_to_bf16(lo) | ((uint32_t)::sqa_sim::float_to_bf16(hi) << 16);
}
inline uint32_t pack_f16x2(float lo, float hi) {
    return (uint32_t)::sqa_sim::float_to_f16(lo) | ((uint32_t)::sqa_sim::float_to_f16(hi) << 16);
}

namespace sqa_sim {
struct MmaIn {
    uint32_t a[4];
    uint32_t b[2];
    float c[4];
};
struct MmaOut {
    float d[4];
};

// One m16n8k16 product for the whole warp, from and to the PTX fragment layouts.
// bf16/f16 products are exact in f32; the sum runs in f32 in k order starting from C.
template <bool BF16>
inline void mma_m16n8k16_warp(const MmaIn* in, MmaOut* out) {
    auto lo = [](uint32_t r) { return BF16 ? bf16_to_float(r & 0xffff) : f16_to_float(r & 0xffff); };
    auto hi = [](uint32_t r) { return BF16 ? bf16_to_float(r >> 16) : f16_to_float(r >> 16); };
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
        const int g = l / 4, t = l % 4;
        const MmaIn& f = in[l];
        A[g][2 * t] = lo(f.a[0]), A[g][2 * t + 1] = hi(f.a[0]);
        A[g + 8][2 * t] = lo(f.a[1]), A[g + 8][2 * t + 1] = hi(f.a[1]);
        A[g][2 * t + 8] = lo(f.a[2]), A[g][2 * t + 9] = hi(f.a[2]);
        A[g + 8][2 * t + 8] = lo(f.a[3]), A[g + 8][2 * t + 9] = hi(f.a[3]);
        B[2 * t][g] = lo(f.b[0]), B[2 * t + 1][g] = hi(f.b[0]);
        B[2 * t + 8][g] = lo(f.b[1]), B[2 * t + 9][g] = hi(f.b[1]);
        C[g][2 * t] = f.c[0], C[g][2 * t + 1] = f.c[1];
        C[g + 8][2 * t] = f.c[2], C[g + 8][2 * t + 1] = f.c[3];
    }
    float D[16][8];
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) {
            float acc = C[i][j];
            for (int k = 0; k < 16; ++k) acc += A[i][k] * B[k][j];
            D[i][j] = acc;
        }
    for (int l = 0; l < 32; ++l) {
        const int g = l / 4, t = l % 4;
        out[l].d[0] = D[g][2 * t], out[l].d[1] = D[g][2 * t + 1];
        out[l].d[2] = D[g + 8][2 * t], out[l].d[3] = D[g + 8][2 * t + 1];
    }
}

// ldmatrix of `M` 8x8 matrices of 16-bit values (lanes 8i..8i+7 address matrix i).
template <int M, bool TRANS>
inline void ldmatrix_warp(const void* const* addr, uint32_t (*out)[M]) {
    for (int i = 0; i < M; ++i) {
        uint16_t m[8][8];
        for (int row = 0; row < 8; ++row) {
            const void* p = addr[8 * i + row];
            check_shared(p, 16, 16, "ldmatrix row address");
            __builtin_memcpy(m[row], p, 16);
        }
        for (int l = 0; l < 32; ++l) {
            const int r = l / 4, c = 2 * (l % 4);
            const uint32_t e0 = TRANS ? m[c][r] : m[r][c];
            const uint32_t e1 = TRANS ? m[c + 1][r] : m[r][c + 1];
            out[l][i] = e0 | (e1 << 16);
        }
    }
}

template <int M, bool TRANS>
inline void ldmatrix(uint32_t* r, const void* smem) {
    struct Out {
        uint32_t r[M];
    };
    Out o = sim_warp_collective<const void*, Out>(smem, [](const void* const* in, Out* out) {
        ldmatrix_warp<M, TRANS>(in, reinterpret_cast<uint32_t(*)[M]>(out));
    });
    for (int i = 0; i < M; ++i) r[i] = o.r[i];
}
}  // namespace sqa_sim

inline void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    sqa_sim::MmaIn in{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}};
    sqa_sim::MmaOut o = sim_warp_collective<sqa_sim::MmaIn, sqa_sim::MmaOut>(in, sqa_sim::mma_m16n8k16_warp<true>);
    for (int i = 0; i < 4; ++i) d[i] = o.d[i];
}

inline void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    sqa_sim::MmaIn in{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}};
    sqa_sim::MmaOut o = sim_warp_collective<sqa_sim::MmaIn, sqa_sim::MmaOut>(in, sqa_sim::mma_m16n8k16_warp<false>);
    for (int i = 0; i < 4; ++i) d[i] = o.d[i];
}

inline void ldmatrix_x4(uint32_t r[4], const void* smem) { sqa_sim::ldmatrix<4, false>(r, smem); }
inline void ldmatrix_x4_trans(uint32_t r[4], const void* smem) { sqa_sim::ldmatrix<4, true>(r, smem); }
inline void ldmatrix_x2(uint32_t r[2], const void* smem) { sqa_sim::ldmatrix<2, false>(r, smem); }
inline void ldmatrix_x2_trans(uint32_t r[2], const void* smem) { sqa_sim::ldmatrix<2, true>(r, smem); }

// The copy is queued and lands in shared memory at the cp_async_wait that covers its
// group, so a missing wait leaves the NaN poison in place.
inline void cp_async_16(void* smem, const void* gmem, bool full) { ::sqa_sim::cp_async_16(smem, gmem, full); }
inline void cp_async_commit() { ::sqa_sim::cp_async_commit(); }
template <int N>
inline void cp_async_wait() {
    ::sqa_sim::cp_async_wait(N);
}

#endif
