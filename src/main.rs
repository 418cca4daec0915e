//! The `vic` command line: files, terminals and exit codes live here; the compiler core in
//! the library is pure.

mod bench;
mod cli;
mod exit;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    // `vic eval … | head`: a closed stdout ends vic quietly, as it ends `cat`, instead of a
    // panic in `println!` (Rust ignores SIGPIPE by default and turns it into an EPIPE error).
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The reference path: dfdx hands every matmul to rayon; at the sizes of these models the
    // hand-off costs more than a second core saves (measured: W1 1,049 vs 765 steps/s, W2 272
    // vs 225 on 1 vs 2 threads; docs/performance.md). One thread unless the user asks for more.
    // The fused runtime splits the batch over its own two workers instead.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    // One colour decision for clap's help and errors and for vic's diagnostics: `--color` is
    // read before parsing, because clap reports a usage error before there is a parsed `Cli`.
    let choice = cli::color_from_args(std::env::args_os());
    let color = cli::use_color(choice);
    let command = cli::Cli::command().color(if color {
        clap::ColorChoice::Always
    } else {
        clap::ColorChoice::Never
    });
    match command
        .try_get_matches()
        .and_then(|m| cli::Cli::from_arg_matches(&m))
    {
        Ok(args) => {
            let code = cli::run(args);
            // A distributed run: a failed rank aborts the job; success finalises MPI.
            vic::train::distributed::finish(code);
            ExitCode::from(code)
        }
        Err(e) => ExitCode::from(cli::usage_error(e, color)),
    }
}
