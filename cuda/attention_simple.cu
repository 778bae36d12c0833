/* attention_simple.cu: the readable baseline attention forward kernel.
 *
 * Versions: one entry point per (dtype, d_head), attention_simple_<bf16|f16>_d<16|32|64|128>,
 * all instances of one template. It is the baseline the tensor-core kernel is checked
 * against, so it favours clarity over speed: no tensor cores, f32 math throughout.
 *
 * Geometry: grid = (ceil(N / 64), H_eff, B), block = 64 threads, no dynamic shared memory.
 *   BLOCK_Q = 64  one thread per query row: the thread keeps its (pre-scaled) query row,
 *                 its running max m, running sum l and output accumulator in registers;
 *   BLOCK_K = 64  K and V are staged 64 rows at a time in static shared memory, in the
 *                 storage type (2 * 64 * D * 2 bytes = 32 KiB at D = 128, under the 48 KiB
 *                 static limit), loaded cooperatively by the block.
 * Softmax is the online (FlashAttention) form in base 2: scores s = (q . k) * log2(e)/sqrt(d),
 * p = exp2(s - m). Per key tile a row first finds the tile maximum, rescales l and the
 * accumulator by exp2(m_old - m_new), then accumulates p and p * v.
 * Masking: `causal` limits row i to keys <= i; `window` w > 0 further limits it to keys
 * >= i - w + 1. Key tiles that no row of the block can see are skipped entirely.
 * Heads: effective head j (blockIdx.y, H_eff = gridDim.y) reads query head j % H_q and
 * key/value head j / (H_eff / H_kv), which covers MHA, GQA, MQA, the SQA family and rSQA.
 * Rows past N (the last query block) take part in loads and barriers but compute nothing.
 *
 * Everything but the entry points has internal linkage: the host simulator links
 * deliberately broken copies of this file next to it (see build.rs), and their
 * templates must not merge with these.
 */
#include "common.cuh"

namespace {

constexpr int SIMPLE_BLOCK_Q = 64;
constexpr int SIMPLE_BLOCK_K = 64;

template <class T, int D>
__device__ __forceinline__ void attention_simple(const T* __restrict__ q, const T* __restrict__ k,
                                                 const T* __restrict__ v, T* __restrict__ o, int seq_len,
                                                 int heads_q, int heads_kv, int causal, int window,
                                                 float scale_log2) {
    __shared__ __align__(16) T k_tile[SIMPLE_BLOCK_K][D];
    __shared__ __align__(16) T v_tile[SIMPLE_BLOCK_K][D];

    const int tid = threadIdx.x;
    const int head = blockIdx.y;
    const int batch = blockIdx.z;
    const int heads_eff = gridDim.y;
    const int q_head = head % heads_q;
    const int kv_head = head / (heads_eff / heads_kv);

    const int block_row0 = blockIdx.x * SIMPLE_BLOCK_Q;
    const int row = block_row0 + tid;
    const bool has_row = row < seq_len;

    const T* k_head = k + ((size_t)batch * heads_kv + kv_head) * seq_len * D;
    const T* v_head = v + ((size_t)batch * heads_kv + kv_head) * seq_len * D;

    // This thread's query row, pre-scaled so that q . k is the base-2 score.
    float q_row[D];
    if (has_row) {
        const T* q_ptr = q + (((size_t)batch * heads_q + q_head) * seq_len + row) * D;
        for (int c = 0; c < D; ++c) q_row[c] = to_float(q_ptr[c]) * scale_log2;
    }
    float acc[D];
    for (int c = 0; c < D; ++c) acc[c] = 0.0f;
    float m = SQA_NEG_INF;  // running maximum of the scores
    float l = 0.0f;         // running sum of exp2(s - m)

    // Keys visible to this row, [row_lo, row_hi].
    const int row_lo = window > 0 ? max(0, row - window + 1) : 0;
    const int row_hi = causal ? min(row, seq_len - 1) : seq_len - 1;

    // Keys visible to any row of the block: the tiles outside are skipped.
    const int last_row = min(block_row0 + SIMPLE_BLOCK_Q, seq_len) - 1;
    const int block_lo = window > 0 ? max(0, block_row0 - window + 1) : 0;
    const int block_hi = causal ? last_row : seq_len - 1;

    for (int tile0 = block_lo / SIMPLE_BLOCK_K * SIMPLE_BLOCK_K; tile0 <= block_hi; tile0 += SIMPLE_BLOCK_K) {
        // Cooperative load of K and V rows tile0 .. tile0 + 63 (zeros past the end).
        for (int e = tid; e < SIMPLE_BLOCK_K * D; e += SIMPLE_BLOCK_Q) {
            const int r = e / D, c = e % D;
            const bool in_range = tile0 + r < seq_len;
            k_tile[r][c] = in_range ? k_head[(size_t)(tile0 + r) * D + c] : from_float<T>(0.0f);
            v_tile[r][c] = in_range ? v_head[(size_t)(tile0 + r) * D + c] : from_float<T>(0.0f);
        }
        block_sync();  // the tile is complete before anyone reads it

        const int j_lo = max(row_lo - tile0, 0);
        const int j_hi = min(row_hi - tile0, SIMPLE_BLOCK_K - 1);
        if (has_row && j_lo <= j_hi) {
            float s[SIMPLE_BLOCK_K];
            float m_new = m;
            for (int j = j_lo; j <= j_hi; ++j) {
                float dot = 0.0f;
                for (int c = 0; c < D; ++c) dot += q_row[c] * to_float(k_tile[j][c]);
                s[j] = dot;
                m_new = fmaxf(m_new, dot);
            }
            const float correction = fast_exp2(m - m_new);  // 0 on the first visible tile
            l *= correction;
            for (int c = 0; c < D; ++c) acc[c] *= correction;
            for (int j = j_lo; j <= j_hi; ++j) {
                const float p = fast_exp2(s[j] - m_new);
                l += p;
                for (int c = 0; c < D; ++c) acc[c] += p * to_float(v_tile[j][c]);
            }
            m = m_new;
        }
        block_sync();  // everyone is done with the tile before it is overwritten
    }

    if (has_row) {
        // Every row sees at least one key (itself, or all keys), so l > 0.
        const float inv_l = 1.0f / l;
        T* o_ptr = o + (((size_t)batch * heads_eff + head) * seq_len + row) * D;
        for (int c = 0; c < D; ++c) o_ptr[c] = from_float<T>(acc[c] * inv_l);
    }
}

}  // namespace

#define SQA_SIMPLE_ENTRY(DT, T, D)                                                                              \
    extern "C" __global__ void __launch_bounds__(SIMPLE_BLOCK_Q)                                              \
        attention_simple_##DT##_d##D(const T* q, const T* k, const T* v, T* o, int seq_len, int heads_q,     \
                                     int heads_kv, int causal, int window, float scale_log2) {               \
        attention_simple<T, D>(q, k, v, o, seq_len, heads_q, heads_kv, causal, window, scale_log2);         \
    }

SQA_SIMPLE_ENTRY(bf16, bf16_t, 16)
SQA_SIMPLE_ENTRY(bf16, bf16_t, 32)
SQA_SIMPLE_ENTRY(bf16, bf16_t, 64)
SQA_SIMPLE_ENTRY(bf16, bf16_t, 128)
SQA_SIMPLE_ENTRY(f16, f16_t, 16)
SQA_SIMPLE_ENTRY(f16, f16_t, 32)
SQA_SIMPLE_ENTRY(f16, f16_t, 64)
SQA_SIMPLE_ENTRY(f16, f16_t, 128)
