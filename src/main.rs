//! The `sqa-bench` command line. Parses, runs, and turns any error into one line on
//! stderr with exit status 2 (bad input, nothing written) — never a panic.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One line: the context chain joined, as `anyhow` formats with `{:#}`.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
