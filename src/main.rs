//! The `vic` command line: files, terminals and exit codes live here; the compiler core in
//! the library is pure.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    ExitCode::from(cli::run(args))
}
