// model_api.cpp: the simulator's C ABI for the elementwise kernels of cuda/model.cu
// (called by src/sim/model.rs). Launch geometry as in the header of model.cu.
#include <cstdint>
#include <string>

#include "common.cuh"
#include "launch.h"

#define MODEL_DECLARE(DT, T)                                                                               \
    extern "C" void embed_##DT(const int*, const T*, float*, int, long long);                             \
    extern "C" void rmsnorm_##DT(const float*, const T*, T*, int, int, float);                            \
    extern "C" void residual_add_##DT(float*, const T*, long long);                                       \
    extern "C" void swiglu_##DT(const T*, const T*, T*, long long);                                       \
    extern "C" void rope_heads_##DT(const T*, T*, int, int, int, int, long long);                         \
    extern "C" void merge_heads_##DT(const T*, T*, int, int, int, long long);

MODEL_DECLARE(bf16, bf16_t)
MODEL_DECLARE(f16, f16_t)

namespace {

// The kernels of model.cu use no static shared memory, and a test binary may link them
// without any attention kernel: this anchor keeps the `sqa_sim_shared` section (which
// the simulator requires, see sim.cpp) present in that case.
__attribute__((section("sqa_sim_shared"), used)) unsigned char shared_section_anchor[16];

constexpr unsigned THREADS = 256;

dim3 elementwise_grid(long long count) {
    long long blocks = (count + THREADS - 1) / THREADS;
    return dim3((unsigned)(blocks < 1 ? 1 : blocks > 65535 ? 65535 : blocks));
}

int run(dim3 grid, const std::function<void()>& kernel, char* err, int err_len) {
    // A read of the anchor keeps the linker's section garbage collection from dropping it.
    (void)*static_cast<volatile unsigned char*>(shared_section_anchor);
    const std::string error = sqa_sim::launch(grid, dim3(THREADS), 0, sqa_sim::mode_from_env(), kernel);
    if (error.empty()) return 0;
    sqa_sim::copy_message(error, err, err_len);
    return 1;
}

}  // namespace

// dtype: 0 bf16, 1 f16. 16-bit tensors are raw bits.
extern "C" int sqa_sim_embed(int dtype, const int* tokens, const uint16_t* table, float* h, int d, long long count,
                             char* err, int err_len) {
    return run(elementwise_grid(count), [&] {
        if (dtype == 0) embed_bf16(tokens, (const bf16_t*)table, h, d, count);
        else embed_f16(tokens, (const f16_t*)table, h, d, count);
    }, err, err_len);
}

extern "C" int sqa_sim_rmsnorm(int dtype, const float* x, const uint16_t* g, uint16_t* y, int rows, int d, float eps,
                               char* err, int err_len) {
    return run(dim3((unsigned)((rows + 7) / 8)), [&] {
        if (dtype == 0) rmsnorm_bf16(x, (const bf16_t*)g, (bf16_t*)y, rows, d, eps);
        else rmsnorm_f16(x, (const f16_t*)g, (f16_t*)y, rows, d, eps);
    }, err, err_len);
}

extern "C" int sqa_sim_residual_add(int dtype, float* h, const uint16_t* a, long long count, char* err, int err_len) {
    return run(elementwise_grid(count), [&] {
        if (dtype == 0) residual_add_bf16(h, (const bf16_t*)a, count);
        else residual_add_f16(h, (const f16_t*)a, count);
    }, err, err_len);
}

extern "C" int sqa_sim_swiglu(int dtype, const uint16_t* gate, const uint16_t* up, uint16_t* out, long long count,
                              char* err, int err_len) {
    return run(elementwise_grid(count), [&] {
        if (dtype == 0) swiglu_bf16((const bf16_t*)gate, (const bf16_t*)up, (bf16_t*)out, count);
        else swiglu_f16((const f16_t*)gate, (const f16_t*)up, (f16_t*)out, count);
    }, err, err_len);
}

extern "C" int sqa_sim_rope_heads(int dtype, const uint16_t* x, uint16_t* y, int n, int heads, int dh, int rope,
                                  long long pairs, char* err, int err_len) {
    return run(elementwise_grid(pairs), [&] {
        if (dtype == 0) rope_heads_bf16((const bf16_t*)x, (bf16_t*)y, n, heads, dh, rope, pairs);
        else rope_heads_f16((const f16_t*)x, (f16_t*)y, n, heads, dh, rope, pairs);
    }, err, err_len);
}

extern "C" int sqa_sim_merge_heads(int dtype, const uint16_t* o, uint16_t* y, int n, int heads, int dh,
                                   long long count, char* err, int err_len) {
    return run(elementwise_grid(count), [&] {
        if (dtype == 0) merge_heads_bf16((const bf16_t*)o, (bf16_t*)y, n, heads, dh, count);
        else merge_heads_f16((const f16_t*)o, (f16_t*)y, n, heads, dh, count);
    }, err, err_len);
}
