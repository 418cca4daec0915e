//! `vic run`: train with a progress bar, `metrics.jsonl`, atomic checkpoints, a final
//! per-term report on the held-out split, and `elbo.svg`.

use super::checks::{at_least_one, check_device, fits, plan_error, positive, too_large};
use super::progress::Progress;
use super::session::open;
use crate::exit::{checkpoint_error, flag_error, train_error};
use crate::exit::{FAILED, OK};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vic::train::{
    EngineChoice, RunEnd, RunError, RunFlags, RunOptions, RunPlan, TrainConfig, TrainError, Trainer,
};

/// `--runtime`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Auto,
    Fused,
    Reference,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The model file (`.vmodel`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Runtime: `fused` (the compiled program, CPU), `reference` (the dfdx interpreter, every
    /// feature and CUDA), or `auto` (fused where the model allows it).
    #[arg(long, value_enum, default_value_t = Runtime::Auto)]
    pub runtime: Runtime,
    /// Data file (.npz, .npy, .csv) [default: the model's `data "…"`].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Optimiser steps in all, counting resumed ones [default: 1000 unless --epochs].
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<u64>,
    /// Passes over the training data (shuffled minibatches).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Sequences (rows) per minibatch; control problems: rollouts per step [default: the
    /// model's `batch`, else 128].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// Monte Carlo draws per held-out sequence in the final report.
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// Random seed: initialisation, minibatches, noise and the held-out split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, or cuda (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Output directory [default: runs/<model>, or the --resume directory].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the checkpoint in this run directory.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Overwrite the results of an earlier run in the output directory.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Rollout length for control problems [default: the model's `horizon`, else 50].
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Clip the global gradient norm to this value [default: no clipping].
    #[arg(long, allow_negative_numbers = true)]
    pub clip: Option<f64>,
    /// L2 weight decay added to the gradient (Adam, as torch.optim.Adam's weight_decay).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// Linear learning-rate warmup steps.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Cosine learning-rate decay over the run.
    #[arg(long)]
    pub cosine: bool,
    /// Fraction of the data held out.
    #[arg(long, default_value_t = TrainConfig::default().holdout, allow_negative_numbers = true)]
    pub holdout: f64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Steps between metric lines.
    #[arg(long, default_value_t = 10)]
    pub log_every: u64,
    /// Steps between held-out evaluations (0: only at the end).
    #[arg(long, default_value_t = 100)]
    pub eval_every: u64,
    /// Train data-parallel over the ranks of an MPI job: `mpirun -n N vic run MODEL
    /// --distributed` (a build with `--features mpi`); rank 0 writes the results.
    #[arg(long)]
    pub distributed: bool,
}

/// Every flag of `vic run` that can be checked without the model, in one place.
fn validate(a: &RunArgs) -> Result<(), u8> {
    check_device(&a.device)?;
    positive("--lr", a.lr, "e.g. --lr 1e-3")?;
    if let Some(c) = a.clip {
        positive(
            "--clip",
            c,
            "--clip is the largest global gradient norm, e.g. --clip 100; omit it for no clipping",
        )?;
    }
    if !(a.weight_decay >= 0.0 && a.weight_decay.is_finite()) {
        return Err(flag_error(
            format!("--weight-decay {} is not a number ≥ 0", a.weight_decay),
            "e.g. --weight-decay 1e-4 (0, the default, for none)",
        ));
    }
    if !(0.0..1.0).contains(&a.holdout) {
        return Err(flag_error(
            format!("--holdout {} is outside [0, 1)", a.holdout),
            "e.g. --holdout 0.1",
        ));
    }
    let as_u64 = |v: Option<usize>| v.map(|v| v as u64);
    at_least_one(&[
        ("--batch", as_u64(a.batch)),
        ("--horizon", as_u64(a.horizon)),
        ("--steps", a.steps),
        ("--epochs", a.epochs),
        ("--samples", Some(a.samples as u64)),
        ("--log-every", Some(a.log_every)),
        ("--checkpoint-every", Some(a.checkpoint_every)),
    ])?;
    if let Some(c) = too_large(&[
        ("--batch", a.batch.unwrap_or(0)),
        ("--horizon", a.horizon.unwrap_or(0)),
        ("--samples", a.samples),
    ]) {
        return Err(c);
    }
    Ok(())
}

/// `vic run`: resolve the plan, train through `Trainer::run`, report and plot.
pub fn run(a: RunArgs, color: bool) -> u8 {
    if let Err(c) = validate(&a) {
        return c;
    }
    let session = match open(&a.file, color) {
        Ok(s) => s,
        Err(c) => return c,
    };
    if (session.model.ir().behaviour.as_ref())
        .is_some_and(|b| b.start == vic::ir::ImagineStart::Prior)
    {
        return flag_error(
            format!(
                "`{}` has known dynamics (`start = prior`): there is no world model for `vic run` to train",
                a.file.display()
            ),
            "its behaviour is learned in imagination by `vic agent FILE --out DIR` (docs/agent.md, \"Known dynamics\")",
        );
    }
    if session.model.ir().behaviour.is_some() {
        eprintln!(
            "note: `vic run` trains the world model's ELBO on the data only; the `imagine` block (behaviour learning in imagination) is run by `vic agent`, which collects its own episodes (docs/agent.md)"
        );
    }
    let data = match session.load_data(a.data.as_deref()) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let flags = RunFlags {
        config: TrainConfig {
            lr: a.lr,
            weight_decay: a.weight_decay,
            clip: a.clip,
            warmup: a.warmup,
            seed: a.seed,
            engine: match a.runtime {
                Runtime::Auto => EngineChoice::Auto,
                Runtime::Fused => EngineChoice::Fused,
                Runtime::Reference => EngineChoice::Reference,
            },
            ..TrainConfig::default()
        },
        batch: a.batch,
        steps: a.steps,
        epochs: a.epochs,
        horizon: a.horizon,
        cosine: a.cosine,
        holdout: a.holdout,
    };
    let plan = match RunPlan::resolve(&flags, session.model.ir(), data.as_ref()) {
        Ok(p) => p,
        Err(e) => return plan_error(&e),
    };
    let name = session.model.ir().name.clone();
    let data_path = session.data_path(a.data.as_deref());
    let source = session.model.source.clone();
    let mut tr = match Trainer::new(session.program, data, plan.config.clone()) {
        Ok(t) => t,
        Err(e) => return train_error(&e, "cannot set up the model"),
    };
    // Distributed hook: join the MPI job; rank 0 alone writes below.
    if a.distributed {
        if let Err(c) = super::distributed::join(&mut tr) {
            return c;
        }
    }
    let k = tr.program.model.objective.iwae.max(1) as usize;
    let eval_rows = tr
        .heldout
        .as_ref()
        .or(tr.train.as_ref())
        .map_or(tr.cfg.batch, |d| d.n.min(256).saturating_mul(a.samples));
    if let Err(c) = fits(
        &tr.program.model,
        tr.cfg.batch.saturating_mul(k),
        plan.sequence_steps,
        "a training step",
    )
    .and_then(|()| {
        fits(
            &tr.program.model,
            eval_rows.saturating_mul(k),
            plan.sequence_steps,
            "the final evaluation",
        )
    }) {
        return c;
    }
    let out = out_dir(&a, &name);
    if let Err(e) = std::fs::create_dir_all(&out) {
        return flag_error(
            format!("cannot create `{}`: {e}", out.display()),
            "choose another --out directory",
        );
    }
    // Ctrl-C sets a flag that the training loop polls, so the run returns through the
    // lock's Drop (which removes it) whenever it is interrupted.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let _lock = match tr
        .is_lead()
        .then(|| super::io::claim_run_dir(&out, a.resume.is_some(), a.force))
        .transpose()
    {
        Ok(l) => l,
        Err(c) => return c,
    };
    let engine = tr.engine();
    let record = vic::train::rundir::Record {
        command: std::env::args().collect(),
        model: &name,
        model_file: a.file.display().to_string(),
        data: data_path.as_deref(),
        plan: &plan,
        epochs: a.epochs,
        engine: &engine,
        device: &a.device,
        samples: a.samples,
        log_every: a.log_every,
        eval_every: a.eval_every,
        checkpoint_every: a.checkpoint_every,
        resumed_from: a.resume.as_ref().map(|p| p.display().to_string()),
    };
    if !tr.is_lead() {
        // Distributed hook: the other ranks resume, then step in lockstep with rank 0 (one
        // `any_rank` agreement and one step per iteration, as `Trainer::run`), writing nothing.
        if let Some(path) = &resume_path(&a) {
            if let Err(e) = tr.resume(path) {
                return train_error(&e, "cannot resume");
            }
        }
        return match vic::train::distributed::follow(&mut tr, plan.total, &stop) {
            Ok(true) => 130,
            Ok(false) => 0,
            Err(e) => {
                if !matches!(e, TrainError::NonFinite { .. }) {
                    eprintln!(
                        "vic: rank {}: training failed ({} step(s) done): {e}",
                        tr.rank(),
                        tr.step
                    );
                }
                FAILED
            }
        };
    }
    if let Err(e) = vic::train::rundir::write_record(&out, &record, &source) {
        crate::exit::coded(
            vic::diag::Code::CannotWrite,
            format!("cannot write the run's record in `{}`: {e}", out.display()),
            "check that --out is a writable directory with space",
        );
        return FAILED;
    }
    // Which runtime trains is decided before the first step: say it before the progress bar.
    eprintln!("runtime: {}", tr.engine());
    let ckpt = out.join("checkpoint.safetensors");
    let resume = resume_path(&a);
    let labels = vic::render::label::term_labels(&tr.program.elbo);
    let mut progress = match Progress::new(
        &out.join("metrics.jsonl"),
        a.resume.is_some(),
        labels.clone(),
        plan.total,
        a.log_every,
        stop,
    ) {
        Ok(p) => p,
        Err(e) => return flag_error(format!("cannot write metrics: {e}"), "check --out"),
    };
    let opts = RunOptions {
        total: plan.total,
        checkpoint: Some(ckpt.clone()),
        checkpoint_every: a.checkpoint_every,
        eval_every: a.eval_every,
        final_samples: a.samples,
        resume,
    };
    let outcome = tr.run(&opts, &mut progress);
    progress.finish();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return run_failed(&e, &mut progress, &ckpt),
    };
    let Some(report) = outcome
        .report
        .as_ref()
        .filter(|_| outcome.end == RunEnd::Finished)
    else {
        eprintln!(
            "interrupted at step {}: checkpoint saved to {}\nto continue: {}",
            outcome.last_step,
            ckpt.display(),
            resume_command(&a, &out),
        );
        return 130;
    };
    if report.non_finite().is_some() {
        return crate::exit::non_finite_result(report, "the trained parameters");
    }
    let heldout = tr.heldout.is_some();
    progress.final_report(outcome.last_step, heldout, report);
    let steps_done = outcome.last_step - outcome.first_step;
    println!(
        "{name}: {steps_done} steps in {:.1} s ({:.0} steps/s); {} ELBO per sequence:",
        outcome.seconds,
        steps_done as f64 / outcome.seconds.max(1e-9),
        if heldout { "held-out" } else { "training-data" }
    );
    print!("{}", report.text());
    println!("checkpoint: {}", ckpt.display());
    println!("runtime: {}", tr.engine());
    if let Some(d) = tr.distributed() {
        println!("distributed: {d}");
    }
    let eval_name = match (&tr.heldout, &tr.train) {
        (Some(_), _) => "held-out",
        (None, Some(_)) => "evaluation (training data)",
        (None, None) => "evaluation",
    };
    progress.plot(&out.join("elbo.svg"), &name, eval_name);
    OK
}

/// The run directory: `--out`, else the directory resumed from, else `runs/<model>`.
fn out_dir(a: &RunArgs, name: &str) -> PathBuf {
    let resumed_dir = a.resume.as_ref().map(|r| {
        if r.is_dir() {
            r.clone()
        } else {
            r.parent().map(PathBuf::from).unwrap_or_default()
        }
    });
    a.out
        .clone()
        .or(resumed_dir)
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            }
        })
        .unwrap_or_else(|| PathBuf::from("runs").join(name))
}

/// The command that continues an interrupted run: the model, `--resume DIR`, and the total
/// asked for (other flags as given the first time).
pub fn resume_command(a: &RunArgs, out: &Path) -> String {
    let mut cmd = format!("vic run {} --resume {}", a.file.display(), out.display());
    if let Some(s) = a.steps {
        cmd.push_str(&format!(" --steps {s}"));
    }
    if let Some(e) = a.epochs {
        cmd.push_str(&format!(" --epochs {e}"));
    }
    cmd.push_str(" (and the other flags of this run)");
    cmd
}

/// A run that failed: its diagnostic, and a `metrics.jsonl` line for a failed step.
fn run_failed(e: &RunError, progress: &mut Progress, ckpt: &Path) -> u8 {
    match e {
        RunError::Resume { path, error } => checkpoint_error(
            format!("cannot resume from `{}`: {error}", path.display()),
            "pass a run directory written by `vic run` for this model",
        ),
        RunError::Step { step, error } => {
            let (code, msg, advice) = match error {
                TrainError::NonFinite { .. } => (
                    vic::diag::Code::NonFinite.as_str(),
                    format!("training diverged: {error}"),
                    "try a lower --lr, --clip 100, or a minimum scale (`min = 0.01` in `.split`)",
                ),
                TrainError::Unsupported(_) => (
                    vic::diag::Code::Unsupported.as_str(),
                    format!("training failed at step {step}: {error}"),
                    "drop `--runtime fused`: the reference runtime (`--runtime auto` or `reference`) runs every feature",
                ),
                _ => (
                    vic::diag::Code::Backend.as_str(),
                    format!("training failed at step {step}: {error}"),
                    "this is a fault in vic on a model the checker accepted: please report it with the model",
                ),
            };
            let kept = if ckpt.exists() {
                format!("the last good checkpoint is kept at {}", ckpt.display())
            } else {
                "no checkpoint was written before it".into()
            };
            eprintln!(
                "{:?}",
                miette::Report::new(
                    miette::MietteDiagnostic::new(msg)
                        .with_code(code)
                        .with_help(format!("{kept}; {advice}"))
                )
            );
            progress.error_line(*step, &error.to_string());
            FAILED
        }
        RunError::Checkpoint {
            step,
            interrupted: true,
            error,
        } => checkpoint_error(
            format!("interrupted at step {step}; the checkpoint could not be written: {error}"),
            "check that --out is a writable directory with space",
        ),
        RunError::Checkpoint { error, .. } => checkpoint_error(
            format!("cannot write the final checkpoint: {error}"),
            "check that --out is a writable directory",
        ),
        RunError::Evaluation(error) => train_error(error, "the final evaluation failed"),
    }
}

/// The checkpoint `--resume` names (a run directory or the file itself).
fn resume_path(a: &RunArgs) -> Option<std::path::PathBuf> {
    a.resume.as_ref().map(|dir| {
        if dir.is_dir() {
            dir.join("checkpoint.safetensors")
        } else {
            dir.clone()
        }
    })
}
