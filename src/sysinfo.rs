//! Facts about the host: CPU model, memory, git commit.

/// The CPU model name from /proc/cpuinfo, or the architecture where that is unreadable.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| format!("{} CPU", std::env::consts::ARCH))
}

/// Memory the system can give a new allocation without swapping (MemAvailable), in bytes.
pub fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The commit the binary was built from (`-dirty` when the tree had changes), recorded
/// by build.rs; `None` for a build outside a git checkout.
pub fn git_commit() -> Option<String> {
    option_env!("SQA_BENCH_GIT_COMMIT").map(String::from)
}
