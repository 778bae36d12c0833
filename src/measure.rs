//! The measurement loop shared by every backend: warm-up, then timed repetitions until
//! both a minimum count and a minimum total time are reached, then statistics.
//!
//! The backend times each repetition itself (CUDA events on a GPU, a monotonic clock
//! on the CPU) and hands back seconds; nothing here allocates inside the timed region.

use crate::error::{Error, Result};

/// How long to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureConfig {
    /// Untimed runs first (compilation caches, clocks, page faults).
    pub warmup: u32,
    /// At least this many timed runs.
    pub min_iters: u32,
    /// And at least this many seconds of timed runs in total.
    pub min_time_s: f64,
    /// Never more than this many timed runs.
    pub max_iters: u32,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        MeasureConfig {
            warmup: 2,
            min_iters: 5,
            min_time_s: 0.2,
            max_iters: 1000,
        }
    }
}

impl MeasureConfig {
    pub fn validate(&self) -> Result<()> {
        if self.min_iters == 0 {
            return Err(Error::invalid("--min-iters must be at least 1"));
        }
        if !(self.min_time_s >= 0.0 && self.min_time_s.is_finite()) {
            return Err(Error::invalid(
                "--min-time must be a non-negative number of seconds",
            ));
        }
        if self.max_iters < self.min_iters {
            return Err(Error::invalid(
                "max iterations must be at least --min-iters",
            ));
        }
        Ok(())
    }
}

/// Statistics of the timed runs, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub iters: u32,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub mean_s: f64,
    /// Coefficient of variation: sample standard deviation / mean.
    pub cv: f64,
}

impl Stats {
    /// Statistics of a non-empty list of durations.
    pub fn from_samples(samples: &[f64]) -> Result<Stats> {
        if samples.is_empty() {
            return Err(Error::invalid("no timed samples"));
        }
        if let Some(bad) = samples.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
            return Err(Error::invalid(format!("invalid duration {bad} s")));
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
        };
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            sorted.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Ok(Stats {
            iters: n as u32,
            median_s: median,
            min_s: sorted[0],
            max_s: sorted[n - 1],
            mean_s: mean,
            cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        })
    }
}

/// Runs `once` (which performs one repetition and returns its duration in seconds)
/// `warmup` times untimed, then until both minimums are met, and returns the statistics.
pub fn measure(cfg: &MeasureConfig, mut once: impl FnMut() -> Result<f64>) -> Result<Stats> {
    for _ in 0..cfg.warmup {
        once()?;
    }
    let mut samples = Vec::with_capacity(cfg.min_iters as usize);
    let mut total = 0.0;
    while samples.len() < cfg.max_iters as usize
        && (samples.len() < cfg.min_iters as usize || total < cfg.min_time_s)
    {
        let s = once()?;
        total += s;
        samples.push(s);
    }
    Stats::from_samples(&samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_known_samples() {
        let s = Stats::from_samples(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(
            (s.iters, s.median_s, s.min_s, s.max_s, s.mean_s),
            (4, 2.5, 1.0, 10.0, 4.0)
        );
        let sd = ((1.0 + 9.0 + 4.0 + 36.0) / 3.0f64).sqrt();
        assert!((s.cv - sd / 4.0).abs() < 1e-12);
        assert_eq!(Stats::from_samples(&[5.0]).unwrap().cv, 0.0);
        assert!(Stats::from_samples(&[]).is_err());
        assert!(Stats::from_samples(&[1.0, f64::NAN]).is_err());
    }

    #[test]
    fn runs_warmup_then_until_count_and_time() {
        let mut calls = 0;
        let cfg = MeasureConfig {
            warmup: 3,
            min_iters: 4,
            min_time_s: 1.0,
            max_iters: 100,
        };
        let s = measure(&cfg, || {
            calls += 1;
            Ok(0.125)
        })
        .unwrap();
        // 1.0 s of 0.125 s runs needs 8 timed runs (more than min_iters), plus 3 warm-ups.
        assert_eq!(s.iters, 8);
        assert_eq!(calls, 11);

        let cfg = MeasureConfig {
            warmup: 0,
            min_iters: 4,
            min_time_s: 0.0,
            max_iters: 100,
        };
        assert_eq!(measure(&cfg, || Ok(1.0)).unwrap().iters, 4);
        let cfg = MeasureConfig {
            warmup: 0,
            min_iters: 2,
            min_time_s: 1e9,
            max_iters: 7,
        };
        assert_eq!(measure(&cfg, || Ok(1.0)).unwrap().iters, 7);
    }

    #[test]
    fn errors_stop_the_measurement() {
        let cfg = MeasureConfig::default();
        let mut n = 0;
        let r = measure(&cfg, || {
            n += 1;
            if n == 3 {
                Err(Error::invalid("boom"))
            } else {
                Ok(0.01)
            }
        });
        assert!(r.is_err());
    }
}
