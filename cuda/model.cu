/* model.cu: the elementwise kernels of the layer and model scopes (the GEMMs are cuBLAS).
 *
 * Versions: one entry point per (kernel, dtype), `<kernel>_<bf16|f16>`, instances of one
 * template each. They are memory-bound one-pass kernels; clarity over cleverness.
 *   embed          h[t, :] = table[token[t], :]             (h is the f32 residual stream)
 *   rmsnorm        y = x / sqrt(mean(x^2) + eps) * g         one warp per row, f32 in, T out
 *   residual_add   h += a                                    f32 += T
 *   swiglu         out = silu(gate) * up                     in f32, stored as T
 *   rope_heads     [B, N, H*dh] -> [B, H, N, dh], with the rotary embedding when `rope` = 1
 *                  (rotate half: pairs (i, i + dh/2), theta_i = 10000^(-2i/dh), position =
 *                  token index; the angle is computed in f64 so that it stays exact at 200k)
 *   merge_heads    [B, H, N, dh] -> [B, N, H*dh]             (the attention output, for W_o)
 * The residual stream stays in f32 between layers, as under PyTorch's bf16 autocast, and
 * every GEMM operand is stored as T.
 * Geometry: block = MODEL_THREADS = 256 threads. rmsnorm: one warp per row, 8 rows per
 * block, grid = ceil(rows / 8). The others: a grid-stride loop over `count` elements
 * (pairs for rope_heads), grid = min(ceil(count / 256), 65535).
 */
#include "common.cuh"

#define MODEL_THREADS 256
#define MODEL_ROWS_PER_BLOCK (MODEL_THREADS / 32)

namespace {

__device__ __forceinline__ long long global_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long grid_stride() { return (long long)gridDim.x * blockDim.x; }

template <class T>
__device__ __forceinline__ void embed(const int* __restrict__ tokens, const T* __restrict__ table,
                                      float* __restrict__ h, int d, long long count) {
    for (long long i = global_index(); i < count; i += grid_stride()) {
        h[i] = to_float(table[(long long)tokens[i / d] * d + i % d]);
    }
}

/* One warp per row: every lane of a warp reaches the shuffles, also past the last row. */
template <class T>
__device__ __forceinline__ void rmsnorm(const float* __restrict__ x, const T* __restrict__ g, T* __restrict__ y,
                                        int rows, int d, float eps) {
    const int lane = threadIdx.x % 32;
    const long long row = (long long)blockIdx.x * MODEL_ROWS_PER_BLOCK + threadIdx.x / 32;
    const bool active = row < rows;
    const float* xr = x + (active ? row : 0) * d;
    float sum = 0.0f;
    if (active) {
        for (int c = lane; c < d; c += 32) sum += xr[c] * xr[c];
    }
    for (int offset = 16; offset > 0; offset /= 2) sum += warp_shfl_xor(sum, offset);
    if (active) {
        const float inv = 1.0f / sqrtf(sum / (float)d + eps);
        for (int c = lane; c < d; c += 32) y[row * d + c] = from_float<T>(xr[c] * inv * to_float(g[c]));
    }
}

template <class T>
__device__ __forceinline__ void residual_add(float* __restrict__ h, const T* __restrict__ a, long long count) {
    for (long long i = global_index(); i < count; i += grid_stride()) h[i] += to_float(a[i]);
}

template <class T>
__device__ __forceinline__ void swiglu(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                                       long long count) {
    for (long long i = global_index(); i < count; i += grid_stride()) {
        const float g = to_float(gate[i]);
        out[i] = from_float<T>(g / (1.0f + expf(-g)) * to_float(up[i]));
    }
}

/* One thread per rotated pair: `pairs` = B * N * H * (dh / 2). */
template <class T>
__device__ __forceinline__ void rope_heads(const T* __restrict__ x, T* __restrict__ y, int n, int heads, int dh,
                                           int rope, long long pairs) {
    const int half = dh / 2;
    for (long long idx = global_index(); idx < pairs; idx += grid_stride()) {
        const int i = (int)(idx % half);
        const int h = (int)((idx / half) % heads);
        const long long bt = idx / ((long long)half * heads);  // b * n + t
        const int t = (int)(bt % n);
        const long long b = bt / n;
        const T* src = x + (bt * heads + h) * dh;
        T* dst = y + ((b * heads + h) * n + t) * dh;
        const float a = to_float(src[i]);
        const float c = to_float(src[i + half]);
        if (rope) {
            const double angle = (double)t * exp(-(2.0 * i / dh) * log(10000.0));
            const float cs = (float)cos(angle), sn = (float)sin(angle);
            dst[i] = from_float<T>(a * cs - c * sn);
            dst[i + half] = from_float<T>(c * cs + a * sn);
        } else {
            dst[i] = src[i];
            dst[i + half] = src[i + half];
        }
    }
}

/* One thread per element of the output [B, N, H*dh]: `count` = B * N * H * dh. */
template <class T>
__device__ __forceinline__ void merge_heads(const T* __restrict__ o, T* __restrict__ y, int n, int heads, int dh,
                                            long long count) {
    for (long long idx = global_index(); idx < count; idx += grid_stride()) {
        const int c = (int)(idx % dh);
        const int h = (int)((idx / dh) % heads);
        const long long bt = idx / ((long long)dh * heads);
        const int t = (int)(bt % n);
        const long long b = bt / n;
        y[idx] = o[((b * heads + h) * n + t) * dh + c];
    }
}

}  // namespace

#define MODEL_ENTRIES(DT, T)                                                                                       \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS)                                                    \
        embed_##DT(const int* tokens, const T* table, float* h, int d, long long count) {                          \
        embed<T>(tokens, table, h, d, count);                                                                      \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS)                                                    \
        rmsnorm_##DT(const float* x, const T* g, T* y, int rows, int d, float eps) {                               \
        rmsnorm<T>(x, g, y, rows, d, eps);                                                                         \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS) residual_add_##DT(float* h, const T* a,            \
                                                                                  long long count) {               \
        residual_add<T>(h, a, count);                                                                              \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS)                                                    \
        swiglu_##DT(const T* gate, const T* up, T* out, long long count) {                                         \
        swiglu<T>(gate, up, out, count);                                                                           \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS)                                                    \
        rope_heads_##DT(const T* x, T* y, int n, int heads, int dh, int rope, long long pairs) {                   \
        rope_heads<T>(x, y, n, heads, dh, rope, pairs);                                                            \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS)                                                    \
        merge_heads_##DT(const T* o, T* y, int n, int heads, int dh, long long count) {                            \
        merge_heads<T>(o, y, n, heads, dh, count);                                                                 \
    }

MODEL_ENTRIES(bf16, bf16_t)
MODEL_ENTRIES(f16, f16_t)
