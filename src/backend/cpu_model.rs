//! The CPU backend's layer and model scopes: the f32 forward of `model::cpu`, with
//! attention run by the CPU backend's own kernel and timed separately.

use std::cell::Cell;
use std::time::Instant;

use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, Prepared};
use crate::error::{Error, Result};
use crate::inputs::Inputs;
use crate::model::cpu::{attention_layer, model_forward};
use crate::model::weights::StepData;
use crate::problem::{AttnShape, Dtype, Problem, Scope};

/// Bytes the CPU holds for one step of a layer or model problem: weights, the
/// activations of one layer (x, q, k, v, o, FFN hidden, logits), in f32.
pub fn working_set_bytes(p: &Problem) -> u64 {
    let s = &p.shape;
    let t = (s.batch * s.seq_len) as u64;
    let d = p.d_model as u64;
    let heads =
        (s.heads.q as u64 + 2 * s.heads.kv as u64 + 2 * s.heads.eff() as u64) * s.d_head as u64;
    match p.scope {
        Scope::Kernel => 0,
        Scope::Layer => 4 * (t * (2 * d + 2 * heads) + d * heads * 2),
        Scope::Model(m) => {
            let weights =
                m.layers as u64 * (d * heads * 2 + 3 * d * m.d_ff as u64) + 2 * d * m.vocab as u64;
            4 * (weights + t * (4 * d + 2 * heads + 3 * m.d_ff as u64 + m.vocab as u64))
        }
    }
}

/// A layer or model problem ready to run on the CPU.
pub struct CpuScopePrepared<'a> {
    backend: &'a CpuBackend,
    problem: Problem,
    step: StepData,
    out: Vec<f32>,
    attn_s: f64,
}

impl<'a> CpuScopePrepared<'a> {
    pub fn new(backend: &'a CpuBackend, p: &Problem, seed: u64) -> Result<Self> {
        let step = StepData::random(p, seed)
            .ok_or_else(|| Error::invalid("kernel scope is not a layer or model problem"))?;
        Ok(CpuScopePrepared {
            backend,
            problem: p.clone(),
            step,
            out: Vec::new(),
            attn_s: 0.0,
        })
    }
}

impl Prepared for CpuScopePrepared<'_> {
    fn run(&mut self) -> Result<f64> {
        let t0 = Instant::now();
        let attn_s = Cell::new(0.0f64);
        let failure: Cell<Option<Error>> = Cell::new(None);
        let dtype = self.problem.dtype;
        let backend = self.backend;
        let attn_problem = |shape: &AttnShape| Problem {
            shape: *shape,
            scope: Scope::Kernel,
            ..self.problem.clone()
        };
        // Attention through the CPU backend's kernel, inputs rounded to the storage type as a GPU stores them.
        let mut attention = |shape: &AttnShape, q: &[f32], k: &[f32], v: &[f32]| -> Vec<f32> {
            let round = |x: &[f32]| x.iter().map(|&v| dtype.round(v)).collect::<Vec<f32>>();
            let inputs = Inputs {
                q: round(q),
                k: round(k),
                v: round(v),
                seed: 0,
            };
            let run = || -> Result<Vec<f32>> {
                let mut prepared = backend.prepare(&attn_problem(shape), &inputs)?;
                attn_s.set(attn_s.get() + prepared.run()?);
                prepared.output()
            };
            run().unwrap_or_else(|e| {
                failure.set(Some(e));
                vec![f32::NAN; shape.o_len()]
            })
        };
        let shape = self.problem.shape;
        self.out = match &self.step {
            StepData::Layer { weights, x } => attention_layer(&shape, weights, x, &mut attention),
            StepData::Model { weights, tokens } => {
                model_forward(&shape, weights, tokens, &mut attention)
            }
        };
        if let Some(e) = failure.take() {
            return Err(e);
        }
        self.attn_s = attn_s.get();
        Ok(t0.elapsed().as_secs_f64())
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        Ok(self.out.clone())
    }

    fn attention_seconds(&self) -> Option<f64> {
        Some(self.attn_s)
    }
}

/// The storage type is only a rounding of weights and attention inputs here: the CPU
/// computes layer and model in f32.
pub fn output_dtype() -> Dtype {
    Dtype::F32
}
