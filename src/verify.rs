//! Checking a backend's output against the fp64 reference.
//!
//! Full outputs on small shapes, sampled query rows (first, last, window edges,
//! random) at long lengths. Errors propagate NaN: an unwritten or poisoned output
//! element can never pass.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::backend::Backend;
use crate::error::Result;
use crate::inputs::Inputs;
use crate::problem::{AttnShape, Dtype, Pattern, Problem};
use crate::reference;

/// |got - want| <= atol + rtol · |want|, element by element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

impl Tolerance {
    /// Tolerance for an output stored as `dtype`, computed with f32 accumulation.
    ///
    /// f32: ~1e-5 relative. bf16/f16: a few units of the storage rounding, since kernels
    /// round the output and (tensor-core kernels) the probabilities P before P·V.
    pub fn for_output(dtype: Dtype) -> Self {
        match dtype {
            Dtype::F32 => Tolerance {
                atol: 2e-5,
                rtol: 1e-5,
            },
            Dtype::Bf16 => Tolerance {
                atol: 6.0 * dtype.epsilon() * 0.5,
                rtol: 4.0 * dtype.epsilon(),
            },
            Dtype::F16 => Tolerance {
                atol: 6.0 * dtype.epsilon() * 0.5,
                rtol: 4.0 * dtype.epsilon(),
            },
        }
    }
}

/// The outcome of one comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Check {
    /// Largest |got - want| (NaN when any element is NaN or infinite).
    pub max_abs: f64,
    /// Largest |got - want| / |want| over elements with |want| > 1e-3 (NaN as above).
    pub max_rel: f64,
    /// Elements checked.
    pub count: usize,
    /// Elements outside the tolerance (NaN counts as outside).
    pub failures: usize,
    /// First failing element: (index, got, want).
    pub first_failure: Option<(usize, f64, f64)>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.failures == 0 && self.count > 0
    }

    /// `pass`, or `FAIL failures/count (first at i: got vs want)` for a report table.
    pub fn verdict(&self) -> String {
        if self.passed() {
            return "pass".to_string();
        }
        let first = self
            .first_failure
            .map(|(i, g, w)| format!(" (first at {i}: {g} vs {w})"))
            .unwrap_or_default();
        format!("FAIL {}/{}{first}", self.failures, self.count)
    }
}

/// Compares `got` with `want` element by element.
pub fn compare(got: &[f32], want: &[f64], tol: Tolerance) -> Check {
    let mut c = Check {
        max_abs: 0.0,
        max_rel: 0.0,
        count: got.len().min(want.len()),
        failures: 0,
        first_failure: None,
    };
    if got.len() != want.len() {
        c.failures = got.len().max(want.len());
        c.max_abs = f64::NAN;
        c.max_rel = f64::NAN;
        return c;
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        let err = (g - w).abs();
        // `!(a <= b)` is true for NaN: NaN never passes and always shows in the maxima.
        let within = err <= tol.atol + tol.rtol * w.abs();
        let bad = !within;
        if !err.is_finite() {
            c.max_abs = f64::NAN;
            c.max_rel = f64::NAN;
        } else if !c.max_abs.is_nan() {
            c.max_abs = c.max_abs.max(err);
            if w.abs() > 1e-3 {
                c.max_rel = c.max_rel.max(err / w.abs());
            }
        }
        if bad {
            c.failures += 1;
            if c.first_failure.is_none() {
                c.first_failure = Some((i, g, w));
            }
        }
    }
    c
}

/// Query rows worth checking at length `n`: the first and last rows, the middle, rows
/// around the window edge (where masking changes), and `random` rows drawn with `seed`.
pub fn sample_rows(n: usize, pattern: Pattern, random: usize, seed: u64) -> Vec<usize> {
    let mut rows = vec![0, 1, n / 2, n.saturating_sub(2), n - 1];
    if let Pattern::Window(w) = pattern {
        let w = w as usize;
        rows.extend([w.saturating_sub(1), w, w + 1, 2 * w + 3]);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    rows.extend((0..random).map(|_| rng.random_range(0..n)));
    rows.retain(|&r| r < n);
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// Picks rows `rows` out of a full output `[B, H_eff, N, d]` into `[B, H_eff, rows, d]`.
pub fn gather_rows(shape: &AttnShape, full: &[f32], rows: &[usize]) -> Vec<f32> {
    let (n, d) = (shape.seq_len, shape.d_head);
    let heads = shape.batch * shape.heads.eff() as usize;
    let mut out = Vec::with_capacity(heads * rows.len() * d);
    for bh in 0..heads {
        for &r in rows {
            out.extend_from_slice(&full[(bh * n + r) * d..][..d]);
        }
    }
    out
}

/// Checks a full output on `rows` against the reference.
pub fn check_rows(
    shape: &AttnShape,
    inputs: &Inputs,
    output: &[f32],
    rows: &[usize],
    tol: Tolerance,
) -> Check {
    let want = reference::attention_rows(shape, &inputs.q, &inputs.k, &inputs.v, rows);
    let got = gather_rows(shape, output, rows);
    compare(&got, &want, tol)
}

/// Draws the inputs of `problem` from `seed`, runs it once on `backend`, and returns
/// the inputs with the output.
fn run_once(backend: &dyn Backend, problem: &Problem, seed: u64) -> Result<(Inputs, Vec<f32>)> {
    backend.check(problem)?;
    let inputs = Inputs::for_problem(problem, seed);
    let mut prepared = backend.prepare(problem, &inputs)?;
    prepared.run()?;
    let out = prepared.output()?;
    Ok((inputs, out))
}

/// Runs `problem` once on `backend` and checks its output: every row when `rows` is
/// `None`, the given query rows otherwise.
pub fn run_check(
    backend: &dyn Backend,
    problem: &Problem,
    seed: u64,
    rows: Option<&[usize]>,
) -> Result<Check> {
    let (inputs, out) = run_once(backend, problem, seed)?;
    let tol = Tolerance::for_output(backend.output_dtype(problem));
    let all: Vec<usize>;
    let rows = match rows {
        Some(r) => r,
        None => {
            all = (0..problem.shape.seq_len).collect();
            &all
        }
    };
    Ok(check_rows(&problem.shape, &inputs, &out, rows, tol))
}

/// Runs a layer- or model-scope `problem` once on `backend` and checks its whole output
/// (layer output `[B, N, d]` or logits `[B, N, vocab]`) against the f32 forward of
/// `model::cpu` with the fp64 reference attention and the same seeded weights.
///
/// Errors are measured against the output's scale: |got - want| <= tol · max|want|,
/// with tol 1e-4 for f32 storage and a few storage roundings per layer otherwise
/// (backends round attention inputs, and a GPU every activation, to bf16/f16).
pub fn run_scope_check(backend: &dyn Backend, problem: &Problem, seed: u64) -> Result<Check> {
    use crate::model::{cpu, weights};
    let (inputs, got) = run_once(backend, problem, seed)?;
    let mut attention = |shape: &AttnShape, q: &[f32], k: &[f32], v: &[f32]| -> Vec<f32> {
        reference::attention(shape, q, k, v)
            .into_iter()
            .map(|x| x as f32)
            .collect()
    };
    let s = &problem.shape;
    let data = weights::StepData::random(problem, inputs.seed)
        .ok_or_else(|| crate::Error::invalid("kernel scope: use run_check"))?;
    let (want, layers) = match &data {
        weights::StepData::Layer { weights, x } => {
            (cpu::attention_layer(s, weights, x, &mut attention), 1)
        }
        weights::StepData::Model { weights, tokens } => (
            cpu::model_forward(s, weights, tokens, &mut attention),
            weights.layers.len(),
        ),
    };
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs() as f64));
    let tol = match problem.dtype {
        Dtype::F32 => 1e-4,
        dtype => 4.0 * dtype.epsilon() * (2 + 2 * layers) as f64,
    };
    let want: Vec<f64> = want.into_iter().map(f64::from).collect();
    Ok(compare(
        &got,
        &want,
        Tolerance {
            atol: tol * scale,
            rtol: 0.0,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_never_passes_and_shows_in_maxima() {
        let tol = Tolerance::for_output(Dtype::F32);
        let c = compare(&[1.0, f32::NAN, 3.0], &[1.0, 2.0, 3.0], tol);
        assert!(!c.passed());
        assert!(c.max_abs.is_nan());
        assert_eq!(c.failures, 1);
        assert_eq!(c.first_failure.map(|f| f.0), Some(1));
        // NaN first, a finite error later: the maximum stays NaN.
        let c = compare(&[f32::NAN, 5.0], &[0.0, 0.0], tol);
        assert!(c.max_abs.is_nan() && c.failures == 2);
    }

    #[test]
    fn tolerance_is_relative_and_absolute() {
        let tol = Tolerance {
            atol: 0.1,
            rtol: 0.01,
        };
        assert!(compare(&[10.15], &[10.0], tol).passed());
        assert!(!compare(&[10.25], &[10.0], tol).passed());
        assert!(
            !compare(&[1.0], &[1.0, 2.0], tol).passed(),
            "length mismatch fails"
        );
        assert!(
            !compare(&[], &[], tol).passed(),
            "nothing checked is not a pass"
        );
    }

    #[test]
    fn sample_rows_cover_edges() {
        let rows = sample_rows(1000, Pattern::Window(128), 4, 1);
        for r in [0, 1, 500, 998, 999, 127, 128, 129, 259] {
            assert!(rows.contains(&r), "{r} missing from {rows:?}");
        }
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_rows(1, Pattern::Causal, 3, 1), vec![0]);
    }
}
