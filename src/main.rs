//! The `sqa-bench` command line. Parses, runs, and turns any error into one line on
//! stderr with exit status 2 (bad input, nothing written) — never a panic.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        // --help and --version print as clap formats them and exit 0.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A flag clap refuses: its first line only ("error: invalid value ..."), exit 2.
        Err(e) => {
            let text = e.to_string();
            eprintln!(
                "{}",
                text.lines().next().unwrap_or("error: invalid arguments")
            );
            return ExitCode::from(2);
        }
    };
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One line: the context chain joined, as `anyhow` formats with `{:#}`.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
