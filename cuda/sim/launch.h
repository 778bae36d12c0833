// launch.h: the simulator's launch interface, used by the C ABI files (api.cpp, tests/).
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace sqa_sim {

enum class Mode {
    // All threads of a block are cooperative fibers on one OS thread (fast, default).
    Fibers,
    // One OS thread per simulated thread, blocked on a condition variable at
    // barriers and collectives (slow; for ThreadSanitizer on small shapes).
    Threads,
};

// Threads when the environment variable SQA_SIM_THREADS is set to 1, else Fibers.
Mode mode_from_env();

// Runs `kernel` once per simulated thread of every block of `grid`, blocks one after
// the other, with `dynamic_smem_bytes` of dynamic shared memory. Launches are
// serialised process-wide (shared memory is one static copy). Returns "" on success,
// else one line saying what went wrong and where.
std::string launch(dim3 grid, dim3 block, size_t dynamic_smem_bytes, Mode mode, const std::function<void()>& kernel);

// Copies `msg` into a C buffer of `len` bytes (always NUL-terminated when len > 0).
void copy_message(const std::string& msg, char* buf, int len);

}  // namespace sqa_sim
