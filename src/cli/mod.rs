//! Subcommands. Exit codes: 0 success, 1 the input has errors (a model, a data file, a
//! training run that diverged), 2 usage or IO errors (clap's own usage errors also exit 2).

mod bench;
mod check;
mod elbo;
mod eval;
mod io;
mod plot;
mod predictive;
mod run;
mod rundir;
mod sample_plot;
mod session;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "vic",
    version,
    about = "A compiler for variational inference in sequential latent-variable models"
)]
pub struct Cli {
    /// Colour diagnostics: auto (when stderr is a terminal), always, never.
    #[arg(long, global = true, default_value = "auto")]
    pub color: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check models; report every error with its source span.
    Check {
        /// Model files (`.vmodel`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Derive the ELBO: the terms, their estimators, and on request the derivation.
    Elbo {
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: elbo::FormatArg,
        /// Show the numbered step-by-step derivation.
        #[arg(long)]
        steps: bool,
    },
    /// Print the graphical model as Graphviz DOT (p solid, q dashed).
    Graph { file: PathBuf },
    /// Train: progress bar, metrics.jsonl, checkpoints, a final per-term report, elbo.svg.
    Run(run::RunArgs),
    /// Estimate the ELBO of saved parameters on data, with its standard error, per term.
    Eval(eval::EvalArgs),
    /// Draw from p (prior predictive, or open loop after a posterior state) to .npz.
    Sample(eval::SampleArgs),
    /// Benchmark workload W1 (VAE), W2 (SSM), W3 (toy), W4 (RSSM) or W5 (SAC control) as
    /// the peer scripts run it:
    /// steps/s with its spread, final loss, fraction of the sgemm peak, peak RSS.
    Bench(bench::BenchArgs),
}

/// Clap's own parse errors (unknown flag, a value that is not a number, a missing argument)
/// as a `vic::E092` diagnostic; `--help` and `--version` print as usual.
pub fn usage_error(e: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.use_stderr() { USAGE } else { OK };
    }
    let text = e.render().to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    eprintln!(
        "{:?}",
        miette::Report::new(
            miette::MietteDiagnostic::new(message)
                .with_code("vic::E092")
                .with_help("run `vic --help`, or `vic <command> --help` for a command's flags")
        )
    );
    USAGE
}

pub fn run(cli: Cli) -> u8 {
    let color = match cli.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    match cli.command {
        Command::Check {
            files,
            deny_warnings,
        } => check::run(&files, deny_warnings, color),
        Command::Elbo {
            file,
            format,
            steps,
        } => elbo::run(&file, format, steps, color),
        Command::Graph { file } => elbo::graph(&file, color),
        Command::Run(a) => run::run(a, color),
        Command::Eval(a) => eval::eval(a, color),
        Command::Sample(a) => eval::sample(a, color),
        Command::Bench(a) => bench::run(a),
    }
}
