//! sqa-bench: benchmarks of long-context attention variants (MHA, GQA, MQA, the SQA
//! family, sliding windows) on NVIDIA GPUs and on the CPU.
//!
//! Data flow: flags → [`plan::PlanSpec`] → validated [`problem::Problem`]s → a
//! [`backend::Backend`] → [`measure`] → [`results::Row`]s appended to `timings.csv`.
//! The [`variant`] table is the single source of truth for variants; the [`reference`]
//! is the fp64 oracle for every backend.

pub mod backend;
pub mod compare;
pub mod cost;
pub mod error;
pub mod export;
pub mod inputs;
pub mod measure;
pub mod model;
pub mod plan;
pub mod plot;
pub mod problem;
pub mod published;
pub mod reference;
pub mod report;
pub mod results;
pub mod sim;
pub mod sweep;
pub mod sysinfo;
pub mod variant;
pub mod verify;

pub use error::{Error, Result};
