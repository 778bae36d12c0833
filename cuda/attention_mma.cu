/*
 * attention_mma.cu: FlashAttention-2-style forward attention on tensor cores.
 *
 * Versions (one unmangled entry point each, see the kernel contract):
 *   attention_mma_{bf16,f16}_d{16,32,64,128}(q, k, v, o, seq_len, heads_q, heads_kv,
 *                                            causal, window, scale_log2)
 *
 * Launch geometry (the same numbers are in src/backend/cuda/kernels.rs and the simulator):
 *   BLOCK_Q = 128 query rows per block, THREADS = 256 (8 warps x 16 rows), for every D;
 *   grid = (ceil(N / 128), H_eff, B);
 *   dynamic shared memory SMEM = 2 stages x (K tile + V tile) = 2 * 2 * BLOCK_K * D * 2 bytes:
 *
 *     D    BLOCK_K  SMEM    min blocks/SM   why
 *     16   128      16 KiB  2               softmax (ex2) bound: big key tiles halve the per-tile
 *                                           overhead (syncs, max/sum shuffles, rescales) per exp
 *     32   128      32 KiB  2               as for 16; S (64 floats) + O (16) fit in 128 registers
 *     64    64      32 KiB  2               S 32 + O 32 + Q 16 registers; 2 blocks = 16 warps/SM
 *     128   64      64 KiB  1               O alone is 64 registers; 64 KiB needs the opt-in
 *                                           dynamic shared memory attribute (> 48 KiB)
 *
 *   Register use (ptxas -v, CUDA 13.0, no spills anywhere): sm_80 d16 120, d32 105, d64 145,
 *   d128 213; sm_90 d16 126, d32 113, d64 156, d128 225. d <= 32 fit the 128 registers of two
 *   256-thread blocks per SM; d64 with 64-key tiles needs ~150 (16 warps/SM would need 32-key
 *   tiles, i.e. twice the barriers per key), d128 ~220 (one block, 8 warps, as FlashAttention-2).
 *
 *   Why d16 is different: per visible (query, key) pair the tensor cores do 4d FLOPs but the
 *   softmax needs one exponential. An H100/H200 SM has 16 ex2/clock against ~2048 bf16 FMA/clock
 *   (dense tensor peak), i.e. 2048 / (2d) pairs/clock: the two bounds meet at d64, and below it
 *   the exponential unit, not the matrix unit, bounds the speed (d32 by 2x, d16 by 4x). The kernel therefore spends exactly one FMA and one ex2.approx
 *   per score, never computes a tile no row can see, and uses 128-key tiles at d16.
 *
 *   Every block stages its Q tile (128 x D) through the second K/V stage (2 * BLOCK_K * D >=
 *   128 * D for every row of the table), copies it to registers, then reuses that stage.
 *
 * Algorithm (FlashAttention-2 forward, Dao 2023):
 *   - each warp owns 16 query rows and keeps their Q fragments in registers for the whole loop;
 *   - K/V tiles of BLOCK_K rows stream through shared memory with 16-byte cp.async, two stages
 *     deep (tile t+1 loads while tile t is computed);
 *   - S = Q.K^T and O += P.V with mma.sync.m16n8k16 (f32 accumulation); K fragments by ldmatrix
 *     x4, V fragments by ldmatrix x4 .trans; the S accumulator is re-packed to 16 bits in
 *     registers as the A operand of P.V (the C and A fragment layouts line up, no shared memory);
 *   - shared memory rows are XOR-swizzled in 16-byte chunks so that the 8 row addresses of every
 *     ldmatrix phase fall in 8 distinct bank groups (no bank conflicts for any D);
 *   - online softmax in base 2: p = exp2(s * scale_log2 - m * scale_log2), one FMA and one
 *     ex2.approx per score; row max by two quad shuffles per tile, row sum kept per thread and
 *     reduced once at the end;
 *   - head mapping by index arithmetic (effective head j reads query head j % H_q and key/value
 *     head j / (H_eff / H_kv)): GQA, MQA, the SQA family and rSQA without copying anything;
 *   - causal: key tiles above the block's last row are never visited; window(w): only key tiles
 *     that meet some row's window are visited, so the cost grows linearly in N; per warp, tiles
 *     wholly invisible to its 16 rows are skipped and only partial tiles are masked;
 *   - any N: out-of-range rows of Q/K/V are zero-filled by cp.async, out-of-range keys masked,
 *     out-of-range output rows not written;
 *   - blocks are scheduled last query tile first, so the longest causal rows start first.
 */
#include "common.cuh"

namespace sqa_mma {

typedef unsigned short u16;
typedef unsigned int u32;

/// Tile configuration per head dimension (see the table in the header comment).
template <int D> struct Config;
template <> struct Config<16> { enum { BLOCK_K = 128, MIN_BLOCKS = 2 }; };
template <> struct Config<32> { enum { BLOCK_K = 64, MIN_BLOCKS = 2 }; };
template <> struct Config<64> { enum { BLOCK_K = 64, MIN_BLOCKS = 1 }; };
template <> struct Config<128> { enum { BLOCK_K = 64, MIN_BLOCKS = 1 }; };

enum { WARPS = 8, THREADS = WARPS * 32, BLOCK_Q = WARPS * 16 };

/// The tensor-core product and the f32 -> 16-bit packing of a storage type.
template <class T> struct Ops;
template <> struct Ops<bf16_t> {
    static __device__ __forceinline__ void mma(float d[4], const u32 a[4], const u32 b[2],
                                               const float c[4]) {
        mma_m16n8k16_bf16(d, a, b, c);
    }
    static __device__ __forceinline__ u32 pack(float lo, float hi) { return pack_bf16x2(lo, hi); }
};
template <> struct Ops<f16_t> {
    static __device__ __forceinline__ void mma(float d[4], const u32 a[4], const u32 b[2],
                                               const float c[4]) {
        mma_m16n8k16_f16(d, a, b, c);
    }
    static __device__ __forceinline__ u32 pack(float lo, float hi) { return pack_f16x2(lo, hi); }
};

/// Element offset of 16-byte chunk `chunk` of row `row` in a swizzled [rows][D] tile.
///
/// A row holds C = D/8 chunks; ldmatrix reads one chunk from each of 8 consecutive rows, and
/// those must land in 8 distinct 16-byte bank groups (128 bytes = 8 groups). The chunk index is
/// XORed with the bits of the row that select where in the 128-byte line the row starts:
/// C >= 8: row & 7; C = 4 (two rows per line): (row >> 1) & 3; C = 2: (row >> 2) & 1.
template <int D> __device__ __forceinline__ int swizzle(int row, int chunk) {
    const int C = D / 8;
    const int shift = C >= 8 ? 0 : (C == 4 ? 1 : 2);
    const int mask = (C >= 8 ? 8 : C) - 1;
    return row * D + ((chunk ^ ((row >> shift) & mask)) << 3);
}

/// Starts the copy of rows [r0, r0 + ROWS) of a [n][D] matrix into a swizzled tile; rows at or
/// past n are zero-filled (so padded keys contribute exactly 0 to P.V, never NaN).
template <int D, int ROWS>
__device__ __forceinline__ void load_tile(u16* tile, const u16* g, int r0, int n, int tid) {
    const int C = D / 8;
#pragma unroll
    for (int i = 0; i < ROWS * C / THREADS; ++i) {
        const int idx = tid + i * THREADS;
        const int r = idx / C, c = idx % C;
        const bool inside = r0 + r < n;
        const u16* src = g + (long long)(inside ? r0 + r : 0) * D + c * 8;
        cp_async_16(tile + swizzle<D>(r, c), src, inside);
    }
}

template <class T, int D>
__device__ __forceinline__ void attention(const T* __restrict__ q_, const T* __restrict__ k_,
                                          const T* __restrict__ v_, T* __restrict__ o_, int n,
                                          int heads_q, int heads_kv, int causal, int window,
                                          float scale_log2) {
    enum {
        BLOCK_K = Config<D>::BLOCK_K,
        KSTEPS = D / 16,        // k-steps of Q.K^T (over the head dimension)
        STILES = BLOCK_K / 8,   // n-tiles of S (8 keys each)
        PSTEPS = BLOCK_K / 16,  // k-steps of P.V (over keys)
        OTILES = D / 8,         // n-tiles of O (8 features each)
        STAGE = 2 * BLOCK_K * D // elements of one K + V stage
    };
    SQA_DYNAMIC_SMEM(u16, smem);
    const u16* q = reinterpret_cast<const u16*>(q_);
    const u16* k = reinterpret_cast<const u16*>(k_);
    const u16* v = reinterpret_cast<const u16*>(v_);
    u16* o = reinterpret_cast<u16*>(o_);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BLOCK_Q; // longest causal blocks first
    const int heads_eff = heads_q > heads_kv ? heads_q : heads_kv;
    const int head = blockIdx.y, batch = blockIdx.z;
    const int qh = head % heads_q, kh = head / (heads_eff / heads_kv);
    const long long nd = (long long)n * D;
    const u16* qg = q + ((long long)batch * heads_q + qh) * nd;
    const u16* kg = k + ((long long)batch * heads_kv + kh) * nd;
    const u16* vg = v + ((long long)batch * heads_kv + kh) * nd;
    u16* og = o + ((long long)batch * heads_eff + head) * nd;

    // Key tiles this block visits: [t_lo, t_hi).
    const int q_end = q0 + BLOCK_Q < n ? q0 + BLOCK_Q : n;
    const int k_hi = causal ? q_end : n;
    const int k_lo = window > 0 && q0 - window + 1 > 0 ? q0 - window + 1 : 0;
    const int t_lo = k_lo / BLOCK_K, t_hi = (k_hi + BLOCK_K - 1) / BLOCK_K;

    // Prologue: Q into the second stage, the first K/V tile into the first stage.
    load_tile<D, BLOCK_Q>(smem + STAGE, qg, q0, n, tid);
    cp_async_commit();
    load_tile<D, BLOCK_K>(smem, kg, t_lo * BLOCK_K, n, tid);
    load_tile<D, BLOCK_K>(smem + BLOCK_K * D, vg, t_lo * BLOCK_K, n, tid);
    cp_async_commit();
    cp_async_wait<1>();
    block_sync();

    // This warp's rows [w0, w0 + 16) and its Q fragments (A operand, rows x head dimension).
    const int w0 = q0 + warp * 16;
    const int w_last = w0 + 15 < n ? w0 + 15 : n - 1;
    u32 qa[KSTEPS][4];
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ++ks)
        ldmatrix_x4(qa[ks], smem + STAGE + swizzle<D>(warp * 16 + (lane & 15), ks * 2 + (lane >> 4)));
    block_sync(); // every warp holds its Q before the second stage is overwritten

    // Each thread holds rows w0 + lane/4 (h = 0) and w0 + lane/4 + 8 (h = 1).
    float acc[OTILES][4];
#pragma unroll
    for (int t = 0; t < OTILES; ++t)
        acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.f;
    float row_max[2] = {SQA_NEG_INF, SQA_NEG_INF}; // raw scores (not scaled)
    float row_sum[2] = {0.f, 0.f};             // this thread's columns only

    for (int t = t_lo; t < t_hi; ++t) {
        const int stage = (t - t_lo) & 1;
        if (t + 1 < t_hi) {
            u16* next = smem + (stage ^ 1) * STAGE;
            load_tile<D, BLOCK_K>(next, kg, (t + 1) * BLOCK_K, n, tid);
            load_tile<D, BLOCK_K>(next + BLOCK_K * D, vg, (t + 1) * BLOCK_K, n, tid);
        }
        cp_async_commit(); // possibly empty: keeps "all but the newest group" meaning tile t
        cp_async_wait<1>();
        block_sync();

        const int k0 = t * BLOCK_K;
        const u16* ks_tile = smem + stage * STAGE;
        const u16* vs_tile = ks_tile + BLOCK_K * D;
        // Warp-uniform: does any of this warp's rows see any key of the tile, and do all?
        const bool active = w0 < n && !(causal && k0 > w_last) &&
                            !(window > 0 && k0 + BLOCK_K - 1 < w0 - window + 1);
        const bool partial = k0 + BLOCK_K > n || (causal && k0 + BLOCK_K - 1 > w0) ||
                             (window > 0 && k0 < w_last - window + 1);
        if (active) {
            // S = Q.K^T for 16 rows x BLOCK_K keys.
            float s[STILES][4];
#pragma unroll
            for (int nt = 0; nt < STILES; ++nt)
                s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
            for (int ks = 0; ks < KSTEPS; ++ks) {
#pragma unroll
                for (int nt = 0; nt < STILES; nt += 2) {
                    u32 kb[4];
                    ldmatrix_x4(kb, ks_tile + swizzle<D>(nt * 8 + (lane >> 4) * 8 + (lane & 7),
                                                         ks * 2 + ((lane >> 3) & 1)));
                    Ops<T>::mma(s[nt], qa[ks], kb, s[nt]);
                    Ops<T>::mma(s[nt + 1], qa[ks], kb + 2, s[nt + 1]);
                }
            }

            if (partial) {
                // Row r sees keys [first, last]; relative to this thread's first column.
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int row = w0 + (lane >> 2) + h * 8;
                    const int col0 = k0 + (lane & 3) * 2;
                    const int last = (causal && row < n ? row : n - 1) - col0;
                    const int first = (window > 0 ? row - window + 1 : 0) - col0;
#pragma unroll
                    for (int nt = 0; nt < STILES; ++nt)
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            const int key = nt * 8 + e;
                            if (key < first || key > last) s[nt][2 * h + e] = SQA_NEG_INF;
                        }
                }
            }

            // Online softmax, base 2.
            float m_new[2] = {row_max[0], row_max[1]};
#pragma unroll
            for (int nt = 0; nt < STILES; ++nt) {
                m_new[0] = fmaxf(m_new[0], fmaxf(s[nt][0], s[nt][1]));
                m_new[1] = fmaxf(m_new[1], fmaxf(s[nt][2], s[nt][3]));
            }
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                m_new[h] = fmaxf(m_new[h], warp_shfl_xor(m_new[h], 1));
                m_new[h] = fmaxf(m_new[h], warp_shfl_xor(m_new[h], 2));
            }
            float base[2];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                // A row with no visible key yet keeps max -inf; subtract 0 then (exp2(-inf) = 0).
                base[h] = m_new[h] == SQA_NEG_INF ? 0.f : m_new[h] * scale_log2;
                const float alpha = fast_exp2(row_max[h] * scale_log2 - base[h]);
                row_max[h] = m_new[h];
                row_sum[h] *= alpha;
#pragma unroll
                for (int t2 = 0; t2 < OTILES; ++t2) {
                    acc[t2][2 * h] *= alpha;
                    acc[t2][2 * h + 1] *= alpha;
                }
            }
#pragma unroll
            for (int nt = 0; nt < STILES; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float p = fast_exp2(fmaf(s[nt][e], scale_log2, -base[e >> 1]));
                    s[nt][e] = p;
                    row_sum[e >> 1] += p;
                }

            // O += P.V: the S accumulators of n-tiles 2j, 2j+1 are the A fragment of k-step j.
#pragma unroll
            for (int j = 0; j < PSTEPS; ++j) {
                u32 pa[4];
                pa[0] = Ops<T>::pack(s[2 * j][0], s[2 * j][1]);
                pa[1] = Ops<T>::pack(s[2 * j][2], s[2 * j][3]);
                pa[2] = Ops<T>::pack(s[2 * j + 1][0], s[2 * j + 1][1]);
                pa[3] = Ops<T>::pack(s[2 * j + 1][2], s[2 * j + 1][3]);
#pragma unroll
                for (int dt = 0; dt < OTILES; dt += 2) {
                    u32 vb[4];
                    ldmatrix_x4_trans(vb, vs_tile + swizzle<D>(j * 16 + ((lane >> 3) & 1) * 8 + (lane & 7),
                                                               dt + (lane >> 4)));
                    Ops<T>::mma(acc[dt], pa, vb, acc[dt]);
                    Ops<T>::mma(acc[dt + 1], pa, vb + 2, acc[dt + 1]);
                }
            }
        }
        block_sync(); // every warp is done with this stage before it is refilled
    }

    // Normalise and write this thread's two rows.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        float sum = row_sum[h];
        sum += warp_shfl_xor(sum, 1);
        sum += warp_shfl_xor(sum, 2);
        const float inv = sum > 0.f ? 1.f / sum : 0.f;
        const int row = w0 + (lane >> 2) + h * 8;
        if (row < n) {
            u16* dst = og + (long long)row * D + (lane & 3) * 2;
#pragma unroll
            for (int t2 = 0; t2 < OTILES; ++t2)
                *reinterpret_cast<u32*>(dst + t2 * 8) =
                    Ops<T>::pack(acc[t2][2 * h] * inv, acc[t2][2 * h + 1] * inv);
        }
    }
}

} // namespace sqa_mma

#define SQA_MMA_ENTRY(DTYPE, D)                                                                  \
    extern "C" __global__ void __launch_bounds__(sqa_mma::THREADS, sqa_mma::Config<D>::MIN_BLOCKS) \
        attention_mma_##DTYPE##_d##D(const DTYPE##_t* q, const DTYPE##_t* k, const DTYPE##_t* v,   \
                                     DTYPE##_t* o, int seq_len, int heads_q, int heads_kv,         \
                                     int causal, int window, float scale_log2) {                   \
        sqa_mma::attention<DTYPE##_t, D>(q, k, v, o, seq_len, heads_q, heads_kv, causal, window,   \
                                         scale_log2);                                              \
    }

SQA_MMA_ENTRY(bf16, 16)
SQA_MMA_ENTRY(bf16, 32)
SQA_MMA_ENTRY(bf16, 64)
SQA_MMA_ENTRY(bf16, 128)
SQA_MMA_ENTRY(f16, 16)
SQA_MMA_ENTRY(f16, 32)
SQA_MMA_ENTRY(f16, 64)
SQA_MMA_ENTRY(f16, 128)
