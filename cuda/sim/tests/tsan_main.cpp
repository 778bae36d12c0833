// tsan_main.cpp: runs one simple-kernel entry point in the simulator's threads mode,
// for ThreadSanitizer (built and run by cuda/sim/tsan.sh, not by cargo).
//
// Usage: tsan_main <entry>, entry = simple | mutant. A small shape (B 1, N 70, H_q 2,
// H_kv 1, d 16, causal): two query blocks of 64 threads each per head.
#include <cstdio>
#include <cstring>
#include <vector>

#include "common.cuh"
#include "launch.h"

extern "C" void attention_simple_bf16_d16(const bf16_t*, const bf16_t*, const bf16_t*, bf16_t*, int, int, int, int,
                                          int, float);
extern "C" void attention_simple_mutant_barrier_bf16_d16(const bf16_t*, const bf16_t*, const bf16_t*, bf16_t*, int,
                                                         int, int, int, int, float);

int main(int argc, char** argv) {
    const bool mutant = argc > 1 && std::strcmp(argv[1], "mutant") == 0;
    const int n = 70, hq = 2, hkv = 1, d = 16;
    std::vector<bf16_t> q(hq * n * d), k(hkv * n * d), v(hkv * n * d), o(hq * n * d);
    unsigned r = 1;
    auto rnd = [&] {
        r = r * 1103515245u + 12345u;
        return from_float<bf16_t>(((int)(r >> 16 & 127) - 64) / 64.0f);
    };
    for (auto* t : {&q, &k, &v})
        for (bf16_t& x : *t) x = rnd();
    const float scale_log2 = 1.4426950408889634f / 4.0f;
    const std::string error =
        sqa_sim::launch(dim3((n + 63) / 64, hq, 1), dim3(64), 0, sqa_sim::Mode::Threads, [&] {
            if (mutant)
                attention_simple_mutant_barrier_bf16_d16(q.data(), k.data(), v.data(), o.data(), n, hq, hkv, 1, 0,
                                                         scale_log2);
            else
                attention_simple_bf16_d16(q.data(), k.data(), v.data(), o.data(), n, hq, hkv, 1, 0, scale_log2);
        });
    if (!error.empty()) {
        std::printf("simulator error: %s\n", error.c_str());
        return 1;
    }
    std::printf("%s: o[0] = %g\n", mutant ? "mutant" : "simple", to_float(o[0]));
    return 0;
}
