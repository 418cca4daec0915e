//! Subcommands. Exit codes: 0 success, 1 the input has errors (a model, a data file, a
//! training run that diverged), 2 usage or IO errors (clap's own usage errors also exit 2).

mod agent;
mod agent_known;
mod agent_text;
mod args;
mod check;
mod checks;
mod color;
mod distributed;
mod elbo;
mod eval;
mod io;
mod params;
mod predictive;
mod progress;
mod run;
mod sample;
mod sample_plot;
mod session;
mod summary;

// One colour decision, made in `main` before clap parses (see `color.rs`).
pub use color::{color_from_args, install_miette_hook, use_color};

use clap::builder::styling::Styles;
use clap::{ColorChoice, Parser, Subcommand};
use std::path::PathBuf;

use crate::exit::{OK, USAGE};

#[derive(Parser, Debug)]
#[command(
    name = "vic",
    version,
    about = "A compiler for variational inference in sequential latent-variable models",
    styles = Styles::styled(),
    after_long_help = "Examples:
  vic check models/ssm.vmodel
  vic elbo models/ssm.vmodel --steps
  vic run models/ssm.vmodel --steps 2000
  vic eval models/ssm.vmodel --params runs/ssm
  vic params runs/ssm
  vic completions bash > ~/.local/share/bash-completion/completions/vic

Environment: NO_COLOR (any value) turns colours off unless --color always is given."
)]
/// The command line.
pub struct Cli {
    /// Colours in diagnostics and help: `auto` (when stderr is a terminal and NO_COLOR is
    /// not set), `always` or `never`.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check models; report every error with its source span.
    #[command(after_long_help = "Examples:
  vic check models/*.vmodel
  vic check --deny-warnings models/ssm.vmodel
  vic check --summary models/vae_digits.vmodel    # parameters, latent sizes, memory of a step")]
    Check {
        /// Model files (`.vmodel`).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Treat warnings as errors (exit 1 when there are any).
        #[arg(long)]
        deny_warnings: bool,
        /// Also print a summary of each model: parameters per net and in total, latent
        /// sizes, the chain's length and the estimated memory of a training step.
        #[arg(long)]
        summary: bool,
        /// With --summary: the batch the memory estimate assumes (default: the model's
        /// `batch`, else 128).
        #[arg(long, requires = "summary")]
        batch: Option<usize>,
    },
    /// Derive the ELBO: the terms, their estimators, and on request the derivation.
    #[command(after_long_help = "Examples:
  vic elbo models/ssm.vmodel
  vic elbo models/ssm.vmodel --steps                 # the numbered derivation
  vic elbo models/ssm.vmodel --format latex > ssm.tex
  vic elbo models/ssm.vmodel --format json | jq '.terms'")]
    Elbo {
        /// The model file (`.vmodel`).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: elbo::FormatArg,
        /// Show the numbered step-by-step derivation.
        #[arg(long)]
        steps: bool,
    },
    /// Print the graphical model as Graphviz DOT (p solid, q dashed).
    #[command(
        after_long_help = "Examples (`dot` is Graphviz: apt install graphviz, brew install graphviz):
  vic graph models/ssm.vmodel | dot -Tsvg > ssm.svg
  vic graph models/rssm.vmodel > rssm.dot"
    )]
    Graph {
        /// The model file (`.vmodel`).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Train: progress bar, metrics.jsonl, checkpoints, a final per-term report, elbo.svg.
    #[command(after_long_help = "Examples:
  vic run models/ssm.vmodel --steps 2000
  vic run models/vae_digits.vmodel --epochs 5 --batch 64 --lr 3e-4 --out runs/vae
  vic run models/sac.vmodel --steps 300 --horizon 50            # a control problem
  vic run models/ssm.vmodel --resume runs/ssm --steps 4000      # continue a run

The run directory (default runs/<model>) holds config.json, model.vmodel, metrics.jsonl,
checkpoint.safetensors and elbo.svg. Ctrl-C saves a checkpoint; continue with --resume.")]
    Run(run::RunArgs),
    /// Learn to act: collect episodes, fit the world model on the replay, learn behaviour in
    /// imagination (the model's `imagine` block), evaluate with the policy's mode.
    #[command(after_long_help = "Examples:
  vic agent models/dreamer_pendulum.vmodel --env pendulum --env-steps 20000 --out runs/agent
  vic agent models/dreamer_pendulum.vmodel --env gym:Pendulum-v1 --out runs/agent-gym
  vic agent models/dreamer_pendulum.vmodel --env-steps 40000 --resume runs/agent
  vic agent models/dreamer_pendulum.vmodel --resume runs/agent --evaluate 100 --env gym:Pendulum-v1

The run directory holds episodes.jsonl (one line per episode: env_step, return, length, eval),
metrics.jsonl (one line per update), checkpoint.safetensors, replay.npz (the episodes, in
vic's dataset layout), agent.json and returns.svg. Ctrl-C saves; continue with --resume.")]
    Agent(args::AgentArgs),
    /// Estimate the ELBO of saved parameters on data, with its standard error, per term.
    #[command(after_long_help = "Examples:
  vic eval models/ssm.vmodel --params runs/ssm                    # the held-out split
  vic eval models/ssm.vmodel --params runs/ssm --split all --json
  vic eval models/ssm.vmodel --params runs/ssm --iwae 100         # also log p(x) by IWAE
  vic eval models/ssm.vmodel --params runs/ssm --data other.npz --split all")]
    Eval(eval::EvalArgs),
    /// Draw from p (prior predictive, or open loop after a posterior state) to .npz.
    #[command(after_long_help = "Examples:
  vic sample models/ssm.vmodel --params runs/ssm --n 16 --out draws.npz
  vic sample models/ssm.vmodel --params runs/ssm --condition 10 --plot open_loop.svg
  vic sample models/vae_digits.vmodel --params runs/vae_digits --posterior --image-shape 8x8 --plot recon.svg")]
    Sample(args::SampleArgs),
    /// Print the learned parameters of a run by name: the constrained value (softplus etc.
    /// applied) beside the raw one, like NumPyro's `svi_result.params`.
    #[command(after_long_help = "Examples:
  vic params runs/lg_toy
  vic params runs/ssm --format json | jq '.[\"m\"]'
  vic params runs/ssm --format npz --out params.npz             # numpy.load('params.npz')")]
    Params(params::ParamsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_long_help = "Examples:
  vic completions bash > ~/.local/share/bash-completion/completions/vic
  vic completions zsh > ~/.zfunc/_vic        # with fpath+=(~/.zfunc) in ~/.zshrc
  vic completions fish > ~/.config/fish/completions/vic.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Benchmark workload W1 (VAE), W2 (SSM), W3 (toy), W4 (RSSM), W5 (SAC control), W6
    /// (DMM) or W7 (discrete VAE) as the peer scripts run it:
    /// steps/s with its spread, final loss, fraction of the sgemm peak, peak RSS.
    #[command(after_long_help = "Examples:
  vic bench W2
  vic bench W1 --steps 500 --json")]
    Bench(crate::bench::BenchArgs),
}

/// Clap's own parse errors (unknown flag, a value that is not a number, a missing argument)
/// with vic's code `vic::E092`: clap's whole message is kept (its "a similar argument exists"
/// tip, `[possible values: …]`, the usage line), the code goes into the first line, and a help
/// line ends it. `--help` and `--version` print as usual.
pub fn usage_error(e: clap::Error, color: bool) -> u8 {
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
    let styled = e.render();
    let text = if color {
        styled.ansi().to_string()
    } else {
        styled.to_string()
    };
    eprint!("{}", with_code(&text));
    USAGE
}

/// `error: …` becomes `error[vic::E092]: …`; clap's closing "For more information, try
/// '--help'." becomes vic's help line.
fn with_code(text: &str) -> String {
    let mut out = String::new();
    let mut coded = false;
    for line in text.lines() {
        if line.contains("For more information, try") {
            continue;
        }
        if !coded {
            if let Some(i) = line.find("error") {
                let (head, tail) = line.split_at(i + "error".len());
                out.push_str(head);
                out.push_str("[vic::E092]");
                out.push_str(tail);
                out.push('\n');
                coded = true;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if !coded {
        out = format!("error[vic::E092]: {out}");
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out.push_str("\nhelp: run `vic --help`, or `vic <command> --help` for a command's flags\n");
    out
}

/// Run a parsed command line; the exit code.
pub fn run(cli: Cli) -> u8 {
    let color = use_color(cli.color);
    install_miette_hook(color);
    match cli.command {
        Command::Check {
            files,
            deny_warnings,
            summary,
            batch,
        } => {
            let code = check::run(&files, deny_warnings, color);
            if summary && code != USAGE {
                code.max(summary::run(&files, batch, color))
            } else {
                code
            }
        }
        Command::Elbo {
            file,
            format,
            steps,
        } => elbo::run(&file, format, steps, color),
        Command::Graph { file } => elbo::graph(&file, color),
        Command::Run(a) => run::run(a, color),
        Command::Agent(a) => agent::agent(a, color),
        Command::Eval(a) => eval::eval(a, color),
        Command::Sample(a) => sample::sample(a, color),
        Command::Params(a) => params::run(a, color),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "vic", &mut std::io::stdout());
            OK
        }
        Command::Bench(a) => crate::bench::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::{with_code, Cli};
    use clap::CommandFactory;

    /// `vic help` is the documentation most users read: every argument and flag of every
    /// subcommand says what it is, and every subcommand's long help has examples.
    #[test]
    fn every_flag_is_described_and_every_command_has_examples() {
        let cli = Cli::command();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            if !sub
                .get_after_long_help()
                .is_some_and(|h| h.to_string().contains("Examples"))
            {
                missing.push(format!("{}: no examples", sub.get_name()));
            }
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() {
                    missing.push(format!("{} {id}: no description", sub.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn the_code_goes_into_clap_s_first_line_and_the_rest_is_kept() {
        let clap = "error: unexpected argument '--step' found\n\n  tip: a similar argument exists: '--steps'\n\nUsage: vic run --steps <STEPS> <FILE>\n\nFor more information, try '--help'.\n";
        let out = with_code(clap);
        assert_eq!(
            out,
            "error[vic::E092]: unexpected argument '--step' found\n\n  tip: a similar argument exists: '--steps'\n\nUsage: vic run --steps <STEPS> <FILE>\n\nhelp: run `vic --help`, or `vic <command> --help` for a command's flags\n"
        );
    }
}
