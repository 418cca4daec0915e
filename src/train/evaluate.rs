//! Evaluation of a trainer's parameters: the ELBO (and each term) on held-out or given data,
//! and the importance-weighted bound.
//!
//! Input: a [`Trainer`] (its program, parameters and splits), data, a number of draws and a
//! seed. Output: an [`EvalReport`]. Invariants: evaluation changes nothing in the trainer's
//! parameters, optimiser or training programs (the IWAE bound evaluates a re-lowered copy of
//! the model); it runs on the trainer's runtime — a forward-only pass of a fused
//! [`crate::fused::Engine`] built for the evaluation's batch shape (kept in the trainer's
//! evaluation cache) when the trainer trains fused and the capability table accepts the
//! evaluated program, else the reference interpreter — decided once per evaluation
//! ([`Trainer::eval_runtime`]); either way with its own noise stream, independent of the
//! training steps, consumed in the same order (a fused pass over a window of a big batch's
//! rows draws the whole batch's noise and keeps its rows), so both runtimes give the same
//! report up to float rounding (`tests/evaluate.rs`).

use super::{control_batch, data_batch, stream, EvalReport, TrainError, Trainer};
use crate::data::Dataset;
use crate::lower::{Batch, Program};
use crate::runtime::rng::Rng;
use dfdx::prelude::NoneTape;

/// Compiled evaluation programs kept by a trainer (a full window and a last partial one, of a
/// full batch and of the last partial one).
const EVAL_CACHE: usize = 4;

/// Rows × steps of one fused evaluation pass unless [`super::TrainConfig::eval_rows`] says
/// otherwise: a fused program plans every intermediate value of every step (PlaNet's, at 256
/// sequences × 10 draws × 50 steps, would plan 10 GB of values and gradients), so a bigger
/// evaluation batch runs as windows of its rows (PlaNet: 327 sequences of 50 steps, 1.3 GB).
pub const EVAL_ROWS: usize = 16384;

/// A compiled program for evaluation: the model it was lowered from (the trainer's own, or
/// its IWAE-k copy) and the engine for one batch shape.
pub(super) struct EvalEngine {
    model: crate::ir::Model,
    engine: crate::fused::Engine,
}

impl Trainer {
    /// Estimate the ELBO on `data` (default: the held-out split, else the training data)
    /// with `samples` draws per sequence; the standard error is over sequences × draws.
    pub fn evaluate(
        &self,
        data: Option<&Dataset>,
        samples: usize,
        seed: u64,
    ) -> Result<EvalReport, TrainError> {
        self.evaluate_program(&self.program, data, samples, seed)
    }

    /// The importance-weighted bound with `k` samples per draw (IWAE-k), estimated like
    /// [`Trainer::evaluate`]: the model is re-derived and re-lowered with `iwae = k` (every
    /// KL term becomes a Monte Carlo log-ratio, so each copy's sum is its log weight
    /// log p(x, z) − log q(z | x)), and the log-mean-exp over the k copies is the bound.
    /// A model that cannot be lowered with `iwae = k` is [`TrainError::Unsupported`].
    pub fn evaluate_iwae(
        &self,
        k: usize,
        data: Option<&Dataset>,
        samples: usize,
        seed: u64,
    ) -> Result<EvalReport, TrainError> {
        let program = self.iwae_program(k)?;
        self.evaluate_program(&program, data, samples, seed)
    }

    /// The runtime [`Trainer::evaluate`] (`iwae: None`) or [`Trainer::evaluate_iwae`]
    /// (`Some(k)`) runs on: `"fused"` when the trainer trains on the fused runtime and the
    /// capability table accepts the evaluated program, else `"reference"`.
    pub fn eval_runtime(&self, iwae: Option<usize>) -> Result<&'static str, TrainError> {
        let fused = match iwae {
            None => self.evaluates_fused(&self.program),
            Some(k) => self.evaluates_fused(&self.iwae_program(k)?),
        };
        Ok(if fused { "fused" } else { "reference" })
    }

    /// The trainer's model re-derived and re-lowered with `iwae = k`.
    fn iwae_program(&self, k: usize) -> Result<Program, TrainError> {
        let mut m = self.program.model.clone();
        m.objective.iwae = u32::try_from(k.max(1)).unwrap_or(u32::MAX);
        let elbo = crate::derive::derive(&m);
        Program::new(&m, &elbo).map_err(|d| {
            TrainError::Unsupported(
                d.iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    }

    /// Whether `program` is evaluated on the fused runtime: the trainer trains on it and the
    /// capability table accepts `program` (the trainer's own program, or its IWAE-k copy).
    fn evaluates_fused(&self, program: &Program) -> bool {
        self.runs_fused() && crate::fused::support(program).is_ok()
    }

    /// The one evaluation loop: `program`'s ELBO per draw and each term per row, on the
    /// runtime [`Trainer::evaluates_fused`] picks, batch after batch from one noise stream.
    fn evaluate_program(
        &self,
        program: &Program,
        data: Option<&Dataset>,
        samples: usize,
        seed: u64,
    ) -> Result<EvalReport, TrainError> {
        let data = data.or(self.heldout.as_ref()).or(self.train.as_ref());
        let samples = samples.max(1);
        let k = program.model.objective.iwae.max(1) as usize;
        let fused = self.evaluates_fused(program);
        let mut vals: Vec<f64> = Vec::new();
        let nterms = program.elbo.terms.len();
        let mut term_vals: Vec<Vec<f64>> = vec![Vec::new(); nterms];
        let mut seqs: Vec<usize> = Vec::new();
        let mut r = stream(seed, u64::MAX - 1, 4);
        let mut run = |batch: Batch| -> Result<(), TrainError> {
            let (elbo, terms) = if fused {
                self.fused_forward(program, &batch, &mut r)?
            } else {
                self.reference_forward(program, &batch, &mut r)?
            };
            vals.extend(elbo.iter().map(|x| f64::from(*x)));
            for (acc, t) in term_vals.iter_mut().zip(&terms) {
                acc.extend(t.iter().map(|x| f64::from(*x)));
            }
            Ok(())
        };
        match data {
            Some(d) => {
                let chunk = 256usize;
                let all: Vec<usize> = (0..d.n).collect();
                for part in all.chunks(chunk) {
                    let idx: Vec<usize> = (0..samples).flat_map(|_| part.iter().copied()).collect();
                    run(data_batch(program, d, &idx, k))?;
                    seqs.extend(&idx);
                }
            }
            None => {
                for _ in 0..samples {
                    run(control_batch(program, self.cfg.batch * k, self.horizon()))?;
                }
            }
        }
        let mut report = EvalReport::new(program, &vals, &term_vals);
        if seqs.len() == vals.len() {
            report.draw_seq = seqs;
        }
        report.runtime = if fused { "fused" } else { "reference" };
        Ok(report)
    }

    /// One evaluation batch on the reference interpreter: the ELBO per draw and each term per
    /// row.
    fn reference_forward(
        &self,
        program: &Program,
        batch: &Batch,
        r: &mut Rng,
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>), TrainError> {
        let fwd = program.forward::<NoneTape, _>(
            &self.store,
            batch,
            r,
            self.step,
            self.baseline as f32,
        )?;
        let terms = fwd.terms.iter().map(|t| t.as_vec()).collect();
        Ok((fwd.elbo.as_vec(), terms))
    }

    /// One evaluation batch forward (no backward) on fused programs: whole, or in windows of
    /// at most [`EVAL_ROWS`] rows × steps. Each window draws the whole batch's noise from a
    /// copy of the stream and keeps its rows (as a rank of a distributed job does), so the
    /// draws are those of one pass over the batch, and the stream ends where that pass leaves
    /// it. IWAE's copies of a sequence are a whole batch of sequences apart and its bound needs
    /// them all in one pass: an IWAE batch runs whole.
    fn fused_forward(
        &self,
        program: &Program,
        batch: &Batch,
        r: &mut Rng,
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>), TrainError> {
        let (b, t) = (batch.b, batch.t.max(1));
        let budget = match self.cfg.eval_rows {
            0 => EVAL_ROWS,
            n => n,
        };
        let w = (budget / t).clamp(1, b.max(1));
        if w >= b || program.model.objective.iwae > 1 {
            return self.fused_window(program, batch, 0, b, r);
        }
        let from = r.clone();
        let mut elbo = Vec::with_capacity(b);
        let mut terms = vec![Vec::with_capacity(b); program.elbo.terms.len()];
        for start in (0..b).step_by(w) {
            *r = from.clone();
            let part = super::batch::rows_of(program, batch, start..(start + w).min(b));
            let (e, ts) = self.fused_window(program, &part, start, b, r)?;
            elbo.extend(e);
            for (acc, t) in terms.iter_mut().zip(ts) {
                acc.extend(t);
            }
        }
        Ok((elbo, terms))
    }

    /// Rows `start..start + batch.b` of an evaluation batch of `total` rows forward on a fused
    /// program for its shape, built on first use and kept (at most [`EVAL_CACHE`]), its
    /// parameters refreshed from the store.
    fn fused_window(
        &self,
        program: &Program,
        batch: &Batch,
        start: usize,
        total: usize,
        r: &mut Rng,
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>), TrainError> {
        let shape = (batch.b, batch.t.max(1));
        let mut cache = self.eval_fused.lock().unwrap_or_else(|p| p.into_inner());
        let at = cache
            .iter()
            .position(|e| e.engine.shape() == shape && e.model == program.model);
        let i = match at {
            Some(i) => {
                cache[i].engine.pull(&self.store);
                i
            }
            None => {
                let engine = self.build_fused(program, shape.0, shape.1)?;
                if cache.len() >= EVAL_CACHE {
                    cache.remove(0);
                }
                cache.push(EvalEngine {
                    model: program.model.clone(),
                    engine,
                });
                cache.len() - 1
            }
        };
        let e = &mut cache[i].engine;
        e.set_window(start, total);
        e.set_baseline(self.baseline as f32);
        let fwd = e.forward(program, batch, r, self.step);
        Ok((fwd.elbo, e.term_rows(program, batch)))
    }
}
