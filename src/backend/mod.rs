//! Backends: where attention runs. Every backend implements [`Backend`]; the sweep,
//! `verify` and the measurement loop only talk to this trait.

pub mod cpu;
pub mod cpu_model;
pub mod cuda;

use crate::error::Result;
use crate::inputs::Inputs;
use crate::problem::Problem;

/// A device that can run attention problems.
pub trait Backend {
    /// `cpu` or `cuda` (the CSV `backend` column).
    fn name(&self) -> &'static str;

    /// CPU model or GPU name (the CSV `device` column).
    fn device(&self) -> String;

    /// Facts about the device for `meta.json` (threads, clocks, driver, ...).
    fn device_info(&self) -> serde_json::Value;

    /// The kernel this backend runs for `problem` (the CSV `kernel` column).
    fn kernel(&self, problem: &Problem) -> String;

    /// Fails with [`crate::Error::OutOfMemory`] or [`crate::Error::BackendUnavailable`]
    /// when the problem cannot run here. Called before anything is allocated.
    fn check(&self, problem: &Problem) -> Result<()>;

    /// The storage type of the output (decides the verification tolerance).
    fn output_dtype(&self, problem: &Problem) -> crate::problem::Dtype;

    /// Allocates buffers, uploads `inputs`, poisons the output. Nothing is timed.
    fn prepare<'a>(&'a self, problem: &Problem, inputs: &Inputs) -> Result<Box<dyn Prepared + 'a>>;
}

/// A problem with its buffers in place, ready to be run repeatedly.
pub trait Prepared {
    /// Runs one forward pass and returns its duration in seconds, as the backend measures it.
    fn run(&mut self) -> Result<f64>;

    /// The output of the last run as f32, `[B, H_eff, N, d]`.
    fn output(&mut self) -> Result<Vec<f32>>;

    /// Seconds spent in attention during the last run (layer and model scopes), where
    /// the backend times it separately.
    fn attention_seconds(&self) -> Option<f64> {
        None
    }

    /// Peak memory used by this problem in bytes, where the backend measures it.
    fn peak_mem_bytes(&self) -> Option<u64> {
        None
    }
}

/// Which backend runs the problems (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    /// CUDA where a driver and a device are found, the CPU otherwise.
    Auto,
    Cpu,
    Cuda,
}

/// The backend a run uses, and a note for the user when `auto` fell back to the CPU.
pub struct Selected {
    pub backend: Box<dyn Backend>,
    pub note: Option<String>,
}

/// Opens the backend `choice` asks for. `cuda` without a usable GPU is an error;
/// `auto` falls back to the CPU and says why.
pub fn select(choice: Choice, cuda: &cuda::CudaOptions) -> Result<Selected> {
    let cpu = || Box::new(cpu::CpuBackend::new());
    match choice {
        Choice::Cpu => Ok(Selected {
            backend: cpu(),
            note: None,
        }),
        Choice::Cuda => Ok(Selected {
            backend: Box::new(cuda::CudaBackend::open(cuda.clone())?),
            note: None,
        }),
        Choice::Auto => match cuda::CudaBackend::open(cuda.clone()) {
            Ok(b) => Ok(Selected {
                backend: Box::new(b),
                note: None,
            }),
            Err(e) => Ok(Selected {
                backend: cpu(),
                note: Some(format!("{e}; running the CPU backend with a smaller sweep")),
            }),
        },
    }
}
