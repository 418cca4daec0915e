//! What `vic run` shows and records while [`vic::train::Trainer::run`] trains: the progress
//! bar (elapsed, ETA, running means of the ELBO and of each term by its readable name),
//! `metrics.jsonl`, Ctrl-C, and the curves drawn into `elbo.svg` at the end.
//!
//! Each `metrics.jsonl` line is one JSON object written in one write, with `step`, `split`
//! (`train` or `heldout`), `time` (Unix seconds, wall clock), `elbo`, and `terms`: an object
//! keyed by the labels of [`vic::render::label::term_labels`] (`{"log p(o)": -40.1,
//! "KL s (t = 1)": 0.8, …}`). Training lines add `lr`, `grad_norm` and (control)
//! `policy_entropy`; evaluations add `stderr` and `terms_stderr`; the last line has
//! `"final": true`; a failed step writes `{"step", "time", "error"}`.

use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vic::plot::CurveLog;
use vic::train::rundir::{error_line, eval_line, final_line, step_line, MetricsLog};
use vic::train::{EvalReport, Observer, StepStats, TrainError};

/// The observer of a `vic run`.
pub struct Progress {
    bar: ProgressBar,
    metrics: MetricsLog,
    labels: Vec<String>,
    total: u64,
    log_every: u64,
    stop: Arc<AtomicBool>,
    curves: CurveLog,
}

impl Progress {
    /// Opens `metrics` (appending when the run resumes) and the progress bar.
    pub fn new(
        metrics: &Path,
        append: bool,
        labels: Vec<String>,
        total: u64,
        log_every: u64,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Progress> {
        let file = MetricsLog::open(metrics, append)?;
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} {bar:30} {pos}/{len} {per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let n = labels.len();
        Ok(Progress {
            bar,
            metrics: file,
            labels,
            total,
            log_every: log_every.max(1),
            stop,
            curves: CurveLog::new(n),
        })
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// The line of a failed step.
    pub fn error_line(&mut self, step: u64, error: &str) {
        self.metrics.write(error_line(step, error));
    }

    /// The final evaluation's line.
    pub fn final_report(&mut self, step: u64, heldout: bool, r: &EvalReport) {
        self.curves.evaluated(step, r.elbo, r.stderr);
        self.metrics
            .write(final_line(&self.labels, step, heldout, r));
    }

    /// Draws `elbo.svg`: the ELBO (running mean and evaluations with their standard errors)
    /// and each term; `eval_name` says what the evaluations scored.
    pub fn plot(&mut self, path: &Path, name: &str, eval_name: &str) {
        let title = format!("vic run {name}");
        if let Err(e) = self.curves.draw(path, &title, eval_name, &self.labels) {
            eprintln!("warning: could not write elbo.svg: {e}");
        }
    }
}

impl Observer for Progress {
    fn should_stop(&mut self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn resumed(&mut self, step: u64, from: &Path, changed: &[String]) {
        if !changed.is_empty() {
            crate::exit::resume_changed(changed);
        }
        if step >= self.total {
            eprintln!(
                "{:?}",
                miette::Report::new(
                    miette::MietteDiagnostic::new(format!(
                        "the checkpoint is at step {step}, and the run asks for {} in all: there is nothing left to train",
                        self.total
                    ))
                    .with_code(vic::diag::Code::AlreadyTrained.as_str())
                    .with_severity(miette::Severity::Warning)
                    .with_help(format!(
                        "--steps counts every step, resumed ones included: pass a total above {step}, e.g. --steps {}",
                        step.saturating_mul(2).max(step + 1)
                    ))
                )
            );
        }
        eprintln!("resumed at step {step} from {}", from.display());
        self.bar.set_position(step.min(self.total));
        self.bar.reset_eta();
    }

    fn stepped(&mut self, s: &StepStats) {
        let keep = s.step.is_multiple_of(self.log_every) || s.step == self.total;
        let (re, rt) = self.curves.stepped(s.step, s.elbo, &s.terms, keep);
        if keep {
            self.metrics.write(step_line(&self.labels, s));
            let msg: Vec<String> = self
                .labels
                .iter()
                .zip(&rt)
                .map(|(n, v)| format!("{n} {v:.2}"))
                .collect();
            self.bar
                .set_message(format!("ELBO {re:.3} | {}", msg.join(" | ")));
        }
        self.bar.set_position(s.step);
    }

    fn evaluated(&mut self, step: u64, r: &EvalReport) {
        self.curves.evaluated(step, r.elbo, r.stderr);
        self.metrics.write(eval_line(&self.labels, step, r));
    }

    fn checkpoint_failed(&mut self, step: u64, error: &TrainError) {
        self.bar
            .suspend(|| eprintln!("warning: the checkpoint at step {step} failed: {error}"));
    }
}
