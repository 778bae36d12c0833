//! The kernels of `cuda/model.cu` (the elementwise ops of the layer and model scopes):
//! the NVRTC program, the launch geometry (as in the header of `model.cu` and in
//! `cuda/sim/model_api.cpp`), and the launch of each op as a pure [`KernelCall`] with
//! buffers by name, so that argument order, C types and counts are tested without a GPU
//! (tests/cuda_scope.rs reads the signatures from the source).

use crate::model::program::{Buf, Op, Program, Weight};
use crate::model::NORM_EPS;
use crate::problem::AttnShape;

use super::compile::Source;
use super::kernels::COMMON_HEADER;

/// Threads per block of every `model.cu` kernel (`MODEL_THREADS`).
pub const MODEL_THREADS: u32 = 256;
/// Rows per block of `rmsnorm` (one warp per row).
pub const RMSNORM_ROWS_PER_BLOCK: usize = MODEL_THREADS as usize / 32;

/// `cuda/model.cu` as an NVRTC program.
pub fn model_program() -> Source<'static> {
    const HEADERS: &[(&str, &str)] = &[COMMON_HEADER];
    Source {
        name: "model.cu",
        text: include_str!("../../../cuda/model.cu"),
        headers: HEADERS,
    }
}

/// The kernels of `model.cu`; entry points are `<kernel>_<bf16|f16>`.
pub const MODEL_KERNELS: [&str; 6] = [
    "embed",
    "rmsnorm",
    "residual_add",
    "swiglu",
    "rope_heads",
    "merge_heads",
];

/// Blocks of a grid-stride kernel over `count` items: ceil(count / 256) in 1..=65535.
pub fn elementwise_grid(count: usize) -> u32 {
    count.div_ceil(MODEL_THREADS as usize).clamp(1, 65_535) as u32
}

/// Blocks of `rmsnorm` over `rows` rows (8 per block).
pub fn rmsnorm_grid(rows: usize) -> u32 {
    rows.div_ceil(RMSNORM_ROWS_PER_BLOCK).max(1) as u32
}

/// One argument of a `model.cu` launch, buffers and weights by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    Buf(Buf),
    Weight(Weight),
    I32(i32),
    I64(i64),
    F32(f32),
}

/// A launch of a `model.cu` kernel: blocks of [`MODEL_THREADS`], arguments in the order
/// of the entry point's signature.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelCall {
    pub kernel: &'static str,
    pub grid: u32,
    pub args: Vec<Arg>,
}

/// The `model.cu` launch that executes an elementwise op of `program` (`None` for `Gemm`
/// and `Attention`). Sizes fit the kernels' `int`s (`check` refuses larger steps).
pub fn kernel_call(
    op: &Op,
    program: &Program,
    s: &AttnShape,
    d_model: usize,
) -> Option<KernelCall> {
    use Arg::{Buf as B, Weight as W, F32, I32, I64};
    let t = program.tokens();
    let (n, dh) = (s.seq_len, s.d_head);
    let i = |x: usize| I32(x as i32);
    let call = |kernel, count: usize, args| KernelCall {
        kernel,
        grid: elementwise_grid(count),
        args,
    };
    Some(match *op {
        Op::Embed => {
            let count = program.len(Buf::H);
            call(
                "embed",
                count,
                vec![
                    B(Buf::Tokens),
                    W(Weight::Embed),
                    B(Buf::H),
                    i(d_model),
                    I64(count as i64),
                ],
            )
        }
        Op::RmsNorm { gain } => KernelCall {
            kernel: "rmsnorm",
            grid: rmsnorm_grid(t),
            args: vec![
                B(Buf::H),
                W(gain),
                B(Buf::X),
                i(t),
                i(d_model),
                F32(NORM_EPS as f32),
            ],
        },
        Op::SplitHeads {
            input,
            out,
            heads,
            rope,
        } => {
            let pairs = t * heads * (dh / 2);
            call(
                "rope_heads",
                pairs,
                vec![
                    B(input),
                    B(out),
                    i(n),
                    i(heads),
                    i(dh),
                    I32(i32::from(rope)),
                    I64(pairs as i64),
                ],
            )
        }
        Op::MergeHeads => {
            let count = program.len(Buf::Om);
            let heads = s.heads.eff() as usize;
            call(
                "merge_heads",
                count,
                vec![
                    B(Buf::O),
                    B(Buf::Om),
                    i(n),
                    i(heads),
                    i(dh),
                    I64(count as i64),
                ],
            )
        }
        Op::Residual { input } => {
            let count = program.len(Buf::H);
            call(
                "residual_add",
                count,
                vec![B(Buf::H), B(input), I64(count as i64)],
            )
        }
        Op::Swiglu => {
            let count = program.len(Buf::Act);
            call(
                "swiglu",
                count,
                vec![B(Buf::Gate), B(Buf::Up), B(Buf::Act), I64(count as i64)],
            )
        }
        Op::Gemm { .. } | Op::Attention => return None,
    })
}
