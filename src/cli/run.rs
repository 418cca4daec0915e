//! `vic run`: train with a progress bar, `metrics.jsonl`, atomic checkpoints, a final
//! per-term report on the held-out split, and `elbo.svg`.

use super::plot::{training, Curves};
use super::session::{checkpoint_error, flag_error, open, train_error};
use super::{FAILED, OK};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vic::train::{EngineChoice, Sampling, TrainConfig, TrainError, Trainer};

/// `--runtime`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Auto,
    Fused,
    Reference,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    pub file: PathBuf,
    /// Runtime: `fused` (the compiled program, CPU), `reference` (the dfdx interpreter, every
    /// feature and CUDA), or `auto` (fused where the model allows it).
    #[arg(long, value_enum, default_value_t = Runtime::Auto)]
    pub runtime: Runtime,
    /// Data file (.npz, .npy, .csv); default: the model's `data "…"`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Optimiser steps (total, counting resumed ones).
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<u64>,
    /// Passes over the training data (shuffled minibatches).
    #[arg(long)]
    pub epochs: Option<u64>,
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    pub lr: f64,
    /// Monte Carlo draws per held-out sequence in the final report.
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, or cuda (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Output directory (default: runs/<model>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from the checkpoint in this run directory.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Overwrite the results of an earlier run in the output directory.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Rollout length for control problems (default: the model's `horizon`, else 50).
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Global gradient-norm clipping.
    #[arg(long, allow_negative_numbers = true)]
    pub clip: Option<f64>,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// Linear learning-rate warmup steps.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Cosine learning-rate decay over the run.
    #[arg(long)]
    pub cosine: bool,
    /// Fraction of the data held out.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
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
}

/// Counts above this are a typo, not a request (they would exhaust memory).
pub const MAX_COUNT: usize = vic::limits::MAX_COUNT as usize;

/// Refuse (`vic::E202`, exit 1) a run whose estimated memory exceeds what is available:
/// `rows` sequences of `steps` steps through the model at once.
pub fn fits(model: &vic::ir::Model, rows: usize, steps: usize, what: &str) -> Result<(), u8> {
    let need = vic::limits::run_bytes(model, rows as u64, steps as u64);
    let have = vic::limits::available_bytes();
    if need <= have {
        return Ok(());
    }
    eprintln!(
        "{:?}",
        miette::Report::new(
            miette::MietteDiagnostic::new(format!(
                "{what} needs about {} ({rows} sequences × {steps} steps at once), but {} is available",
                vic::limits::human(need),
                vic::limits::human(have)
            ))
            .with_code(vic::diag::Code::OutOfMemory.as_str())
            .with_help("use a smaller --batch, --samples or horizon, or fewer importance samples (`iwae`)")
        )
    );
    Err(FAILED)
}

/// A flag error for the first count above [`MAX_COUNT`].
pub fn too_large(flags: &[(&str, usize)]) -> Option<u8> {
    flags.iter().find(|(_, v)| *v > MAX_COUNT).map(|(name, v)| {
        flag_error(
            format!("{name} {v} is larger than {MAX_COUNT}"),
            "use a smaller value; batches and rollouts this large do not fit in memory",
        )
    })
}

pub fn check_device(device: &str) -> Result<(), u8> {
    match device {
        "cpu" if !cfg!(feature = "cuda") => Ok(()),
        "cuda" if cfg!(feature = "cuda") => Ok(()),
        "cuda" => Err(flag_error("this vic was built without CUDA".into(), "rebuild with `cargo build --release --features cuda` on a machine with the CUDA toolkit")),
        "cpu" => Err(flag_error("this vic was built for CUDA".into(), "use `--device cuda`, or a build without `--features cuda`")),
        other => Err(flag_error(format!("unknown device `{other}`"), "devices: cpu, cuda")),
    }
}

/// One metrics line in one write, so a line is never split between writes.
fn write_line(f: &mut std::fs::File, v: &serde_json::Value) {
    let _ = f.write_all(format!("{v}\n").as_bytes());
}

/// A flag error unless `v` is a finite number > 0.
pub fn positive(flag: &str, v: f64, help: &str) -> Result<(), u8> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(flag_error(
            format!("{flag} {v} is not a positive number"),
            help,
        ))
    }
}

/// A flag error for the first count that is 0 (`None`: the flag was not given).
pub fn at_least_one(flags: &[(&str, Option<u64>)]) -> Result<(), u8> {
    match flags.iter().find(|(_, v)| *v == Some(0)) {
        None => Ok(()),
        Some((name, _)) => Err(flag_error(
            format!("{name} 0: the count must be at least 1"),
            "e.g. --steps 2000 --batch 128 --log-every 10",
        )),
    }
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

/// `--horizon` sets the rollout length of a control problem; a model fitted to data takes
/// its sequence length from the data.
pub fn horizon_applies(model: &vic::ir::Model, horizon: Option<usize>) -> Result<(), u8> {
    if horizon.is_some() && !model.is_control() {
        return Err(flag_error(
            format!(
                "--horizon is for control problems; `{}` takes its sequence length from its data",
                model.name
            ),
            "drop --horizon (or, for `vic sample`, use it to set the length of the drawn sequences)",
        ));
    }
    Ok(())
}

pub fn run(a: RunArgs, color: bool) -> u8 {
    if let Err(c) = validate(&a) {
        return c;
    }
    let session = match open(&a.file, color) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let data = match session.load_data(a.data.as_deref()) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let ir = session.model.ir();
    if let Err(c) = horizon_applies(ir, a.horizon) {
        return c;
    }
    let batch = a
        .batch
        .or(ir.objective.batch.map(|b| b as usize))
        .unwrap_or(128);
    let cfg = TrainConfig {
        batch,
        lr: a.lr,
        weight_decay: a.weight_decay,
        clip: a.clip,
        warmup: a.warmup,
        seed: a.seed,
        holdout: if data.as_ref().map(|d| d.n >= 10).unwrap_or(false) {
            a.holdout
        } else {
            0.0
        },
        sampling: if a.epochs.is_some() {
            Sampling::Epochs
        } else {
            Sampling::WithReplacement
        },
        horizon: a.horizon.unwrap_or(50),
        engine: match a.runtime {
            Runtime::Auto => EngineChoice::Auto,
            Runtime::Fused => EngineChoice::Fused,
            Runtime::Reference => EngineChoice::Reference,
        },
        ..TrainConfig::default()
    };
    let name = ir.name.clone();
    let mut tr = match Trainer::new(session.program, data, cfg) {
        Ok(t) => t,
        Err(e) => return train_error(&e, "cannot set up the model"),
    };
    if let Some(h) = a.horizon {
        tr.program.model.objective.horizon = Some(h as u32);
    }
    let total = match (a.steps, a.epochs, &tr.train) {
        (Some(s), _, _) => s,
        (None, Some(e), Some(d)) => e * (d.n.div_ceil(tr.cfg.batch.min(d.n).max(1)) as u64),
        (None, Some(_), None) => {
            return flag_error(
                format!("`{name}` has no data, so it has no epochs"),
                "give a control problem a number of optimiser steps: --steps N",
            )
        }
        (None, None, _) => 1000,
    };
    if a.cosine {
        tr.cfg.cosine_total = Some(total);
    }
    let k = tr.program.model.objective.iwae.max(1) as usize;
    let steps = tr.train.as_ref().map_or(tr.horizon(), |d| d.t.unwrap_or(1));
    let eval_rows = tr
        .heldout
        .as_ref()
        .or(tr.train.as_ref())
        .map_or(tr.cfg.batch, |d| d.n.min(256).saturating_mul(a.samples));
    if let Err(c) = fits(
        &tr.program.model,
        tr.cfg.batch.saturating_mul(k),
        steps,
        "a training step",
    )
    .and_then(|()| {
        fits(
            &tr.program.model,
            eval_rows.saturating_mul(k),
            steps,
            "the final evaluation",
        )
    }) {
        return c;
    }
    // A resumed run continues in the directory it resumes from, unless --out says otherwise.
    let resumed_dir = a.resume.as_ref().map(|r| {
        if r.is_dir() {
            r.clone()
        } else {
            r.parent().map(PathBuf::from).unwrap_or_default()
        }
    });
    let out = a
        .out
        .clone()
        .or(resumed_dir)
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            }
        })
        .unwrap_or_else(|| PathBuf::from("runs").join(&name));
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
    let _lock = match super::rundir::claim(&out, a.resume.is_some(), a.force) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let ckpt = out.join("checkpoint.safetensors");
    if let Some(dir) = &a.resume {
        let path = if dir.is_dir() {
            dir.join("checkpoint.safetensors")
        } else {
            dir.clone()
        };
        match tr.resume(&path) {
            Err(e) => {
                return checkpoint_error(
                    format!("cannot resume from `{}`: {e}", path.display()),
                    "pass a run directory written by `vic run` for this model",
                )
            }
            Ok(changed) if !changed.is_empty() => eprintln!(
                "{:?}",
                miette::Report::new(
                    miette::MietteDiagnostic::new(format!(
                        "resumed with settings that differ from the checkpoint's: {}",
                        changed.join(", ")
                    ))
                    .with_code(vic::diag::Code::ResumeChanged.as_str())
                    .with_severity(miette::Severity::Warning)
                    .with_help("the run continues with the new settings, so it is not the run an uninterrupted one would have been; pass the original flags to continue it exactly")
                )
            ),
            Ok(_) => {}
        }
        eprintln!("resumed at step {} from {}", tr.step, path.display());
    }
    let mut metrics = match std::fs::OpenOptions::new()
        .create(true)
        .append(a.resume.is_some())
        .write(true)
        .truncate(a.resume.is_none())
        .open(out.join("metrics.jsonl"))
    {
        Ok(f) => f,
        Err(e) => return flag_error(format!("cannot write metrics: {e}"), "check --out"),
    };
    let term_names: Vec<String> = tr
        .program
        .elbo
        .terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{}{}",
                t.kind.name().chars().take(2).collect::<String>(),
                i + 1
            ) + &format!("({})", t.owner)
        })
        .collect();
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_position(tr.step);
    let mut curve: Vec<(f64, f64)> = Vec::new();
    let mut term_curves: Vec<Vec<(f64, f64)>> = vec![Vec::new(); term_names.len()];
    let mut held_curve: Vec<(f64, f64, f64)> = Vec::new();
    let mut running: Option<(f64, Vec<f64>)> = None;
    let t0 = std::time::Instant::now();
    let first = tr.step;
    while tr.step < total {
        if stop.load(Ordering::SeqCst) {
            pb.finish_and_clear();
            let code = match tr.save(&ckpt) {
                Ok(()) => {
                    eprintln!(
                        "interrupted at step {}: checkpoint saved to {}",
                        tr.step,
                        ckpt.display()
                    );
                    130
                }
                Err(e) => checkpoint_error(
                    format!(
                        "interrupted at step {}; the checkpoint could not be written: {e}",
                        tr.step
                    ),
                    "check that --out is a writable directory with space",
                ),
            };
            return code;
        }
        let s = match tr.step() {
            Ok(s) => s,
            Err(e) => {
                pb.finish_and_clear();
                let (code, msg, advice) = match &e {
                    TrainError::NonFinite { .. } => (
                        "vic::E201",
                        format!("training diverged: {e}"),
                        "try a lower --lr, --clip 100, or a minimum scale (`min = 0.01` in `.split`)",
                    ),
                    TrainError::Unsupported(_) => (
                        vic::diag::Code::Unsupported.as_str(),
                        format!("training failed at step {}: {e}", tr.step + 1),
                        "drop `--runtime fused`: the reference runtime (`--runtime auto` or `reference`) runs every feature",
                    ),
                    _ => (
                        vic::diag::Code::Backend.as_str(),
                        format!("training failed at step {}: {e}", tr.step + 1),
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
                write_line(
                    &mut metrics,
                    &serde_json::json!({"step": tr.step + 1, "error": e.to_string()}),
                );
                return FAILED;
            }
        };
        running = Some(match running.take() {
            None => (s.elbo, s.terms.clone()),
            Some((e, ts)) => (
                0.95 * e + 0.05 * s.elbo,
                ts.iter()
                    .zip(&s.terms)
                    .map(|(a, b)| 0.95 * a + 0.05 * b)
                    .collect(),
            ),
        });
        let (re, rt) = running.clone().unwrap_or_default();
        if s.step % a.log_every == 0 || s.step == total {
            let terms: serde_json::Map<String, serde_json::Value> = term_names
                .iter()
                .cloned()
                .zip(s.terms.iter().map(|v| serde_json::json!(v)))
                .collect();
            write_line(
                &mut metrics,
                &serde_json::json!({"step": s.step, "split": "train", "elbo": s.elbo, "terms": terms, "lr": s.lr, "grad_norm": s.grad_norm, "policy_entropy": s.policy_entropy}),
            );
            curve.push((s.step as f64, re));
            for (c, v) in term_curves.iter_mut().zip(&rt) {
                c.push((s.step as f64, *v));
            }
            let msg: Vec<String> = term_names
                .iter()
                .zip(&rt)
                .map(|(n, v)| format!("{n} {v:.2}"))
                .collect();
            pb.set_message(format!("ELBO {re:.3} | {}", msg.join(" ")));
        }
        pb.set_position(s.step);
        if a.eval_every > 0 && s.step % a.eval_every == 0 && tr.heldout.is_some() {
            if let Ok(r) = tr.evaluate(None, 1, a.seed) {
                held_curve.push((s.step as f64, r.elbo, r.stderr));
                write_line(
                    &mut metrics,
                    &serde_json::json!({"step": s.step, "split": "heldout", "elbo": r.elbo, "stderr": r.stderr}),
                );
            }
        }
        if s.step % a.checkpoint_every == 0 {
            if let Err(e) = tr.save(&ckpt) {
                eprintln!("warning: checkpoint failed: {e}");
            }
        }
    }
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    if let Err(e) = tr.save(&ckpt) {
        return checkpoint_error(
            format!("cannot write the final checkpoint: {e}"),
            "check that --out is a writable directory",
        );
    }
    let report = match tr.evaluate(None, a.samples, a.seed) {
        Ok(r) => r,
        Err(e) => return train_error(&e, "the final evaluation failed"),
    };
    if report.non_finite().is_some() {
        return super::eval::non_finite_result(&report, "the trained parameters");
    }
    held_curve.push((tr.step as f64, report.elbo, report.stderr));
    write_line(
        &mut metrics,
        &serde_json::json!({"step": tr.step, "split": if tr.heldout.is_some() { "heldout" } else { "train" }, "final": true, "elbo": report.elbo, "stderr": report.stderr, "terms": report.terms}),
    );
    let steps_done = tr.step - first;
    println!(
        "{name}: {steps_done} steps in {secs:.1} s ({:.0} steps/s); {} ELBO per sequence:",
        steps_done as f64 / secs.max(1e-9),
        if tr.heldout.is_some() {
            "held-out"
        } else {
            "training-data"
        }
    );
    print!("{}", report.text());
    println!("checkpoint: {}", ckpt.display());
    println!("runtime: {}", tr.engine());
    let terms: Vec<(String, Vec<(f64, f64)>)> = term_names.into_iter().zip(term_curves).collect();
    let curves = Curves {
        title: &format!("vic run {name}"),
        train: &curve,
        eval_name: match (&tr.heldout, &tr.train) {
            (Some(_), _) => "held-out",
            (None, Some(_)) => "evaluation (training data)",
            (None, None) => "evaluation",
        },
        eval: &held_curve,
        terms: &terms,
    };
    if let Err(e) = training(&out.join("elbo.svg"), &curves) {
        eprintln!("warning: could not write elbo.svg: {e}");
    }
    OK
}
