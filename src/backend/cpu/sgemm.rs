//! The machine's own f32 matrix-multiply rate, the yardstick of the CPU backend's
//! GFLOP/s: a large sgemm through `matrixmultiply` (threaded over the physical cores,
//! with its own runtime pick of AVX-512/AVX2/SSE kernels), measured once per process.

use std::sync::OnceLock;
use std::time::Instant;

/// Matrix size of the measurement: C = A·B with n × n operands.
pub const SGEMM_N: usize = 1024;
/// Timed repetitions; the best one counts.
const REPS: usize = 20;

/// A measured f32 peak.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    /// Best sgemm rate in GFLOP/s (2·n³ flops per multiply).
    pub gflops: f64,
    /// What was measured, for `meta.json`.
    pub source: String,
}

/// The peak of this process, measured on first use (about a third of a second).
pub fn peak() -> &'static Peak {
    static PEAK: OnceLock<Peak> = OnceLock::new();
    PEAK.get_or_init(|| Peak {
        gflops: measure_sgemm(SGEMM_N, REPS),
        source: format!(
            "measured sgemm {SGEMM_N}^3 f32, matrixmultiply with {} threads, best of {REPS}",
            matmul_threads()
        ),
    })
}

/// Threads matrixmultiply uses: `MATMUL_NUM_THREADS`, else the physical cores.
fn matmul_threads() -> String {
    std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "its default (physical cores)".into())
}

/// Best rate of `reps` timed `n × n × n` sgemms (after one warm-up), in GFLOP/s.
pub fn measure_sgemm(n: usize, reps: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 17) as f32 - 8.0) / 16.0).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 13) as f32 - 6.0) / 16.0).collect();
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    for rep in 0..=reps {
        let t0 = Instant::now();
        // SAFETY: a, b and c are n × n row-major buffers (row stride n, column stride 1)
        // that live across the call; c does not alias a or b.
        unsafe {
            matrixmultiply::sgemm(
                n,
                n,
                n,
                1.0,
                a.as_ptr(),
                n as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        let t = t0.elapsed().as_secs_f64();
        if rep > 0 {
            best = best.min(t);
        }
    }
    std::hint::black_box(&c);
    2.0 * (n as f64).powi(3) / best / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sgemm_rate_is_positive_and_finite() {
        let g = measure_sgemm(64, 2);
        assert!(g.is_finite() && g > 0.0, "{g}");
    }
}
