// sim.cpp: the runtime of the host SIMT simulator (see sim.h for the model).
//
// A launch runs the blocks of the grid one after the other. Before each block the
// shared memory (the `sqa_sim_shared` linker section holding every `__shared__`
// variable, plus the dynamic shared memory buffer) is filled with 0xFF bytes (NaN).
//
// Fibers (default): every simulated thread of the block is a fiber with its own
// stack (256 KiB, a guard page below) on the launching OS thread. A scheduler resumes
// runnable fibers round-robin; a fiber runs until it waits at a barrier or in a warp
// collective, or exits. On x86-64 the switch is a dozen instructions (callee-saved
// registers, MXCSR and the x87 control word, then the stack pointer); a barrier costs
// about 50 ns of CPU time per thread, a shuffle about 60 ns per lane, scheduler
// included (measured on a shared x86-64 host). Elsewhere, or with SQA_SIM_UCONTEXT,
// ucontext is used: about 7 times slower, since it saves the signal mask with a
// system call.
//
// Threads (SQA_SIM_THREADS=1): one OS thread per simulated thread; waits block on a
// condition variable, so code between barriers really runs concurrently and
// ThreadSanitizer sees the races a missing barrier causes.
//
// Rules checked (each failure ends the launch with a message):
//   * block_sync must be reached by every thread of the block: a thread that exits
//     while others wait at a barrier, or a barrier reached after a thread exited, is a
//     deadlock;
//   * a warp collective needs every lane of the warp in the same collective: a lane
//     that exited, waits at a barrier or waits in another collective is divergence;
//   * no runnable thread left while some wait is a deadlock;
//   * ldmatrix/cp.async shared addresses must be aligned and inside shared memory.
#include "launch.h"

#include <sys/mman.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sim.h"

// The hand-written switch on x86-64; ucontext elsewhere, or when SQA_SIM_UCONTEXT is
// defined (to test that path).
#if defined(__x86_64__) && !defined(SQA_SIM_UCONTEXT)
#define SQA_SIM_ASM_SWITCH 1
#else
#define SQA_SIM_ASM_SWITCH 0
#endif

#if !SQA_SIM_ASM_SWITCH
#include <ucontext.h>
#endif

// Bounds of the section that holds every `__shared__` variable (defined by the linker
// when the section exists; weak so that a build without kernels still links).
extern "C" char __start_sqa_sim_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_sqa_sim_shared[] __attribute__((weak, visibility("hidden")));

// A few bytes of the section defined here keep it present in binaries whose kernels
// have no static shared memory (the runtime reads it, so section garbage collection
// keeps it too).
__attribute__((section("sqa_sim_shared"), used)) static unsigned char g_shared_anchor[16];

namespace sqa_sim {

// ----- 16-bit float conversions ---------------------------------------------------

static float f16_bits_to_float(uint32_t h) {
    const uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return f32_from_bits(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        const float mag = (float)m * 5.9604644775390625e-8f;  // m * 2^-24, exact
        return f32_from_bits(sign | f32_bits(mag));
    }
    return f32_from_bits(sign | ((e + 112) << 23) | (m << 13));
}

static const float* make_f16_table() {
    static float table[65536];
    for (uint32_t h = 0; h < 65536; ++h) table[h] = f16_bits_to_float(h);
    return table;
}
const float* const f16_table = make_f16_table();

uint16_t float_to_f16(float x) {
    uint32_t u = f32_bits(x);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return sign | 0x7e00u;   // NaN
    if (u >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
    if (u >= 0x38800000u) {                       // normal half: rebias, round at bit 13
        u += 0xfffu + ((u >> 13) & 1u);
        return sign | (uint16_t)((u - (112u << 23)) >> 13);
    }
    if (u <= 0x33000000u) return sign;  // <= 2^-25: rounds to zero (ties to even)
    // Subnormal half: the value in units of 2^-24, rounded to nearest even.
    const uint32_t e = u >> 23, m = (u & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return sign | (uint16_t)r;
}

// ----- state ----------------------------------------------------------------------

namespace {

enum class St : unsigned char { Ready, Barrier, Collective, Done };

struct Copy {
    void* dst;
    const void* src;
    bool full;
};

struct Thread {
    uint3 idx{};
    int tid = 0;
    St st = St::Ready;
    void* sp = nullptr;  // saved stack pointer of the fiber (x86-64)
#if !SQA_SIM_ASM_SWITCH
    ucontext_t ctx;
#endif
    const void* in = nullptr;  // operand posted to the current collective
    void* out = nullptr;       // where its result goes
    std::vector<Copy> open;    // cp.async copies not yet committed
    std::deque<std::vector<Copy>> groups;
};

struct Warp {
    int lanes = 0;
    int arrived = 0;     // lanes waiting in the current collective
    int at_barrier = 0;  // lanes waiting at block_sync
    int done = 0;        // lanes that exited
    const void* tag = nullptr;
};

struct Abort {};  // unwinds a simulated OS thread after a failure (threads mode)

struct Block {
    Mode mode = Mode::Fibers;
    dim3 grid, dim;
    uint3 idx{};
    int n = 0;
    int arrived = 0;  // at the barrier
    int done = 0;
    int running = 0;  // threads in St::Ready
    std::vector<Thread> threads;
    std::vector<Warp> warps;
    bool failed = false;
    std::string error;
    const std::function<void()>* kernel = nullptr;
    unsigned char* dyn = nullptr;
    size_t dyn_bytes = 0;
    void* sched_sp = nullptr;
#if !SQA_SIM_ASM_SWITCH
    ucontext_t sched_ctx;
#endif
    std::recursive_mutex mu;  // threads mode only
    std::condition_variable_any cv;
};

thread_local Thread* t_self = nullptr;
thread_local Block* t_block = nullptr;

// Holds the block's lock in threads mode; nothing in fibers mode.
struct Guard {
    std::unique_lock<std::recursive_mutex> lock;
    explicit Guard(Block* b)
        : lock(b->mu, std::defer_lock) {
        if (b->mode == Mode::Threads) lock.lock();
    }
};

}  // namespace

// ----- fibers -----------------------------------------------------------------------

#if SQA_SIM_ASM_SWITCH
// sqa_sim_switch(save, load): saves the callee-saved state on the current stack,
// stores the stack pointer in *save, and resumes the stack `load`.
asm(R"(
    .text
    .p2align 4
    .type sqa_sim_switch,@function
sqa_sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size sqa_sim_switch, .-sqa_sim_switch

    .p2align 4
    .type sqa_sim_trampoline,@function
sqa_sim_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size sqa_sim_trampoline, .-sqa_sim_trampoline
)");
extern "C" void sqa_sim_switch(void** save, void* load);
extern "C" void sqa_sim_trampoline();
#endif

namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;

// Stacks for the fibers of one block, reused by every block of a launch.
struct Stacks {
    unsigned char* base = nullptr;
    size_t bytes = 0;
    explicit Stacks(int n) {
        bytes = (size_t)n * (kStackBytes + kGuardBytes);
        void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            base = nullptr;
            return;
        }
        base = static_cast<unsigned char*>(p);
        for (int i = 0; i < n; ++i) mprotect(base + (size_t)i * (kStackBytes + kGuardBytes), kGuardBytes, PROT_NONE);
    }
    ~Stacks() {
        if (base) munmap(base, bytes);
    }
    unsigned char* top(int i) const { return base + (size_t)(i + 1) * (kStackBytes + kGuardBytes); }
};

void to_scheduler(Thread* t, Block* b) {
#if SQA_SIM_ASM_SWITCH
    sqa_sim_switch(&t->sp, b->sched_sp);
#else
    swapcontext(&t->ctx, &b->sched_ctx);
#endif
}

void thread_exit(Thread* t, Block* b);

void fiber_main(Thread* t) {
    Block* b = t_block;
    (*b->kernel)();
    thread_exit(t, b);
    for (;;) to_scheduler(t, b);  // never resumed once done
}

#if !SQA_SIM_ASM_SWITCH
void fiber_entry_uc(unsigned lo, unsigned hi) {
    fiber_main(reinterpret_cast<Thread*>(((uintptr_t)hi << 32) | lo));
}
#endif

void fiber_init(Thread* t, Block* b, unsigned char* top, unsigned char* bottom) {
#if SQA_SIM_ASM_SWITCH
    (void)b;
    (void)bottom;
    // Frame popped by sqa_sim_switch: [mxcsr, fpucw][r15][r14][r13][r12][rbx][rbp][ret].
    uint64_t* sp = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(top) & ~(uintptr_t)15) - 8;
    uint32_t mxcsr;
    uint16_t fpucw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpucw));
    sp[0] = mxcsr | ((uint64_t)fpucw << 32);
    sp[1] = sp[2] = 0;                                        // r15, r14
    sp[3] = reinterpret_cast<uint64_t>(&fiber_main);          // r13: function
    sp[4] = reinterpret_cast<uint64_t>(t);                    // r12: argument
    sp[5] = sp[6] = 0;                                        // rbx, rbp
    sp[7] = reinterpret_cast<uint64_t>(&sqa_sim_trampoline);  // return address
    t->sp = sp;
#else
    getcontext(&t->ctx);
    t->ctx.uc_stack.ss_sp = bottom;
    t->ctx.uc_stack.ss_size = (size_t)(top - bottom);
    t->ctx.uc_link = nullptr;
    const uintptr_t p = reinterpret_cast<uintptr_t>(t);
    makecontext(&t->ctx, reinterpret_cast<void (*)()>(&fiber_entry_uc), 2, (unsigned)(p & 0xffffffffu),
                (unsigned)(p >> 32));
    (void)b;
#endif
}

void resume(Thread* t, Block* b) {
    t_self = t;
#if SQA_SIM_ASM_SWITCH
    sqa_sim_switch(&b->sched_sp, t->sp);
#else
    swapcontext(&b->sched_ctx, &t->ctx);
#endif
}

// ----- failures and waiting -----------------------------------------------------------

std::string where(const Block* b, const Thread* t) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "block (%u,%u,%u) thread (%u,%u,%u): ", b->idx.x, b->idx.y, b->idx.z, t->idx.x,
                  t->idx.y, t->idx.z);
    return buf;
}

// Records the first failure of the block and leaves the failing thread for good.
[[noreturn]] void fail_here(Block* b, Thread* t, const std::string& msg) {
    if (!b->failed) {
        b->failed = true;
        b->error = where(b, t) + msg;
    }
    if (b->mode == Mode::Threads) {
        b->cv.notify_all();
        throw Abort{};
    }
    for (;;) to_scheduler(t, b);
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

void set_state(Block* b, Thread* t, St st) {
    Warp& w = b->warps[t->tid / 32];
    if (t->st == St::Ready) --b->running;
    if (t->st == St::Barrier) --w.at_barrier;
    if (st == St::Ready) ++b->running;
    if (st == St::Barrier) ++w.at_barrier;
    if (st == St::Done) ++w.done;
    t->st = st;
}

// The first lane of warp `wi` in state `st` (for error messages).
int first_lane_in(const Block* b, int wi, St st) {
    for (int l = 0; l < b->warps[wi].lanes; ++l)
        if (b->threads[wi * 32 + l].st == st) return l;
    return -1;
}

// Blocks the calling thread until another thread releases it (t->st back to Ready).
void wait(Block* b, Thread* t, Guard& g) {
    if (b->mode == Mode::Fibers) {
        while (t->st != St::Ready) to_scheduler(t, b);
        return;
    }
    if (b->running == 0)
        fail_here(b, t, format("deadlock: every live thread waits (%d at block_sync, the others in warp collectives)",
                               b->arrived));
    b->cv.wait(g.lock, [&] { return t->st == St::Ready || b->failed; });
    if (b->failed) throw Abort{};
}

void thread_exit(Thread* t, Block* b) {
    Guard g(b);
    set_state(b, t, St::Done);
    ++b->done;
    if (b->arrived > 0)
        fail_here(b, t, format("deadlock: thread %d exited while %d thread(s) wait at block_sync", t->tid, b->arrived));
    const Warp& w = b->warps[t->tid / 32];
    if (w.arrived > 0)
        fail_here(b, t, format("divergence: lane %d exited while %d lane(s) of warp %d wait in a warp collective",
                               t->tid % 32, w.arrived, t->tid / 32));
    if (b->mode == Mode::Threads) b->cv.notify_all();
}

void release(Block* b, St from) {
    for (Thread& o : b->threads)
        if (o.st == from) set_state(b, &o, St::Ready);
    if (b->mode == Mode::Threads) b->cv.notify_all();
}

unsigned char* shared_begin() { return reinterpret_cast<unsigned char*>(__start_sqa_sim_shared); }
unsigned char* shared_end() { return reinterpret_cast<unsigned char*>(__stop_sqa_sim_shared); }

}  // namespace

// ----- hooks used by sim.h / common.cuh --------------------------------------------------

const uint3& thread_idx() { return t_self->idx; }
const uint3& block_idx() { return t_block->idx; }
const dim3& block_dim() { return t_block->dim; }
const dim3& grid_dim() { return t_block->grid; }
void* dynamic_smem() { return t_block->dyn; }

void fail(const char* msg) {
    Block* b = t_block;
    Guard g(b);
    fail_here(b, t_self, msg);
}

void block_sync() {
    Block* b = t_block;
    Thread* t = t_self;
    Guard g(b);
    const Warp& w = b->warps[t->tid / 32];
    if (w.arrived > 0)
        fail_here(b, t, format("divergence: lane %d reached block_sync while %d lane(s) of warp %d wait in a warp collective",
                               t->tid % 32, w.arrived, t->tid / 32));
    if (b->done > 0)
        fail_here(b, t, format("deadlock: block_sync reached after %d thread(s) of the block exited", b->done));
    set_state(b, t, St::Barrier);
    if (++b->arrived == b->n) {
        b->arrived = 0;
        release(b, St::Barrier);
        return;
    }
    wait(b, t, g);
}

void warp_collective(const void* tag, const void* in, void* out, CollectiveRun run, const void* fn) {
    Block* b = t_block;
    Thread* t = t_self;
    Guard g(b);
    const int wi = t->tid / 32;
    Warp& w = b->warps[wi];
    const int first = wi * 32;
    if (w.done > 0)
        fail_here(b, t, format("divergence: lane %d entered a warp collective after lane %d of warp %d exited",
                               t->tid % 32, first_lane_in(b, wi, St::Done), wi));
    if (w.at_barrier > 0)
        fail_here(b, t, format("divergence: lane %d entered a warp collective while lane %d of warp %d waits at block_sync",
                               t->tid % 32, first_lane_in(b, wi, St::Barrier), wi));
    if (w.arrived == 0) {
        w.tag = tag;
    } else if (w.tag != tag) {
        fail_here(b, t, format("divergence: lanes of warp %d are in different warp collectives", wi));
    }
    t->in = in;
    t->out = out;
    set_state(b, t, St::Collective);
    if (++w.arrived < w.lanes) {
        wait(b, t, g);
        return;
    }
    const void* ins[32] = {};
    void* outs[32] = {};
    for (int l = 0; l < w.lanes; ++l) {
        ins[l] = b->threads[first + l].in;
        outs[l] = b->threads[first + l].out;
    }
    run(ins, outs, fn);
    w.arrived = 0;
    for (int l = 0; l < w.lanes; ++l) set_state(b, &b->threads[first + l], St::Ready);
    if (b->mode == Mode::Threads) b->cv.notify_all();
}

void check_shared(const void* p, size_t bytes, size_t align, const char* what) {
    const unsigned char* c = static_cast<const unsigned char*>(p);
    const Block* b = t_block;
    const bool in_static = c >= shared_begin() && c + bytes <= shared_end();
    const bool in_dynamic = b->dyn && c >= b->dyn && c + bytes <= b->dyn + b->dyn_bytes;
    if (!in_static && !in_dynamic) fail(format("%s %p is not in shared memory", what, p).c_str());
    if (reinterpret_cast<uintptr_t>(p) % align != 0)
        fail(format("%s %p is not aligned to %zu bytes", what, p, align).c_str());
}

void cp_async_16(void* smem, const void* gmem, bool full) {
    check_shared(smem, 16, 16, "cp.async destination");
    if (full && reinterpret_cast<uintptr_t>(gmem) % 16 != 0)
        fail(format("cp.async source %p is not aligned to 16 bytes", gmem).c_str());
    t_self->open.push_back(Copy{smem, gmem, full});
}

void cp_async_commit() {
    Thread* t = t_self;
    t->groups.push_back(std::move(t->open));
    t->open.clear();
}

void cp_async_wait(int pending) {
    Thread* t = t_self;
    while ((int)t->groups.size() > pending) {
        for (const Copy& c : t->groups.front()) {
            if (c.full)
                std::memcpy(c.dst, c.src, 16);
            else
                std::memset(c.dst, 0, 16);
        }
        t->groups.pop_front();
    }
}

// ----- launch ---------------------------------------------------------------------------

Mode mode_from_env() {
    const char* v = std::getenv("SQA_SIM_THREADS");
    return (v && v[0] == '1') ? Mode::Threads : Mode::Fibers;
}

void copy_message(const std::string& msg, char* buf, int len) {
    if (!buf || len <= 0) return;
    const size_t n = std::min(msg.size(), (size_t)len - 1);
    std::memcpy(buf, msg.data(), n);
    buf[n] = 0;
}

namespace {

std::mutex g_launch_mu;

void run_fibers(Block* b, const Stacks& stacks) {
    for (int i = 0; i < b->n; ++i) fiber_init(&b->threads[i], b, stacks.top(i), stacks.top(i) - kStackBytes);
    for (;;) {
        bool progressed = false;
        for (int i = 0; i < b->n && !b->failed; ++i) {
            if (b->threads[i].st != St::Ready) continue;
            resume(&b->threads[i], b);
            progressed = true;
        }
        if (b->failed || b->done == b->n) return;
        if (!progressed) {
            b->failed = true;
            b->error = format("block (%u,%u,%u): deadlock: no thread can run (%d wait at block_sync, %d exited)",
                              b->idx.x, b->idx.y, b->idx.z, b->arrived, b->done);
            return;
        }
    }
}

void run_threads(Block* b) {
    std::vector<std::thread> pool;
    pool.reserve(b->n);
    for (int i = 0; i < b->n; ++i) {
        pool.emplace_back([b, i] {
            t_block = b;
            t_self = &b->threads[i];
            try {
                (*b->kernel)();
                thread_exit(t_self, b);
            } catch (const Abort&) {
            }
        });
    }
    for (std::thread& th : pool) th.join();
}

}  // namespace

std::string launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, Mode mode, const std::function<void()>& kernel) {
    const size_t n = (size_t)block.x * block.y * block.z;
    if (n == 0 || n > 1024) return format("block of %zu threads (must be 1..1024)", n);
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) return "empty grid";
    // build.rs moves every `__shared__` variable into this section; without it the
    // poison would silently be missing.
    (void)*static_cast<volatile unsigned char*>(g_shared_anchor);
    if (!shared_begin() || shared_end() <= shared_begin())
        return "no sqa_sim_shared section: static shared memory cannot be poisoned (see build.rs)";
    std::lock_guard<std::mutex> launch_lock(g_launch_mu);

    std::unique_ptr<unsigned char, void (*)(void*)> dyn(
        static_cast<unsigned char*>(std::aligned_alloc(128, (dynamic_smem_bytes + 127) / 128 * 128 + 128)), &std::free);
    std::unique_ptr<Stacks> stacks;
    if (mode == Mode::Fibers) {
        stacks.reset(new Stacks((int)n));
        if (!stacks->base) return "cannot allocate fiber stacks";
    }
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                Block b;
                b.mode = mode;
                b.grid = grid;
                b.dim = block;
                b.idx = uint3{bx, by, bz};
                b.n = (int)n;
                b.running = (int)n;
                b.kernel = &kernel;
                b.dyn = dynamic_smem_bytes ? dyn.get() : nullptr;
                b.dyn_bytes = dynamic_smem_bytes;
                b.threads.resize(n);
                for (size_t i = 0; i < n; ++i) {
                    Thread& t = b.threads[i];
                    t.tid = (int)i;
                    t.idx = uint3{(unsigned)(i % block.x), (unsigned)(i / block.x % block.y),
                                  (unsigned)(i / ((size_t)block.x * block.y))};
                }
                b.warps.resize((n + 31) / 32);
                for (size_t w = 0; w < b.warps.size(); ++w) b.warps[w].lanes = (int)std::min<size_t>(32, n - 32 * w);
                std::memset(shared_begin(), 0xff, (size_t)(shared_end() - shared_begin()));
                if (b.dyn) std::memset(b.dyn, 0xff, dynamic_smem_bytes);
                t_block = &b;
                if (mode == Mode::Fibers)
                    run_fibers(&b, *stacks);
                else
                    run_threads(&b);
                t_block = nullptr;
                t_self = nullptr;
                if (b.failed) return b.error;
            }
    return "";
}

}  // namespace sqa_sim
