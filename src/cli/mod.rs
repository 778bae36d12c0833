//! Subcommands. Each lives in its own file with its flags and its handler; this file
//! holds the shared flag groups and the dispatch.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use sqa_bench::backend::cuda::kernels::KernelChoice;
use sqa_bench::backend::cuda::CudaOptions;
use sqa_bench::measure::MeasureConfig;
use sqa_bench::plan::{parse_lengths, BatchRule, PlanSpec};
use sqa_bench::problem::{Dtype, ModelDims, Pattern, Scope};
use sqa_bench::variant::{self, DEFAULT_WINDOW};

mod compare;
mod doctor;
mod kernels;
mod list;
mod plot;
mod run;
mod table;
mod verify;
mod verify_scope;

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
    /// Charts (PNG and SVG) of one or several runs: time, throughput, speedup.
    Plot(plot::PlotArgs),
    /// Compare a run with the published SQA timings (arXiv 2510.01817).
    Compare(compare::CompareArgs),
    /// Print a run's main table (variants × lengths) as text, markdown, LaTeX or CSV.
    Table(table::TableArgs),
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
        Command::Plot(a) => plot::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Table(a) => table::run(a),
    }
}

/// A published set of SQA timings (`results/published/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PublishedChoice {
    /// arXiv 2510.01817 Table 3: seconds per step.
    Paper,
    /// The announcement post: 50-step totals (and the 500k H100 rows).
    Post,
}

impl PublishedChoice {
    pub fn name(self) -> &'static str {
        match self {
            PublishedChoice::Paper => "paper",
            PublishedChoice::Post => "post",
        }
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
    /// Model width; d_head = d_model / heads [default: 256].
    #[arg(long)]
    pub d_model: Option<usize>,
    /// H, the total number of heads; named variants scale with it [default: 16].
    #[arg(long)]
    pub heads: Option<u32>,
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
    /// What one timed step covers: the attention kernel, one attention layer, or the whole model.
    #[arg(long, value_enum)]
    pub scope: Option<ScopeKind>,
    /// `paper`: the published model and schedule (model scope, d_model 256, 16 heads, 8 layers,
    /// d_ff 768, vocabulary 10k, the paper's variants, 1k/4k/32k/131k/200k at 131,072 tokens per step).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Decoder layers of the model scope [default: 8].
    #[arg(long)]
    pub layers: Option<usize>,
    /// SwiGLU hidden width of the model scope [default: 768].
    #[arg(long)]
    pub d_ff: Option<usize>,
    /// Vocabulary of the model scope [default: 10000].
    #[arg(long)]
    pub vocab: Option<usize>,
}

/// `--scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeKind {
    Kernel,
    Layer,
    Model,
}

/// `--preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The SQA paper's timing benchmark (Table 3).
    Paper,
}

/// The published lengths of the paper preset.
pub const PAPER_LENGTHS: &[usize] = &[1024, 4096, 32768, 131072, 200000];
/// Tokens per step of the published benchmark.
pub const PAPER_TOKENS_PER_STEP: usize = 131072;

impl ShapeArgs {
    /// The plan spec, with the backend's default lengths and batch where neither flags
    /// nor the preset give them.
    pub fn plan_spec(
        &self,
        default_lengths: &[usize],
        default_batch: BatchRule,
    ) -> anyhow::Result<PlanSpec> {
        let paper = self.preset == Some(Preset::Paper);
        let custom = self.heads_q.zip(self.heads_kv);
        let variants = match (&self.variants, custom) {
            (Some(list), _) => variant::parse_list(list)?,
            (None, Some(_)) => Vec::new(),
            (None, None) if paper => variant::paper_variants(),
            (None, None) => variant::parse_list("all")?,
        };
        let seq_lens = match &self.seqlen {
            Some(list) => parse_lengths(list)?,
            None if paper => PAPER_LENGTHS.to_vec(),
            None => default_lengths.to_vec(),
        };
        let batch = match (self.batch, self.tokens_per_step) {
            (Some(b), _) => BatchRule::Fixed(b),
            (None, Some(t)) => BatchRule::TokensPerStep(t),
            (None, None) if paper => BatchRule::TokensPerStep(PAPER_TOKENS_PER_STEP),
            (None, None) => default_batch,
        };
        let dims = ModelDims {
            layers: self.layers.unwrap_or(ModelDims::PAPER.layers),
            d_ff: self.d_ff.unwrap_or(ModelDims::PAPER.d_ff),
            vocab: self.vocab.unwrap_or(ModelDims::PAPER.vocab),
        };
        let scope = match self.scope {
            Some(ScopeKind::Kernel) => Scope::Kernel,
            Some(ScopeKind::Layer) => Scope::Layer,
            Some(ScopeKind::Model) => Scope::Model(dims),
            None if paper => Scope::Model(dims),
            None => Scope::Kernel,
        };
        Ok(PlanSpec {
            variants,
            custom,
            seq_lens,
            batch,
            d_model: self.d_model.unwrap_or(256),
            heads: self.heads.unwrap_or(16),
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
