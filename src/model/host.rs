//! Runs a [`Program`] on the CPU the way the CUDA backend runs it on a GPU: every
//! activation but the f32 residual stream is stored in the problem's dtype, GEMMs take
//! storage-type operands with f32 accumulation, and the elementwise and attention ops
//! are the very kernels of `cuda/`, executed by the host simulator. Tests compare it with
//! `model::cpu`, which checks the program that the GPU executor follows.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::program::{Buf, Op, Program};
use crate::model::weights::{Matrix, StepData};
use crate::model::{cpu, NORM_EPS};
use crate::problem::Problem;
use crate::sim;

/// Executes `program` for `p` with `data`, attention by the simulated kernel `family`.
/// Returns the output buffer as f32 values.
pub fn run(program: &Program, p: &Problem, data: &StepData, family: &str) -> Result<Vec<f32>> {
    let s = &p.shape;
    let (n, dh, t) = (s.seq_len, s.d_head, program.tokens());
    let dtype = p.dtype;
    let mut bufs: BTreeMap<Buf, Vec<f32>> = program
        .buffers()
        .into_iter()
        .map(|b| (b, vec![f32::NAN; program.len(b)]))
        .collect();
    if let StepData::Layer { x, .. } = data {
        bufs.insert(Buf::X, x.clone());
    }
    let weight = |w| {
        data.weight(w)
            .ok_or_else(|| Error::invalid(format!("the step has no weight {w:?}")))
    };
    let take = |bufs: &mut BTreeMap<Buf, Vec<f32>>, b: Buf| {
        bufs.remove(&b).expect("program buffers are allocated")
    };

    for op in &program.ops {
        match *op {
            Op::Embed => {
                let StepData::Model { tokens, .. } = data else {
                    return Err(Error::invalid("Embed needs token ids"));
                };
                let h = sim::model::embed(
                    dtype,
                    tokens,
                    weight(crate::model::program::Weight::Embed)?,
                    p.d_model,
                )?;
                bufs.insert(Buf::H, h);
            }
            Op::RmsNorm { gain } => {
                let y =
                    sim::model::rms_norm(dtype, &bufs[&Buf::H], weight(gain)?, NORM_EPS as f32)?;
                bufs.insert(Buf::X, y);
            }
            Op::Gemm {
                input,
                w,
                out,
                k,
                n: cols,
            } => {
                let m = Matrix {
                    rows: k,
                    cols,
                    data: weight(w)?.to_vec(),
                };
                let c = cpu::matmul(&bufs[&input], t, &m);
                bufs.insert(out, c.into_iter().map(|v| dtype.round(v)).collect());
            }
            Op::SplitHeads {
                input,
                out,
                heads,
                rope,
            } => {
                let y = sim::model::rope_heads(dtype, &bufs[&input], n, heads, dh, rope)?;
                bufs.insert(out, y);
            }
            Op::Attention => {
                let o = sim::attention(
                    family,
                    dtype,
                    s,
                    &bufs[&Buf::Qh],
                    &bufs[&Buf::Kh],
                    &bufs[&Buf::Vh],
                )?;
                bufs.insert(Buf::O, o);
            }
            Op::MergeHeads => {
                let y =
                    sim::model::merge_heads(dtype, &bufs[&Buf::O], n, s.heads.eff() as usize, dh)?;
                bufs.insert(Buf::Om, y);
            }
            Op::Residual { input } => {
                let mut h = take(&mut bufs, Buf::H);
                sim::model::residual_add(dtype, &mut h, &bufs[&input])?;
                bufs.insert(Buf::H, h);
            }
            Op::Swiglu => {
                let act = sim::model::swiglu(dtype, &bufs[&Buf::Gate], &bufs[&Buf::Up])?;
                bufs.insert(Buf::Act, act);
            }
        }
    }
    Ok(take(&mut bufs, program.output))
}
