//! Subcommands. Each lives in its own file with its flags and its handler; this file
//! holds the shared flag groups and the dispatch.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use sqa_bench::backend::cuda::kernels::KernelChoice;
use sqa_bench::backend::cuda::CudaOptions;
use sqa_bench::measure::MeasureConfig;
use sqa_bench::plan::{parse_lengths, BatchRule, PlanSpec};
use sqa_bench::problem::{Dtype, Pattern, Scope};
use sqa_bench::variant::{self, DEFAULT_WINDOW};

mod doctor;
mod kernels;
mod list;
mod run;
mod verify;

#[derive(Debug, Parser)]
#[command(
    name = "sqa-bench",
    version,
    about = "Benchmarks long-context attention variants (MHA, GQA, MQA, SQA family, sliding window)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Time a sweep of variants × sequence lengths and write results/<run>/timings.csv.
    Run(run::RunArgs),
    /// Print the variant table.
    List(list::ListArgs),
    /// Check every kernel of a backend against the fp64 reference.
    Verify(verify::VerifyArgs),
    /// Compile every CUDA kernel to PTX (no GPU needed) and print ptxas' resource report.
    Kernels(kernels::KernelsArgs),
    /// Show what the CUDA backend finds (driver, GPU, NVRTC, NVML) and load every kernel.
    Doctor(doctor::DoctorArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::List(a) => list::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Kernels(a) => kernels::run(a),
        Command::Doctor(a) => doctor::run(a),
    }
}

/// Mask of the variants without a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mask {
    Full,
    Causal,
}

/// Flags that describe the problems (shared by `run` and `verify`).
#[derive(Debug, Args)]
pub struct ShapeArgs {
    /// Variants to run: comma-separated keys (see `sqa-bench list`) or `all`.
    #[arg(long)]
    pub variants: Option<String>,
    /// Sequence lengths: comma-separated, `k` = ×1024 (131k = 131,072 as in the paper).
    #[arg(long)]
    pub seqlen: Option<String>,
    /// Batch at every length.
    #[arg(long, conflicts_with = "tokens_per_step")]
    pub batch: Option<usize>,
    /// Tokens per step: batch = max(1, T / length), as the published benchmark (131072).
    #[arg(long)]
    pub tokens_per_step: Option<usize>,
    /// Model width; d_head = d_model / heads.
    #[arg(long, default_value_t = 256)]
    pub d_model: usize,
    /// H, the total number of heads; named variants scale with it.
    #[arg(long, default_value_t = 16)]
    pub heads: u32,
    /// Custom query heads (with --heads-kv): runs variant `custom`.
    #[arg(long, requires = "heads_kv")]
    pub heads_q: Option<u32>,
    /// Custom key/value heads (with --heads-q).
    #[arg(long, requires = "heads_q")]
    pub heads_kv: Option<u32>,
    /// Mask of the variants without a window.
    #[arg(long, value_enum, default_value_t = Mask::Causal)]
    pub mask: Mask,
    /// Window of the sliding-window variants (a custom pair runs windowed when given).
    #[arg(long)]
    pub window: Option<u32>,
    /// Storage type of Q, K, V and O.
    #[arg(long, value_enum, default_value_t = Dtype::Bf16)]
    pub dtype: Dtype,
}

impl ShapeArgs {
    /// The plan spec, with the backend's default lengths and batch where none were given.
    pub fn plan_spec(
        &self,
        default_lengths: &[usize],
        default_batch: BatchRule,
        scope: Scope,
    ) -> anyhow::Result<PlanSpec> {
        let custom = self.heads_q.zip(self.heads_kv);
        let variants = match (&self.variants, custom) {
            (Some(list), _) => variant::parse_list(list)?,
            (None, Some(_)) => Vec::new(),
            (None, None) => variant::parse_list("all")?,
        };
        let seq_lens = match &self.seqlen {
            Some(list) => parse_lengths(list)?,
            None => default_lengths.to_vec(),
        };
        let batch = match (self.batch, self.tokens_per_step) {
            (Some(b), _) => BatchRule::Fixed(b),
            (None, Some(t)) => BatchRule::TokensPerStep(t),
            (None, None) => default_batch,
        };
        Ok(PlanSpec {
            variants,
            custom,
            seq_lens,
            batch,
            d_model: self.d_model,
            heads: self.heads,
            mask: match self.mask {
                Mask::Full => Pattern::Full,
                Mask::Causal => Pattern::Causal,
            },
            window: self.window.unwrap_or(DEFAULT_WINDOW),
            custom_window: self.window.is_some(),
            dtype: self.dtype,
            scope,
        })
    }
}

/// Flags of the measurement loop.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// Untimed runs before timing.
    #[arg(long, default_value_t = 2)]
    pub warmup: u32,
    /// Minimum timed runs per row.
    #[arg(long, default_value_t = 5)]
    pub min_iters: u32,
    /// Minimum total timed seconds per row.
    #[arg(long, default_value_t = 0.2)]
    pub min_time: f64,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl MeasureArgs {
    pub fn config(&self) -> anyhow::Result<MeasureConfig> {
        let cfg = MeasureConfig {
            warmup: self.warmup,
            min_iters: self.min_iters,
            min_time_s: self.min_time,
            max_iters: self.min_iters.max(1000),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Flags of the CUDA backend (ignored on the CPU).
#[derive(Debug, Args)]
pub struct CudaArgs {
    /// CUDA kernel family: `auto` (mma where available, else simple) or a family name.
    #[arg(long, default_value = "auto")]
    pub kernel: String,
    /// Do not flush the L2 cache between timed runs (warm-cache timings).
    #[arg(long)]
    pub no_l2_flush: bool,
}

impl CudaArgs {
    pub fn options(&self) -> anyhow::Result<CudaOptions> {
        Ok(CudaOptions {
            kernel: KernelChoice::parse(&self.kernel)?,
            l2_flush: !self.no_l2_flush,
            ..CudaOptions::default()
        })
    }
}
