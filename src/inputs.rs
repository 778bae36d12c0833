//! Random attention inputs: seeded, never zero, freshly drawn per problem.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::problem::{AttnShape, Dtype};

/// Q, K and V as the f32 values a kernel reads (already rounded to the storage type).
#[derive(Debug, Clone)]
pub struct Inputs {
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// The seed the inputs were drawn with (layer and model scopes draw their weights from it).
    pub seed: u64,
}

/// Uniform on ±[0.05, sqrt(3)] with a random sign (variance close to 1, never zero),
/// rounded to `dtype`. Scores then have a spread comparable to a trained model's,
/// which exercises the online softmax's rescaling.
pub fn fill(len: usize, dtype: Dtype, rng: &mut StdRng) -> Vec<f32> {
    let hi = 3f32.sqrt();
    (0..len)
        .map(|_| {
            let mag: f32 = rng.random_range(0.05..hi);
            let x = if rng.random::<bool>() { mag } else { -mag };
            dtype.round(x)
        })
        .collect()
}

impl Inputs {
    /// Draws Q, K, V for `shape`. The same (shape, dtype, seed) always gives the same inputs.
    pub fn random(shape: &AttnShape, dtype: Dtype, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        Inputs {
            q: fill(shape.q_len(), dtype, &mut rng),
            k: fill(shape.kv_len(), dtype, &mut rng),
            v: fill(shape.kv_len(), dtype, &mut rng),
            seed,
        }
    }
}

impl Inputs {
    /// The inputs of `p` for a run seeded with `run_seed`: random Q, K, V at kernel scope;
    /// at layer and model scope only the seed, from which the backend draws its weights
    /// and layer input or token ids (`model::weights::StepData`).
    pub fn for_problem(p: &crate::problem::Problem, run_seed: u64) -> Self {
        let seed = problem_seed(run_seed, &p.shape);
        match p.scope {
            crate::problem::Scope::Kernel => Inputs::random(&p.shape, p.dtype, seed),
            _ => Inputs {
                q: Vec::new(),
                k: Vec::new(),
                v: Vec::new(),
                seed,
            },
        }
    }
}

/// A per-problem seed: the run's seed mixed with the problem's shape, so every problem
/// gets fresh inputs and a rerun with the same seed gets the same ones.
pub fn problem_seed(run_seed: u64, shape: &AttnShape) -> u64 {
    let mut h = run_seed ^ 0x9E37_79B9_7F4A_7C15;
    for x in [
        shape.batch as u64,
        shape.seq_len as u64,
        shape.heads.q as u64,
        shape.heads.kv as u64,
        shape.d_head as u64,
        shape.pattern.window() as u64 + shape.pattern.kind().len() as u64 * 1_000_003,
    ] {
        h = (h ^ x).wrapping_mul(0x100_0000_01B3).rotate_left(29);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Heads, Pattern};

    #[test]
    fn seeded_nonzero_and_rounded() {
        let shape = AttnShape {
            batch: 1,
            seq_len: 64,
            heads: Heads {
                total: 2,
                q: 2,
                kv: 1,
            },
            d_head: 16,
            pattern: Pattern::Causal,
        };
        let a = Inputs::random(&shape, Dtype::Bf16, 7);
        let b = Inputs::random(&shape, Dtype::Bf16, 7);
        let c = Inputs::random(&shape, Dtype::Bf16, 8);
        assert_eq!(a.q, b.q);
        assert_ne!(a.q, c.q);
        assert_eq!(a.q.len(), shape.q_len());
        assert_eq!(a.k.len(), shape.kv_len());
        assert!(a
            .q
            .iter()
            .chain(&a.k)
            .chain(&a.v)
            .all(|&x| x != 0.0 && x.abs() < 1.8));
        assert!(a.q.iter().all(|&x| Dtype::Bf16.round(x) == x));
    }
}
