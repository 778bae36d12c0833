/* selftest.cu: small kernels that test the simulator and the primitives of common.cuh.
 *
 * Written in the kernel dialect, so they also compile with NVRTC; the C ABI that
 * launches them under the simulator is selftest_api.cpp, the checks are in
 * tests/sim_selftest.rs.
 */
#include "common.cuh"

// Block of 64 threads (2 warps): out[6 * tid + i] = the value of lane (lane ^ (1 << i)),
// i < 5, and out[6 * tid + 5] = the butterfly sum of the warp.
extern "C" __global__ void sim_test_shfl(float* out) {
    const int tid = threadIdx.x;
    const float mine = (float)tid;
    for (int i = 0; i < 5; ++i) out[6 * tid + i] = warp_shfl_xor(mine, 1 << i);
    float sum = mine;
    for (int i = 16; i >= 1; i /= 2) sum += warp_shfl_xor(sum, i);
    out[6 * tid + 5] = sum;
}

// Half of each warp takes part in a shuffle while the other half (how = 0) skips it
// and exits, (1) waits at a barrier, or (2) runs a different warp collective (an mma).
// The simulator must report divergence.
extern "C" __global__ void sim_test_diverge(int how, float* out) {
    const int tid = threadIdx.x;
    if (tid % 32 < 16) {
        out[tid] = warp_shfl_xor(1.0f, 1);
    } else if (how == 1) {
        block_sync();
    } else if (how == 2) {
        const uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
        const float c[4] = {0, 0, 0, 0};
        float d[4];
        mma_m16n8k16_bf16(d, a, b, c);
        out[tid] = d[0];
    }
}

// Only the first warp reaches the barrier: the simulator must report a deadlock.
extern "C" __global__ void sim_test_deadlock(float* out) {
    const int tid = threadIdx.x;
    if (tid < 32) block_sync();
    out[tid] = 1.0f;
}

template <class T>
__device__ __forceinline__ void mma(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]);
template <>
__device__ __forceinline__ void mma<bf16_t>(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    mma_m16n8k16_bf16(d, a, b, c);
}
template <>
__device__ __forceinline__ void mma<f16_t>(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    mma_m16n8k16_f16(d, a, b, c);
}

__device__ __forceinline__ uint32_t pair(const uint16_t* p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 16); }
__device__ __forceinline__ uint32_t pair_col(const uint16_t* p, int stride) {
    return (uint32_t)p[0] | ((uint32_t)p[stride] << 16);
}

// One warp: D[16][16] = A[16][16] . B[16][16] + C (two m16n8k16 products, one per
// 8-column half of B), all row-major in global memory. `mode` picks how the operand
// fragments are built:
//   0  by hand from global memory, following the documented PTX fragment layouts;
//   1  A by ldmatrix_x4 from A, B by ldmatrix_x4_trans from B ([k][n]);
//   2  A by ldmatrix_x4, B by ldmatrix_x2 from B transposed ([n][k], as K in Q.K^T);
//   3  A by ldmatrix_x4_trans from A transposed ([k][m]), B by ldmatrix_x2_trans from B.
template <class T>
__device__ __forceinline__ void sim_test_mma(int mode, const uint16_t* a, const uint16_t* b, const float* c,
                                             float* d) {
    __shared__ __align__(16) uint16_t sa[16][16];   // A [m][k]
    __shared__ __align__(16) uint16_t sat[16][16];  // A^T [k][m]
    __shared__ __align__(16) uint16_t sb[16][16];   // B [k][n]
    __shared__ __align__(16) uint16_t sbt[16][16];  // B^T [n][k]
    const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    for (int e = lane; e < 256; e += 32) {
        const int r = e / 16, col = e % 16;
        sa[r][col] = a[e];
        sat[col][r] = a[e];
        sb[r][col] = b[e];
        sbt[col][r] = b[e];
    }
    block_sync();

    uint32_t af[4], bf[2][2];
    if (mode == 0) {
        af[0] = pair(&a[g * 16 + 2 * t]);
        af[1] = pair(&a[(g + 8) * 16 + 2 * t]);
        af[2] = pair(&a[g * 16 + 2 * t + 8]);
        af[3] = pair(&a[(g + 8) * 16 + 2 * t + 8]);
        for (int n = 0; n < 2; ++n) {
            bf[n][0] = pair_col(&b[(2 * t) * 16 + 8 * n + g], 16);
            bf[n][1] = pair_col(&b[(2 * t + 8) * 16 + 8 * n + g], 16);
        }
    } else {
        const int i = lane / 8, r = lane % 8;  // this lane addresses row r of matrix i
        if (mode == 3) {
            // A^T [k][m]: matrices (k 0-7, m 0-7), (k 0-7, m 8-15), (k 8-15, m 0-7), (k 8-15, m 8-15).
            ldmatrix_x4_trans(af, &sat[r + 8 * (i / 2)][8 * (i % 2)]);
        } else {
            // A [m][k]: matrices (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15).
            ldmatrix_x4(af, &sa[r + 8 * (i % 2)][8 * (i / 2)]);
        }
        if (mode == 1) {
            // B [k][n]: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15).
            uint32_t r4[4];
            ldmatrix_x4_trans(r4, &sb[r + 8 * (i % 2)][8 * (i / 2)]);
            bf[0][0] = r4[0], bf[0][1] = r4[1], bf[1][0] = r4[2], bf[1][1] = r4[3];
        } else {
            for (int n = 0; n < 2; ++n) {
                // Lanes 0-15 address matrices (k 0-7) and (k 8-15) of the n-th 8 columns.
                const int row = lane % 16;
                if (mode == 2)
                    ldmatrix_x2(bf[n], &sbt[8 * n + row % 8][8 * (row / 8)]);
                else
                    ldmatrix_x2_trans(bf[n], &sb[row][8 * n]);
            }
        }
    }
    for (int n = 0; n < 2; ++n) {
        float cf[4], df[4];
        cf[0] = c[g * 16 + 8 * n + 2 * t];
        cf[1] = c[g * 16 + 8 * n + 2 * t + 1];
        cf[2] = c[(g + 8) * 16 + 8 * n + 2 * t];
        cf[3] = c[(g + 8) * 16 + 8 * n + 2 * t + 1];
        mma<T>(df, af, bf[n], cf);
        d[g * 16 + 8 * n + 2 * t] = df[0];
        d[g * 16 + 8 * n + 2 * t + 1] = df[1];
        d[(g + 8) * 16 + 8 * n + 2 * t] = df[2];
        d[(g + 8) * 16 + 8 * n + 2 * t + 1] = df[3];
    }
}

extern "C" __global__ void sim_test_mma_bf16(int mode, const uint16_t* a, const uint16_t* b, const float* c,
                                             float* d) {
    sim_test_mma<bf16_t>(mode, a, b, c, d);
}
extern "C" __global__ void sim_test_mma_f16(int mode, const uint16_t* a, const uint16_t* b, const float* c,
                                            float* d) {
    sim_test_mma<f16_t>(mode, a, b, c, d);
}

// 16 threads, each owning 16 bytes (4 floats) of two shared buffers. Group 0 copies
// src into buf0 with zero-fill for threads t % 3 == 0, group 1 copies src into buf1.
// before: buf0 right after issue (the simulator still shows the poison);
// mid0/mid1: buf0/buf1 after cp_async_wait<1> (group 0 landed, group 1 not yet);
// after: buf1 after cp_async_wait<0>.
extern "C" __global__ void sim_test_cp_async(const float* src, float* before, float* mid0, float* mid1,
                                             float* after) {
    __shared__ __align__(16) float buf0[64];
    __shared__ __align__(16) float buf1[64];
    const int t = threadIdx.x, o = 4 * t;
    cp_async_16(&buf0[o], &src[o], t % 3 != 0);
    cp_async_commit();
    cp_async_16(&buf1[o], &src[o], true);
    cp_async_commit();
    for (int i = 0; i < 4; ++i) before[o + i] = buf0[o + i];
    cp_async_wait<1>();
    for (int i = 0; i < 4; ++i) mid0[o + i] = buf0[o + i], mid1[o + i] = buf1[o + i];
    cp_async_wait<0>();
    for (int i = 0; i < 4; ++i) after[o + i] = buf1[o + i];
}

// One thread per pair: packs in[2t], in[2t+1] as bf16x2 and f16x2, staged through
// dynamic shared memory (2 * blockDim.x words), and converts in[2t] with from_float.
extern "C" __global__ void sim_test_pack(const float* in, uint32_t* packed_bf16, uint32_t* packed_f16,
                                         uint16_t* scalar_bf16, uint16_t* scalar_f16) {
    SQA_DYNAMIC_SMEM(uint32_t, staged);
    const int t = threadIdx.x, n = blockDim.x;
    staged[t] = pack_bf16x2(in[2 * t], in[2 * t + 1]);
    staged[n + t] = pack_f16x2(in[2 * t], in[2 * t + 1]);
    block_sync();
    packed_bf16[t] = staged[t];
    packed_f16[t] = staged[n + t];
    scalar_bf16[t] = from_float<bf16_t>(in[2 * t]).bits;
    scalar_f16[t] = from_float<f16_t>(in[2 * t]).bits;
}

// Two blocks of 16 threads, 64 floats of dynamic shared memory. Per block b:
// before[64b + i] = the buffer before anything is written (the simulator's poison, in
// every block), after[64b + i] = src[(i + 4) % 64], written by cp.async of another
// thread and read after the barrier.
extern "C" __global__ void sim_test_dynamic_smem(const float* src, float* before, float* after) {
    SQA_DYNAMIC_SMEM(float, buf);
    const int t = threadIdx.x, o = 4 * t, base = 64 * blockIdx.x;
    for (int i = 0; i < 4; ++i) before[base + o + i] = buf[o + i];
    cp_async_16(&buf[o], &src[o], true);
    cp_async_commit();
    cp_async_wait<0>();
    block_sync();
    for (int i = 0; i < 4; ++i) after[base + o + i] = buf[(o + i + 4) % 64];
}
