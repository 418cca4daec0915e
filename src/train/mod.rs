//! Stage 6, train: optimiser, minibatches, evaluation, checkpoints.
//!
//! Input: a compiled model, optionally a dataset, a [`TrainConfig`]. Output: parameters,
//! per-step statistics, evaluation reports, checkpoints.
//! Invariants:
//! - everything random at step `n` (noise, minibatch indices) is drawn from generators seeded
//!   by `(seed, n)`, so a run resumed from a checkpoint at step `n` continues bit-identically;
//! - a step whose ELBO, any term, or the gradient is NaN/Inf changes nothing and returns
//!   [`TrainError::NonFinite`] naming the step and the term;
//! - the objective is summed over the batch (as Pyro's SVI loss); reports are per sequence.

mod batch;
mod checkpoint;
pub mod distributed;
mod evaluate;
mod evidence;
pub mod params;
mod plan;
mod predictive;
mod report;
pub mod rundir;
mod runner;
mod sample;

pub use batch::{control_batch, data_batch, specs_of};
pub use evaluate::EVAL_ROWS;
pub use params::{named_params, NamedParam};
pub use plan::{PlanError, RunFlags, RunPlan, DEFAULT_BATCH, DEFAULT_STEPS, MIN_ROWS_TO_SPLIT};
pub use predictive::{PosteriorDraws, PredictiveCheck, PredictiveError, Summary};
pub use report::{mean_se, EvalReport, Evidence, Gap, StepStats, TermStat};
pub use runner::{Observer, RunEnd, RunError, RunOptions, RunOutcome};
pub use sample::{Draws, SampleError};

use crate::data::Dataset;
use crate::lower::{Batch, Program};
use crate::runtime::nets::params::ParamStore;
use crate::runtime::optim::{Adam, AdamConfig, LrSchedule};
use crate::runtime::{backward, rng, Dev, RtError};
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};

/// How minibatches are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sampling {
    /// Random indices each step (as the Pyro/NumPyro benchmarks do).
    WithReplacement,
    /// Shuffled passes over the data.
    Epochs,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
/// How a [`Trainer`] trains (see [`RunPlan`] to resolve it from a user's flags).
pub struct TrainConfig {
    /// Sequences per minibatch (control problems: rollouts per step).
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's β₁, β₂.
    pub betas: [f64; 2],
    /// Adam's ε.
    pub eps: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clipping.
    pub clip: Option<f64>,
    /// Steps of linear learning-rate warm-up.
    pub warmup: u64,
    /// Cosine decay to `min_lr_factor` over this many steps (None: constant after warmup).
    pub cosine_total: Option<u64>,
    /// The cosine schedule's final rate, as a fraction of `lr`.
    pub min_lr_factor: f64,
    /// Seeds the initialisation, the minibatches, the noise and the held-out split.
    pub seed: u64,
    /// Fraction of the data held out for evaluation.
    pub holdout: f64,
    /// How minibatches are drawn.
    pub sampling: Sampling,
    /// Rollout length of control problems (no data); `None` takes the model's `horizon`,
    /// else 50 ([`Trainer::horizon`]).
    pub horizon: Option<usize>,
    /// Score-function baseline: moving-average decay.
    pub baseline_decay: f64,
    /// Which runtime trains (not part of the run's identity: results agree up to rounding).
    #[serde(default, skip_serializing)]
    pub engine: EngineChoice,
    /// Workers of the fused runtime (0: one per core, at most 2).
    #[serde(default, skip_serializing)]
    pub threads: usize,
    /// Rows × steps of one fused evaluation pass (0: [`EVAL_ROWS`]); a bigger evaluation batch
    /// runs as several passes over windows of its rows, with the same draws.
    #[serde(default, skip_serializing)]
    pub eval_rows: usize,
}

/// The runtime a [`Trainer`] steps with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineChoice {
    /// The fused program where the model and device allow it, else the reference path.
    #[default]
    Auto,
    /// The reference interpreter on dfdx (every feature, CPU and CUDA).
    Reference,
    /// The fused program; a model it cannot run is an error.
    Fused,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch: 128,
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            clip: None,
            warmup: 0,
            cosine_total: None,
            min_lr_factor: 0.0,
            seed: 0,
            holdout: 0.1,
            sampling: Sampling::WithReplacement,
            horizon: None,
            baseline_decay: 0.9,
            engine: EngineChoice::Auto,
            threads: 0,
            eval_rows: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
/// Why a training step, an evaluation or a checkpoint failed.
pub enum TrainError {
    #[error("step {step}: {what} is not finite ({value})")]
    /// The ELBO, a term or the gradient norm is NaN or infinite; nothing was changed.
    NonFinite {
        /// The step (1-based).
        step: u64,
        /// The quantity (the ELBO, a term, the gradient norm).
        what: String,
        /// Its value.
        value: f64,
    },
    #[error("{0}")]
    /// The tensor runtime failed.
    Runtime(#[from] RtError),
    #[error("checkpoint: {0}")]
    /// A checkpoint cannot be read, written or used.
    Checkpoint(String),
    #[error("the fused runtime cannot run this model: {0}")]
    /// The fused runtime was asked for a model it cannot run.
    Unsupported(String),
    #[error("distributed training: {0}")]
    /// A data-parallel run failed (a setting it cannot split, ranks that disagree, a transport
    /// fault).
    Distributed(String),
}

/// What a checkpoint says of the run that wrote it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckpointInfo {
    /// Optimiser steps taken.
    pub step: u64,
    /// The held-out fraction of its data.
    pub holdout: f64,
    /// Its seed (which also drew the held-out split).
    pub seed: u64,
}

/// What a runtime hands the optimiser after one forward and backward pass: the batch's
/// statistics, and every parameter's host values and loss gradient in the store's order.
struct Pass {
    elbo: f64,
    terms: Vec<f64>,
    policy_entropy: Option<f64>,
    values: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    /// Which parameters this step updates (those the program reads).
    update: Vec<bool>,
}

/// The training loop's state.
pub struct Trainer {
    /// The lowered model.
    pub program: Program,
    /// The parameters.
    pub store: ParamStore,
    /// The optimiser and its state.
    pub adam: Adam,
    /// The configuration.
    pub cfg: TrainConfig,
    /// The training split (`None` for a control problem).
    pub train: Option<Dataset>,
    /// The held-out split, when data was held out.
    pub heldout: Option<Dataset>,
    /// Optimiser steps taken.
    pub step: u64,
    /// Score-function baseline (moving average of the per-sequence ELBO).
    pub baseline: f64,
    dev: Dev,
    /// Compiled programs by batch shape (at most two: the full batch and an epoch's last).
    fused: Vec<crate::fused::Engine>,
    /// Compiled evaluation programs by model and batch shape (forward only; `evaluate.rs`).
    eval_fused: std::sync::Mutex<Vec<evaluate::EvalEngine>>,
    /// Why the fused runtime is not used (decided in [`Trainer::new`], before any step).
    fused_off: Option<String>,
    /// Distributed hook: this process's part of a data-parallel job (`None`: the whole batch).
    shard: Option<distributed::Shard>,
}

/// The rollout length when neither the configuration nor the model gives one.
pub const DEFAULT_HORIZON: usize = 50;

/// A requested horizon, else the model's `horizon`, else [`DEFAULT_HORIZON`].
pub fn resolve_horizon(requested: Option<usize>, model: &crate::ir::Model) -> usize {
    requested
        .or(model.objective.horizon.map(|h| h as usize))
        .unwrap_or(DEFAULT_HORIZON)
}

/// A generator for one purpose at one step: independent streams, reproducible on resume.
fn stream(seed: u64, step: u64, purpose: u64) -> rng::Rng {
    // The run's key: one ChaCha block derived from the seed, the same for every stream of the
    // run, so it is derived once per thread and seed (a tiny model's step draws two streams,
    // and deriving the key each time was a few per cent of it).
    thread_local! {
        static KEY: std::cell::Cell<Option<(u64, u64)>> = const { std::cell::Cell::new(None) };
    }
    let a = KEY.with(|k| match k.get() {
        Some((s0, a)) if s0 == seed => a,
        _ => {
            let mut s = rand::rngs::StdRng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15);
            let a: u64 = s.gen();
            k.set(Some((seed, a)));
            a
        }
    });
    rng::seeded(
        a ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ purpose.wrapping_mul(0x94D0_49BB_1331_11EB),
    )
}

impl Trainer {
    /// A trainer with freshly initialised parameters. `data` is split into train and
    /// held-out parts by `cfg.holdout` (seeded).
    pub fn new(
        program: Program,
        data: Option<Dataset>,
        cfg: TrainConfig,
    ) -> Result<Trainer, TrainError> {
        let fused_off = decide_runtime(&program, cfg.engine)?;
        let dev = Dev::default();
        let mut init_rng = stream(cfg.seed, u64::MAX, 0);
        let store = program.init_params(&dev, &mut init_rng)?;
        let adam = Adam::new(AdamConfig {
            lr: cfg.lr,
            betas: cfg.betas,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            decoupled: false,
        });
        let (train, heldout) = match data {
            Some(d) if cfg.holdout > 0.0 && d.n >= 2 => {
                let (a, b) = d.split(cfg.holdout, cfg.seed);
                (Some(a), if b.n > 0 { Some(b) } else { None })
            }
            Some(d) => (Some(d), None),
            None => (None, None),
        };
        Ok(Trainer {
            program,
            store,
            adam,
            cfg,
            train,
            heldout,
            step: 0,
            baseline: 0.0,
            dev,
            fused: Vec::new(),
            eval_fused: std::sync::Mutex::new(Vec::new()),
            fused_off,
            shard: None,
        })
    }

    fn schedule(&self) -> LrSchedule {
        match self.cfg.cosine_total {
            Some(total) => LrSchedule::Cosine {
                warmup: self.cfg.warmup,
                total,
                min_factor: self.cfg.min_lr_factor,
            },
            None if self.cfg.warmup > 0 => LrSchedule::LinearWarmup {
                warmup: self.cfg.warmup,
            },
            None => LrSchedule::Constant,
        }
    }

    /// Importance samples per sequence (IWAE).
    fn iwae(&self) -> usize {
        self.program.model.objective.iwae.max(1) as usize
    }

    /// The batch for step `n`: this rank's rows of the global batch, their first row and
    /// the global batch's rows.
    fn batch_at(&self, n: u64) -> Result<(Batch, usize, usize), TrainError> {
        let k = self.iwae();
        // Distributed hook: the rows of the global batch this rank computes.
        let part = |total: usize| match &self.shard {
            Some(s) => s.rows(total),
            None => 0..total,
        };
        match &self.train {
            Some(d) => {
                let mut r = stream(self.cfg.seed, n, 1);
                let idx: Vec<usize> = match self.cfg.sampling {
                    Sampling::WithReplacement => (0..self.cfg.batch.max(1))
                        .map(|_| r.gen_range(0..d.n))
                        .collect(),
                    Sampling::Epochs => {
                        let b = self.cfg.batch.min(d.n).max(1);
                        let per_epoch = d.n.div_ceil(b) as u64;
                        let epoch = n / per_epoch;
                        let mut perm: Vec<usize> = (0..d.n).collect();
                        let mut er = stream(self.cfg.seed, epoch, 2);
                        for i in (1..perm.len()).rev() {
                            perm.swap(i, er.gen_range(0..=i));
                        }
                        let start = ((n % per_epoch) as usize) * b;
                        perm[start..(start + b).min(d.n)].to_vec()
                    }
                };
                let rows = part(idx.len());
                let (start, total) = (rows.start, idx.len() * k);
                Ok((data_batch(&self.program, d, &idx[rows], k), start, total))
            }
            None => {
                let total = self.cfg.batch * k;
                let rows = part(total);
                let b = rows.len();
                Ok((
                    control_batch(&self.program, b, self.horizon()),
                    rows.start,
                    total,
                ))
            }
        }
    }

    /// The rollout length of a control problem: the configured one, else the model's
    /// `horizon`, else [`DEFAULT_HORIZON`]. The one place the horizon is resolved.
    pub fn horizon(&self) -> usize {
        resolve_horizon(self.cfg.horizon, &self.program.model)
    }

    fn term_name(&self, i: usize) -> String {
        let t = &self.program.elbo.terms[i];
        let kind = t.kind.name();
        let range = match t.range {
            crate::derive::Range::Static => String::new(),
            crate::derive::Range::At { t } => format!(" at t = {t}"),
            crate::derive::Range::From { t } => format!(" for t ≥ {t}"),
        };
        format!("term {} ({kind} of {}{range})", i + 1, t.owner)
    }

    /// Whether this trainer trains on the fused runtime (decided in [`Trainer::new`]).
    pub fn runs_fused(&self) -> bool {
        self.cfg.engine != EngineChoice::Reference && self.fused_off.is_none()
    }

    /// Which runtime trains: `"fused"` or `"reference"` (with the reason). Decided when the
    /// trainer is made, so it is the same before the first step and after the last.
    pub fn engine(&self) -> String {
        match (&self.fused_off, self.fused.last()) {
            (Some(why), _) => format!("reference ({why})"),
            _ if self.cfg.engine == EngineChoice::Reference => "reference".into(),
            (None, Some(e)) => {
                let (ops, floats) = e.size();
                format!(
                    "fused, {} worker(s), {ops} ops, {:.1} MiB planned",
                    e.workers(),
                    floats as f64 * 4.0 / 1048576.0
                )
            }
            (None, None) => "fused".into(),
        }
    }

    /// The compiled program for a batch shape, built on first use; `None` means the
    /// reference path runs this step.
    fn fused_for(&mut self, b: usize, t: usize) -> Result<Option<usize>, TrainError> {
        if self.cfg.engine == EngineChoice::Reference || self.fused_off.is_some() {
            return Ok(None);
        }
        if let Some(i) = self.fused.iter().position(|e| e.shape() == (b, t)) {
            return Ok(Some(i));
        }
        let e = self.build_fused(&self.program, b, t)?;
        if self.fused.len() >= 2 {
            self.fused.remove(0);
        }
        self.fused.push(e);
        Ok(Some(self.fused.len() - 1))
    }

    /// `program` (the trainer's, or an evaluation's copy) compiled for batches of `b`
    /// sequences of `t` steps, with the store's parameters.
    fn build_fused(
        &self,
        program: &Program,
        b: usize,
        t: usize,
    ) -> Result<crate::fused::Engine, TrainError> {
        // The capability table accepted the program, so building it cannot fail: a failure is
        // a fault in vic, reported as one (not a silent change of runtime mid-run).
        crate::fused::Engine::new(program, &self.store, b, t, self.cfg.threads).map_err(|u| {
            TrainError::Runtime(RtError::Fault(format!(
                "the fused runtime could not build a model its capability table accepts \
                 ({}); `--runtime reference` runs it",
                u.0
            )))
        })
    }

    /// Parameters changed outside a step (resume, load): refresh the compiled programs.
    fn params_changed(&mut self) {
        for e in &mut self.fused {
            e.pull(&self.store);
        }
    }

    fn check_forward(&self, n: u64, terms: &[f64], elbo: f64) -> Result<(), TrainError> {
        for (i, v) in terms.iter().enumerate() {
            if !v.is_finite() {
                return Err(TrainError::NonFinite {
                    step: n + 1,
                    what: self.term_name(i),
                    value: *v,
                });
            }
        }
        if !elbo.is_finite() {
            return Err(TrainError::NonFinite {
                step: n + 1,
                what: "the ELBO".into(),
                value: elbo,
            });
        }
        Ok(())
    }

    fn finish_step(&mut self, n: u64, elbo: f64) {
        self.step += 1;
        let d = self.cfg.baseline_decay;
        self.baseline = if n == 0 {
            elbo
        } else {
            d * self.baseline + (1.0 - d) * elbo
        };
    }

    /// One optimiser step.
    pub fn step(&mut self) -> Result<StepStats, TrainError> {
        let (batch, start, total) = self.batch_at(self.step)?;
        self.step_on(batch, start, total)
    }

    /// One optimiser step on a batch the caller drew (an agent's replay windows), on the
    /// fused runtime: the step counter, noise streams and checks are [`Trainer::step`]'s.
    pub fn step_batch(&mut self, batch: Batch) -> Result<StepStats, TrainError> {
        if self.fused_for(batch.b, batch.t.max(1))?.is_none() {
            return Err(TrainError::Unsupported(
                self.fused_off
                    .clone()
                    .unwrap_or_else(|| "the reference runtime was chosen".into()),
            ));
        }
        let total = batch.b;
        self.step_on(batch, 0, total)
    }

    /// The compiled program for batches of `b` sequences of `t` steps, once a step has built
    /// it (its parameter mirror is the authoritative copy while training).
    pub fn compiled(&self, b: usize, t: usize) -> Option<&crate::fused::Engine> {
        self.fused.iter().find(|e| e.shape() == (b, t))
    }

    /// The one optimiser loop body, whichever runtime computes the gradient: rows
    /// `start..start + batch.b` of a global batch of `total` rows. The runtime runs the forward
    /// and backward passes and hands over host gradients and values ([`Pass`]); the checks,
    /// the clipping, Adam and the write-back are the same for both.
    fn step_on(
        &mut self,
        batch: Batch,
        start: usize,
        total: usize,
    ) -> Result<StepStats, TrainError> {
        let n = self.step;
        let fused = self.fused_for(batch.b, batch.t.max(1))?;
        let Pass {
            elbo,
            terms,
            policy_entropy,
            mut values,
            mut grads,
            update,
        } = match fused {
            Some(i) => self.fused_pass(i, &batch, start, total)?,
            None => self.reference_pass(&batch, total)?,
        };
        if let Some(s) = &self.shard {
            s.grads(grads.iter_mut()); // distributed hook: the sum over ranks
        }
        let norm = crate::runtime::optim::norm_of(grads.iter().map(|g| g.as_slice()));
        if !norm.is_finite() {
            if let Some(i) = fused {
                self.fused[i].give_back(values, grads);
            }
            return Err(TrainError::NonFinite {
                step: n + 1,
                what: "the gradient norm".into(),
                value: norm,
            });
        }
        if let Some(c) = self.cfg.clip {
            let f = crate::runtime::optim::clip_factor(norm, c);
            if f < 1.0 {
                for g in grads.iter_mut().flatten() {
                    *g = (*g as f64 * f) as f32;
                }
            }
        }
        // Adam in place, the parameters split over the fused runtime's workers; a parameter
        // the program does not read (an actor's, say) is not this optimiser's.
        let lr = self.schedule().lr(self.cfg.lr, n);
        let workers = fused.map_or(1, |i| self.fused[i].workers());
        {
            let k = self.adam.begin(lr);
            let names = self.store.iter().map(|(n, _)| n.as_str());
            let sizes: Vec<(&str, usize)> = (names.zip(values.iter()).zip(&update))
                .filter(|(_, u)| **u)
                .map(|((n, v), _)| (n, v.len()))
                .collect();
            let moments = self.adam.moments(&sizes);
            let items: Vec<_> = (values.iter_mut().zip(grads.iter()).zip(&update))
                .filter(|(_, u)| **u)
                .map(|(vg, _)| vg)
                .zip(moments)
                .collect();
            let apply = |((v, g), m): ((&mut Vec<f32>, &Vec<f32>), _)| k.apply(v, g, m);
            if workers > 1 {
                crate::fused::handoff::each(items, |((v, _), _)| v.len(), apply);
            } else {
                items.into_iter().for_each(apply);
            }
        }
        // The new values into the store (whose tensors need not be shareable across threads:
        // CUDA's are not), then back to the program that owns them; other compiled shapes read
        // the store's values on their next use.
        for ((v, (_, p)), u) in values.iter().zip(self.store.iter_mut()).zip(&update) {
            if *u {
                p.set_host(v);
            }
        }
        if let Some(i) = fused {
            self.fused[i].give_back(values, grads);
            for j in (0..self.fused.len()).filter(|j| *j != i) {
                self.fused[j].pull(&self.store);
            }
        }
        self.finish_step(n, elbo);
        self.check_ranks()?;
        Ok(StepStats {
            step: self.step,
            elbo,
            terms,
            lr,
            grad_norm: norm,
            policy_entropy,
        })
    }

    /// Forward and backward on compiled program `i`.
    fn fused_pass(
        &mut self,
        i: usize,
        batch: &Batch,
        start: usize,
        total: usize,
    ) -> Result<Pass, TrainError> {
        let n = self.step;
        let mut r = stream(self.cfg.seed, n, 3);
        self.fused[i].set_window(start, total);
        self.fused[i].set_baseline(self.baseline as f32);
        let mut fwd = self.fused[i].forward(&self.program, batch, &mut r, n);
        let elbo = self.global_stats(&fwd.elbo, &mut fwd.terms, total);
        self.check_forward(n, &fwd.terms, elbo)?;
        let eng = &mut self.fused[i];
        if let Some(s) = &self.shard {
            eng.settle(|v| s.sums(v)); // distributed hook: batch means over ranks
        }
        eng.backward(batch);
        let update = (0..eng.values.len()).map(|p| eng.reads(p)).collect();
        let (values, grads) = eng.lend();
        Ok(Pass {
            elbo,
            terms: fwd.terms,
            policy_entropy: fwd.policy_entropy.map(f64::from),
            values,
            grads,
            update,
        })
    }

    /// Forward and backward on the reference interpreter (dfdx).
    fn reference_pass(&mut self, batch: &Batch, total: usize) -> Result<Pass, TrainError> {
        let n = self.step;
        self.reference_distributable()?;
        let mut r = self.reference_noise(n);
        let traced = self.store.trace();
        let fwd = self
            .program
            .forward(&traced, batch, &mut r, n, self.baseline as f32)?;
        let elbo_host = fwd.elbo.as_vec();
        let mut terms: Vec<f64> = fwd.terms.iter().map(|t| mean(&t.as_vec())).collect();
        let elbo = self.global_stats(&elbo_host, &mut terms, total);
        self.check_forward(n, &terms, elbo)?;
        drop(traced);
        let mut g = backward(fwd.objective.negate());
        let mut by_name = self.store.grads(&mut g);
        let (mut values, mut grads) = (Vec::new(), Vec::new());
        for (name, p) in self.store.iter() {
            values.push(p.to_host());
            grads.push(by_name.remove(name).unwrap_or_else(|| vec![0.0; p.numel()]));
        }
        let update = vec![true; values.len()];
        Ok(Pass {
            elbo,
            terms,
            policy_entropy: fwd.policy_entropy.map(f64::from),
            values,
            grads,
            update,
        })
    }

    /// Split the training data as a run with `holdout` and `seed` split it (as
    /// [`Trainer::new`] does), so that an evaluation can score that run's held-out rows.
    pub fn resplit(&mut self, holdout: f64, seed: u64) {
        let all = match (self.train.take(), self.heldout.take()) {
            (Some(t), None) => t,
            (t, h) => {
                self.train = t;
                self.heldout = h;
                return;
            }
        };
        if holdout > 0.0 && all.n >= 2 {
            let (a, b) = all.split(holdout, seed);
            self.train = Some(a);
            self.heldout = (b.n > 0).then_some(b);
        } else {
            self.train = Some(all);
        }
    }
}

/// The runtime a trainer of `program` uses, decided once from the capability table
/// ([`crate::fused::support`]): `None` for the fused runtime (or the reference one, when it
/// was chosen), else why the reference runtime runs. Asking for the fused runtime for a program
/// it does not run is [`TrainError::Unsupported`].
pub fn decide_runtime(
    program: &Program,
    choice: EngineChoice,
) -> Result<Option<String>, TrainError> {
    if choice == EngineChoice::Reference {
        return Ok(None);
    }
    let why = if cfg!(feature = "cuda") {
        Some("is CPU-only".to_string())
    } else {
        (crate::fused::support(program).err()).map(|u| format!("lacks {}", u.0))
    };
    match (why, choice) {
        (Some(why), EngineChoice::Fused) => Err(TrainError::Unsupported(format!("it {why}"))),
        (why, _) => Ok(why.map(|w| format!("the fused runtime {w}"))),
    }
}

fn mean(v: &[f32]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64
}
