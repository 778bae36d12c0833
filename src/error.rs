//! The library's error type. Every fallible library function returns [`Error`];
//! only the CLI edge (`main.rs`, `cli.rs`) wraps errors with `anyhow` context.

use std::path::PathBuf;

/// Everything that can go wrong inside the library, one variant per cause, each
/// rendering as one line a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or a problem shape that cannot describe an attention problem.
    #[error("invalid input: {0}")]
    Invalid(String),

    /// A variant name that is not in the variant table.
    #[error("unknown variant '{name}' (known: {known})")]
    UnknownVariant { name: String, known: String },

    /// The working set of a problem does not fit the memory of the backend's device.
    #[error("does not fit memory: {what} needs {need_bytes} bytes, {avail_bytes} bytes available")]
    OutOfMemory {
        what: String,
        need_bytes: u64,
        avail_bytes: u64,
    },

    /// The backend exists but cannot run on this machine (no driver, no device, no library).
    #[error("backend unavailable: {0}")]
    BackendUnavailable(String),

    /// A backend ran and failed (a launch error, a compile error).
    #[error("{backend} backend: {msg}")]
    Backend { backend: &'static str, msg: String },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A chart could not be drawn or written.
    #[error("chart: {0}")]
    Chart(String),

    /// A results or data file exists but does not hold what it should.
    #[error("{}: {msg}", path.display())]
    BadFile { path: PathBuf, msg: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// The `status` column value a sweep row gets when this error ends it.
    pub fn status(&self) -> &'static str {
        match self {
            Error::OutOfMemory { .. } => "oom",
            Error::BackendUnavailable(_) => "unsupported",
            Error::Invalid(_) | Error::UnknownVariant { .. } => "invalid",
            _ => "error",
        }
    }
}
