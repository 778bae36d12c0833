/* device_check.cu: the simulator's self-test kernels and the simple attention kernel
 * on a real GPU, against an fp64 host reference. Not built by cargo: it checks that
 * what the simulator emulates (mma/ldmatrix fragment layouts, pack operand order,
 * shuffles) is what the hardware does.
 *
 *   nvcc -arch=sm_90 -O2 -I cuda -o device_check cuda/sim/tests/device_check.cu && ./device_check
 *
 * Exit status 0 when every check passes. Inputs are multiples of 1/64 in [-1, 1), exact
 * in bf16 and f16, so the mma products are exact and only the f32 sums round.
 */
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "attention_simple.cu"
#include "sim/tests/selftest.cu"

namespace {

// 16-bit storage <-> float on the host (dtype 0 bf16, 1 f16; normal values and zero).
float to_f32(int dtype, uint16_t h) {
    uint32_t u;
    if (dtype == 0) {
        u = (uint32_t)h << 16;
    } else {
        const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = h >> 10 & 31, m = h & 1023;
        if (e == 0) return (sign ? -1.0f : 1.0f) * (float)m * 5.9604645e-8f;  // subnormal: m * 2^-24
        u = sign | (e + 112) << 23 | m << 13;
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t from_f32(int dtype, float f) {  // exact for the test values only
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (dtype == 0) return (uint16_t)(u >> 16);
    if (f == 0.0f) return 0;
    return (uint16_t)((u >> 16 & 0x8000) | ((u >> 23 & 255) - 112) << 10 | (u >> 13 & 1023));
}

unsigned seed = 1;
float random_value() {  // k / 64 for k in -64..63
    seed = seed * 1103515245u + 12345u;
    return ((int)(seed >> 16 & 127) - 64) / 64.0f;
}

template <class T>
T* upload(const std::vector<T>& v) {
    T* p;
    cudaMalloc(&p, v.size() * sizeof(T) + 16);
    cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
    return p;
}

template <class T>
std::vector<T> download(const T* p, size_t n) {
    std::vector<T> v(n);
    cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
}

// D = A.B + C through sim_test_mma in every fragment mode; returns the number of failures.
int check_mma() {
    int bad = 0;
    for (int dtype = 0; dtype < 2; ++dtype)
        for (int mode = 0; mode < 4; ++mode) {
            std::vector<uint16_t> a(256), b(256);
            std::vector<float> c(256);
            for (int i = 0; i < 256; ++i) {
                a[i] = from_f32(dtype, random_value());
                b[i] = from_f32(dtype, random_value());
                c[i] = random_value();
            }
            float* d;
            cudaMalloc(&d, 256 * sizeof(float));
            if (dtype == 0)
                sim_test_mma_bf16<<<1, 32>>>(mode, upload(a), upload(b), upload(c), d);
            else
                sim_test_mma_f16<<<1, 32>>>(mode, upload(a), upload(b), upload(c), d);
            const std::vector<float> got = download(d, 256);
            double worst = 0;
            for (int i = 0; i < 16; ++i)
                for (int j = 0; j < 16; ++j) {
                    double want = c[i * 16 + j];
                    for (int k = 0; k < 16; ++k)
                        want += (double)to_f32(dtype, a[i * 16 + k]) * to_f32(dtype, b[k * 16 + j]);
                    const double err = std::fabs(want - got[i * 16 + j]);
                    worst = err <= worst ? worst : err;  // NaN propagates
                }
            const bool ok = worst <= 1e-5;
            bad += !ok;
            std::printf("%s mma dtype %d mode %d: max error %g\n", ok ? "ok  " : "FAIL", dtype, mode, worst);
        }
    return bad;
}

// The simple kernel on one shape against the fp64 reference; returns 1 on failure.
int check_simple(int dtype, int d, int n, int hq, int hkv, int causal, int window) {
    const int batch = 2, he = hq > hkv ? hq : hkv;
    std::vector<uint16_t> q((size_t)batch * hq * n * d), k((size_t)batch * hkv * n * d), v(k.size());
    for (auto* t : {&q, &k, &v})
        for (uint16_t& x : *t) x = from_f32(dtype, random_value());
    const size_t o_len = (size_t)batch * he * n * d;
    uint16_t* o;
    cudaMalloc(&o, o_len * 2);
    const float scale_log2 = (float)(1.4426950408889634 / std::sqrt((double)d));
    const dim3 grid((n + 63) / 64, he, batch);
#define SQA_LAUNCH(D)                                                                                            \
    if (d == D) {                                                                                                \
        if (dtype == 0)                                                                                          \
            attention_simple_bf16_d##D<<<grid, 64>>>((bf16_t*)upload(q), (bf16_t*)upload(k), (bf16_t*)upload(v), \
                                                     (bf16_t*)o, n, hq, hkv, causal, window, scale_log2);        \
        else                                                                                                     \
            attention_simple_f16_d##D<<<grid, 64>>>((f16_t*)upload(q), (f16_t*)upload(k), (f16_t*)upload(v),     \
                                                    (f16_t*)o, n, hq, hkv, causal, window, scale_log2);          \
    }
    SQA_LAUNCH(16) SQA_LAUNCH(32) SQA_LAUNCH(64) SQA_LAUNCH(128)
    const std::vector<uint16_t> got = download(o, o_len);
    const double eps = dtype == 0 ? 1.0 / 256 : 1.0 / 2048;  // unit roundoff of the storage type
    double worst = 0;
    int failures = 0;
    for (int b = 0; b < batch; ++b)
        for (int j = 0; j < he; ++j)
            for (int i = 0; i < n; ++i) {
                const int qh = j % hq, kh = j / (he / hkv);
                const int lo = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0, hi = causal ? i : n - 1;
                std::vector<double> p(n);
                double m = -1e300, sum = 0;
                for (int t = lo; t <= hi; ++t) {
                    double s = 0;
                    for (int c = 0; c < d; ++c)
                        s += (double)to_f32(dtype, q[(((size_t)b * hq + qh) * n + i) * d + c]) *
                             to_f32(dtype, k[(((size_t)b * hkv + kh) * n + t) * d + c]);
                    p[t] = s / std::sqrt((double)d);
                    m = p[t] > m ? p[t] : m;
                }
                for (int t = lo; t <= hi; ++t) sum += p[t] = std::exp(p[t] - m);
                for (int c = 0; c < d; ++c) {
                    double want = 0;
                    for (int t = lo; t <= hi; ++t) want += p[t] * to_f32(dtype, v[(((size_t)b * hkv + kh) * n + t) * d + c]);
                    want /= sum;
                    const double err = std::fabs(to_f32(dtype, got[(((size_t)b * he + j) * n + i) * d + c]) - want);
                    if (!(err <= 3 * eps + 4 * eps * std::fabs(want))) ++failures;  // the Rust tolerance
                    worst = err <= worst ? worst : err;
                }
            }
    std::printf("%s simple dtype %d d %d N %d H_q %d H_kv %d causal %d window %d: max error %g, %d failures\n",
                failures ? "FAIL" : "ok  ", dtype, d, n, hq, hkv, causal, window, worst, failures);
    return failures > 0;
}

int check_pack_and_shuffle() {
    int bad = 0;
    std::vector<float> in(512);
    for (int i = 0; i < 512; ++i) in[i] = 1.0f + i;
    uint32_t *pb, *ph;
    uint16_t *sb, *sh;
    cudaMalloc(&pb, 1024), cudaMalloc(&ph, 1024), cudaMalloc(&sb, 512), cudaMalloc(&sh, 512);
    sim_test_pack<<<1, 256, 2 * 4 * 256>>>(upload(in), pb, ph, sb, sh);
    const uint32_t bf = download(pb, 1)[0], hf = download(ph, 1)[0];
    const bool pack_ok = bf == 0x40003f80u && hf == 0x40003c00u;  // (lo 1.0, hi 2.0)
    bad += !pack_ok;
    std::printf("%s pack_bf16x2(1, 2) = %08x, pack_f16x2(1, 2) = %08x\n", pack_ok ? "ok  " : "FAIL", bf, hf);
    float* out;
    cudaMalloc(&out, 6 * 64 * sizeof(float));
    sim_test_shfl<<<1, 64>>>(out);
    const std::vector<float> s = download(out, 6 * 64);
    int wrong = 0;
    for (int t = 0; t < 64; ++t) {
        for (int i = 0; i < 5; ++i) wrong += s[6 * t + i] != (float)(t ^ (1 << i));
        wrong += s[6 * t + 5] != (float)(t / 32 * 32 * 32 + 496);  // sum of the warp's lane ids
    }
    bad += wrong > 0;
    std::printf("%s shuffles: %d wrong\n", wrong ? "FAIL" : "ok  ", wrong);
    return bad;
}

}  // namespace

int main() {
    int bad = check_mma();
    const int shapes[][7] = {
        // dtype, d, N, H_q, H_kv, causal, window
        {0, 64, 129, 8, 2, 1, 0}, {1, 64, 129, 8, 2, 0, 0}, {0, 128, 200, 2, 4, 1, 48}, {1, 128, 200, 2, 4, 1, 5},
        {0, 16, 65, 4, 1, 1, 5},  {1, 32, 300, 4, 4, 1, 48}, {0, 32, 7, 3, 3, 0, 0},    {1, 16, 1, 4, 2, 1, 0},
    };
    for (const auto& s : shapes) bad += check_simple(s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
    bad += check_pack_and_shuffle();
    const cudaError_t e = cudaDeviceSynchronize();
    std::printf("CUDA: %s\n%d check(s) failed\n", cudaGetErrorString(e), bad);
    return bad != 0 || e != cudaSuccess;
}
