//! [`Trainer::run`]: a whole training run — resume, the loop of [`Trainer::step`], held-out
//! evaluations, checkpoints, an interruption, the final checkpoint and evaluation — reported
//! to an [`Observer`] (the command line draws its progress bar and writes `metrics.jsonl`
//! from one; a library user can collect the statistics in a `Vec`).

use super::{EvalReport, StepStats, TrainError, Trainer};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a run reports, as it happens. Every method has a default that does nothing.
pub trait Observer {
    /// Called before each step: `true` stops the run after a checkpoint (Ctrl-C).
    fn should_stop(&mut self) -> bool {
        false
    }
    /// The run resumed at `step` from `from`; `changed` lists the settings that differ from
    /// the checkpoint's (`"seed 0 → 1"`).
    fn resumed(&mut self, step: u64, from: &Path, changed: &[String]) {
        let _ = (step, from, changed);
    }
    /// After each optimiser step.
    fn stepped(&mut self, stats: &StepStats) {
        let _ = stats;
    }
    /// After a held-out evaluation during training (every `eval_every` steps).
    fn evaluated(&mut self, step: u64, report: &EvalReport) {
        let _ = (step, report);
    }
    /// A periodic checkpoint could not be written; the run goes on.
    fn checkpoint_failed(&mut self, step: u64, error: &TrainError) {
        let _ = (step, error);
    }
}

/// An observer that observes nothing.
impl Observer for () {}

/// How a run checkpoints, evaluates and resumes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Steps to reach (counting resumed ones).
    pub total: u64,
    /// Where checkpoints are written (atomically); `None` writes none.
    pub checkpoint: Option<PathBuf>,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Steps between held-out evaluations (0: only the final one); one draw per sequence.
    pub eval_every: u64,
    /// Monte Carlo draws per sequence in the final evaluation.
    pub final_samples: usize,
    /// A checkpoint to resume from.
    pub resume: Option<PathBuf>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// `total` steps were reached (or already had been, on resume).
    Finished,
    /// [`Observer::should_stop`] asked to stop; a checkpoint was written.
    Interrupted,
}

/// The result of [`Trainer::run`].
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// How it ended.
    pub end: RunEnd,
    /// The step it started from (0, or the resumed checkpoint's).
    pub first_step: u64,
    /// The step it ended at.
    pub last_step: u64,
    /// Wall-clock seconds of the loop.
    pub seconds: f64,
    /// The final evaluation (held-out split, else the training data); `None` when
    /// interrupted.
    pub report: Option<EvalReport>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The checkpoint to resume from could not be used.
    #[error("cannot resume from `{path}`: {error}")]
    Resume {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        error: TrainError,
    },
    /// A step failed (NaN, an unsupported feature, a backend fault); nothing was changed by
    /// it, and the last periodic checkpoint is kept.
    #[error("{error}")]
    Step {
        /// The step that failed (1-based).
        step: u64,
        /// Why.
        error: TrainError,
    },
    /// The final or the interruption's checkpoint could not be written.
    #[error("{error}")]
    Checkpoint {
        /// The step it was written at.
        step: u64,
        /// Whether the run was interrupted.
        interrupted: bool,
        /// Why.
        error: TrainError,
    },
    /// The final evaluation failed.
    #[error("{0}")]
    Evaluation(TrainError),
}

impl Trainer {
    /// Train up to `opts.total` steps: resume if asked, then [`Trainer::step`] in a loop,
    /// with a held-out evaluation every `eval_every` steps and a checkpoint every
    /// `checkpoint_every`; on [`Observer::should_stop`] write a checkpoint and return
    /// [`RunEnd::Interrupted`]; at the end write the final checkpoint and evaluate with
    /// `final_samples` draws per sequence (seeded by the configuration's seed).
    pub fn run(
        &mut self,
        opts: &RunOptions,
        obs: &mut impl Observer,
    ) -> Result<RunOutcome, RunError> {
        if let Some(path) = &opts.resume {
            let changed = self.resume(path).map_err(|error| RunError::Resume {
                path: path.clone(),
                error,
            })?;
            obs.resumed(self.step, path, &changed);
        }
        let first_step = self.step;
        let t0 = Instant::now();
        let save = |tr: &Trainer, interrupted: bool| match &opts.checkpoint {
            Some(p) => tr.save(p).map_err(|error| RunError::Checkpoint {
                step: tr.step,
                interrupted,
                error,
            }),
            None => Ok(()),
        };
        while self.step < opts.total {
            // Collective in a distributed run: every rank agrees once per iteration.
            if self.any_rank(obs.should_stop()) {
                save(self, true)?;
                return Ok(RunOutcome {
                    end: RunEnd::Interrupted,
                    first_step,
                    last_step: self.step,
                    seconds: t0.elapsed().as_secs_f64(),
                    report: None,
                });
            }
            let stats = self.step().map_err(|error| RunError::Step {
                step: self.step + 1,
                error,
            })?;
            obs.stepped(&stats);
            let s = stats.step;
            if opts.eval_every > 0 && s % opts.eval_every == 0 && self.heldout.is_some() {
                if let Ok(r) = self.evaluate(None, 1, self.cfg.seed) {
                    obs.evaluated(s, &r);
                }
            }
            if opts.checkpoint_every > 0 && s % opts.checkpoint_every == 0 {
                if let Err(RunError::Checkpoint { error, .. }) = save(self, false) {
                    obs.checkpoint_failed(s, &error);
                }
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        save(self, false)?;
        let report = self
            .evaluate(None, opts.final_samples, self.cfg.seed)
            .map_err(RunError::Evaluation)?;
        Ok(RunOutcome {
            end: RunEnd::Finished,
            first_step,
            last_step: self.step,
            seconds,
            report: Some(report),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::TrainConfig;

    /// Records what the run reports.
    #[derive(Default)]
    struct Log {
        steps: Vec<u64>,
        evals: Vec<u64>,
        stop_after: Option<usize>,
    }

    impl Observer for Log {
        fn should_stop(&mut self) -> bool {
            self.stop_after.is_some_and(|n| self.steps.len() >= n)
        }
        fn stepped(&mut self, s: &StepStats) {
            self.steps.push(s.step);
        }
        fn evaluated(&mut self, step: u64, _: &EvalReport) {
            self.evals.push(step);
        }
    }

    fn trainer() -> Trainer {
        let src = std::fs::read_to_string("models/lqr.vmodel").expect("models/lqr.vmodel");
        let m = crate::compile(&src, "lqr.vmodel").expect("compiles");
        let p = crate::lower::Program::new(m.ir(), &m.elbo()).expect("lowers");
        let cfg = TrainConfig {
            batch: 4,
            horizon: Some(3),
            ..TrainConfig::default()
        };
        Trainer::new(p, None, cfg).expect("sets up")
    }

    fn opts(dir: &Path, total: u64) -> RunOptions {
        RunOptions {
            total,
            checkpoint: Some(dir.join("c.safetensors")),
            checkpoint_every: 2,
            eval_every: 0,
            final_samples: 1,
            resume: None,
        }
    }

    /// Five steps reported one by one, a checkpoint at the end, and a resumed run that
    /// starts at step 5 and takes the three steps left to 8.
    #[test]
    fn a_run_steps_to_its_total_and_resumes_from_its_checkpoint() {
        let dir = std::env::temp_dir().join(format!("vic-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = Log::default();
        let out = trainer().run(&opts(&dir, 5), &mut log).unwrap();
        assert_eq!(log.steps, [1, 2, 3, 4, 5]);
        assert_eq!((out.first_step, out.last_step), (0, 5));
        assert_eq!(out.end, RunEnd::Finished);
        assert!(out.report.is_some());
        let mut again = Log::default();
        let mut o = opts(&dir, 8);
        o.resume = Some(dir.join("c.safetensors"));
        let out = trainer().run(&o, &mut again).unwrap();
        assert_eq!(again.steps, [6, 7, 8]);
        assert_eq!(out.first_step, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A stop request after two steps writes the checkpoint at step 2 and evaluates nothing.
    #[test]
    fn a_stop_request_checkpoints_and_ends_the_run() {
        let dir = std::env::temp_dir().join(format!("vic-runner-stop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = Log {
            stop_after: Some(2),
            ..Log::default()
        };
        let out = trainer().run(&opts(&dir, 10), &mut log).unwrap();
        assert_eq!(out.end, RunEnd::Interrupted);
        assert_eq!(out.last_step, 2);
        assert!(out.report.is_none());
        let mut tr = trainer();
        tr.load_params(&dir.join("c.safetensors")).unwrap();
        assert_eq!(tr.step, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
