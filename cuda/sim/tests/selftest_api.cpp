// selftest_api.cpp: C ABI launching the simulator self-test kernels of selftest.cu
// (called by src/sim.rs, checked by tests/sim_selftest.rs). Each returns 0 on
// success, else 1 with the simulator's message in `err`.
#include <cstdint>
#include <string>

#include "common.cuh"
#include "launch.h"

extern "C" void sim_test_shfl(float* out);
extern "C" void sim_test_diverge(int how, float* out);
extern "C" void sim_test_deadlock(float* out);
extern "C" void sim_test_mma_bf16(int mode, const uint16_t* a, const uint16_t* b, const float* c, float* d);
extern "C" void sim_test_mma_f16(int mode, const uint16_t* a, const uint16_t* b, const float* c, float* d);
extern "C" void sim_test_cp_async(const float* src, float* before, float* mid0, float* mid1, float* after);
extern "C" void sim_test_dynamic_smem(const float* src, float* before, float* after);
extern "C" void sim_test_pack(const float* in, uint32_t* packed_bf16, uint32_t* packed_f16, uint16_t* scalar_bf16,
                              uint16_t* scalar_f16);

namespace {

sqa_sim::Mode mode_of(int threads_mode) { return threads_mode ? sqa_sim::Mode::Threads : sqa_sim::Mode::Fibers; }

int report(const std::string& error, char* err, int err_len) {
    sqa_sim::copy_message(error, err, err_len);
    return error.empty() ? 0 : 1;
}

}  // namespace

// `threads` launches 64 threads (2 warps): out has 6 * 64 floats.
extern "C" int sqa_sim_test_shfl(float* out, int threads_mode, char* err, int err_len) {
    return report(sqa_sim::launch(dim3(1), dim3(64), 0, mode_of(threads_mode), [&] { sim_test_shfl(out); }), err,
                  err_len);
}

// 64 threads; out has 64 floats; `how` as in selftest.cu.
extern "C" int sqa_sim_test_diverge(int how, float* out, int threads_mode, char* err, int err_len) {
    return report(
        sqa_sim::launch(dim3(1), dim3(64), 0, mode_of(threads_mode), [&] { sim_test_diverge(how, out); }), err,
        err_len);
}

// 64 threads; out has 64 floats.
extern "C" int sqa_sim_test_deadlock(float* out, int threads_mode, char* err, int err_len) {
    return report(sqa_sim::launch(dim3(1), dim3(64), 0, mode_of(threads_mode), [&] { sim_test_deadlock(out); }), err,
                  err_len);
}

// dtype 0 bf16, 1 f16; a, b: 16x16 16-bit values; c, d: 16x16 floats.
extern "C" int sqa_sim_test_mma(int dtype, int mode, const uint16_t* a, const uint16_t* b, const float* c, float* d,
                                char* err, int err_len) {
    return report(sqa_sim::launch(dim3(1), dim3(32), 0, sqa_sim::Mode::Fibers,
                                  [&] {
                                      if (dtype == 0)
                                          sim_test_mma_bf16(mode, a, b, c, d);
                                      else
                                          sim_test_mma_f16(mode, a, b, c, d);
                                  }),
                  err, err_len);
}

// 16 threads; every array has 64 floats (src must be 16-byte aligned).
extern "C" int sqa_sim_test_cp_async(const float* src, float* before, float* mid0, float* mid1, float* after,
                                     char* err, int err_len) {
    return report(sqa_sim::launch(dim3(1), dim3(16), 0, sqa_sim::Mode::Fibers,
                                  [&] { sim_test_cp_async(src, before, mid0, mid1, after); }),
                  err, err_len);
}

// `pairs` threads; in has 2 * pairs floats, the outputs `pairs` values each.
extern "C" int sqa_sim_test_pack(int pairs, const float* in, uint32_t* packed_bf16, uint32_t* packed_f16,
                                 uint16_t* scalar_bf16, uint16_t* scalar_f16, char* err, int err_len) {
    return report(sqa_sim::launch(dim3(1), dim3((unsigned)pairs), 2 * 4 * (size_t)pairs, sqa_sim::Mode::Fibers,
                                  [&] { sim_test_pack(in, packed_bf16, packed_f16, scalar_bf16, scalar_f16); }),
                  err, err_len);
}

// 2 blocks of 16 threads, 256 bytes of dynamic shared memory; src has 64 floats
// (16-byte aligned), before and after 128.
extern "C" int sqa_sim_test_dynamic_smem(const float* src, float* before, float* after, char* err, int err_len) {
    return report(sqa_sim::launch(dim3(2), dim3(16), 64 * sizeof(float), sqa_sim::Mode::Fibers,
                                  [&] { sim_test_dynamic_smem(src, before, after); }),
                  err, err_len);
}
