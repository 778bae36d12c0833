// sim.h: the host SIMT simulator, force-included (`-include sim.h -DSQA_SIM`) before
// every kernel source compiled for the CPU. See sim.cpp for the runtime.
//
// What it does
//   * Maps the CUDA C vocabulary the kernels use onto plain C++: `__global__`,
//     `__device__`, `__forceinline__`, `__restrict__`, `__launch_bounds__`, `__align__`,
//     `threadIdx/blockIdx/blockDim/gridDim` (per simulated thread), int/float
//     `min`/`max`, `__int_as_float` and friends.
//   * `__shared__` becomes a function-static variable. build.rs moves the
//     zero-initialised statics of every kernel object (`.bss*`), which in kernel
//     sources are exactly the `__shared__` variables, into the linker section
//     `sqa_sim_shared` (GCC ignores a section attribute on statics of function
//     templates, hence the move after compilation). Blocks run one after the other,
//     so one copy per variable is the shared memory of the running block; the runtime
//     fills the whole section (and the dynamic shared memory, see SQA_DYNAMIC_SMEM in
//     common.cuh) with 0xFF bytes before every block: NaN in bf16, f16 and f32. A
//     missing barrier or an unwritten element shows up as NaN in the output. Kernel
//     sources must therefore hold no other zero-initialised static variables.
//   * `sim_warp_collective` is the one way warp-wide operations are emulated: each
//     lane posts its operand and waits; the last lane of the warp to arrive runs
//     `compute(in32, out32)` once for the whole warp and every lane reads its own
//     result. Lanes that do not exist (blockDim not a multiple of 32) post 0xFF bytes.
//     A lane that has exited, waits at a barrier or waits in a different collective
//     is reported as divergence.
//   * Errors (divergence, deadlock, misaligned or non-shared ldmatrix/cp.async
//     addresses) end the launch with a message; they never crash the process.
//
// Execution modes (sim.cpp): cooperative fibers (default: all threads of a block on
// one OS thread, switching only at barriers and warp collectives), or one OS thread
// per simulated thread (`SQA_SIM_THREADS=1`, for ThreadSanitizer runs on small shapes).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#ifndef SQA_SIM
#define SQA_SIM 1
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace sqa_sim {

// ----- per-thread view (set by the runtime before a simulated thread runs) -----------
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();

// ----- synchronisation and memory hooks used by common.cuh ---------------------------
void block_sync();
void* dynamic_smem();
// Ends the launch with `what` unless [p, p + bytes) lies in shared memory and p is
// aligned to `align` bytes.
void check_shared(const void* p, size_t bytes, size_t align, const char* what);
void cp_async_16(void* smem, const void* gmem, bool full);
void cp_async_commit();
void cp_async_wait(int pending);
// Ends the launch with an error message (never returns to the caller).
[[noreturn]] void fail(const char* msg);

// Type-erased warp collective: runs `run(ins, outs, fn)` once, in the last lane of
// the warp to arrive; `ins[l]`/`outs[l]` point to lane l's operand and result slot
// (null for lanes that do not exist).
using CollectiveRun = void (*)(const void* const* ins, void* const* outs, const void* fn);
void warp_collective(const void* tag, const void* in, void* out, CollectiveRun run, const void* fn);

// ----- 16-bit conversions (round to nearest even, NaN stays NaN) ---------------------
inline uint32_t f32_bits(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    return u;
}
inline float f32_from_bits(uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}
inline float bf16_to_float(uint32_t h) { return f32_from_bits((h & 0xffffu) << 16); }
inline uint16_t float_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
extern const float* const f16_table;  // 65536 entries, filled at load time
inline float f16_to_float(uint32_t h) { return f16_table[h & 0xffffu]; }
uint16_t float_to_f16(float x);

}  // namespace sqa_sim

#define threadIdx (::sqa_sim::thread_idx())
#define blockIdx (::sqa_sim::block_idx())
#define blockDim (::sqa_sim::block_dim())
#define gridDim (::sqa_sim::grid_dim())

inline void __syncthreads() { ::sqa_sim::block_sync(); }

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline float __int_as_float(int x) { return ::sqa_sim::f32_from_bits((uint32_t)x); }
inline float __uint_as_float(unsigned x) { return ::sqa_sim::f32_from_bits(x); }
inline int __float_as_int(float x) { return (int)::sqa_sim::f32_bits(x); }
inline unsigned __float_as_uint(float x) { return ::sqa_sim::f32_bits(x); }

// The warp collective of the contract: `compute(const In* in32, Out* out32)` sees the
// operands of all 32 lanes and writes the results of all 32 lanes. It runs once per
// warp operation, in the last lane to arrive; it must not depend on captured
// per-lane state (put everything a lane contributes into `In`).
template <class In, class Out, class F>
Out sim_warp_collective(const In& mine, F compute) {
    static_assert(std::is_trivially_copyable<In>::value && std::is_trivially_copyable<Out>::value,
                  "warp collective operands must be trivially copyable");
    static const char tag = 0;  // one tag per instantiation: tells collectives apart
    Out result;
    ::sqa_sim::CollectiveRun run = [](const void* const* ins, void* const* outs, const void* fn) {
        In in32[32];
        Out out32[32];
        std::memset(static_cast<void*>(in32), 0xff, sizeof in32);
        std::memset(static_cast<void*>(out32), 0xff, sizeof out32);
        for (int l = 0; l < 32; ++l)
            if (ins[l]) std::memcpy(static_cast<void*>(&in32[l]), ins[l], sizeof(In));
        (*static_cast<const F*>(fn))(in32, out32);
        for (int l = 0; l < 32; ++l)
            if (outs[l]) std::memcpy(outs[l], static_cast<const void*>(&out32[l]), sizeof(Out));
    };
    ::sqa_sim::warp_collective(&tag, &mine, &result, run, &compute);
    return result;
}
