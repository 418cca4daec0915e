//! Evaluation of a trainer's parameters: the ELBO (and each term) on held-out or given data,
//! and the importance-weighted bound.
//!
//! Input: a [`Trainer`] (its program, parameters and splits), data, a number of draws and a
//! seed. Output: an [`EvalReport`]. Invariants: evaluation changes nothing in the trainer (the
//! IWAE bound re-lowers a copy of the model and puts the trainer's own program back); it runs
//! on the reference interpreter, with its own noise stream, independent of the training steps.

use super::{control_batch, data_batch, stream, EvalReport, TrainError, Trainer};
use crate::data::Dataset;
use crate::lower::{Batch, Program};
use dfdx::prelude::NoneTape;

impl Trainer {
    /// Estimate the ELBO on `data` (default: the held-out split, else the training data)
    /// with `samples` draws per sequence; the standard error is over sequences × draws.
    pub fn evaluate(
        &self,
        data: Option<&Dataset>,
        samples: usize,
        seed: u64,
    ) -> Result<EvalReport, TrainError> {
        let data = data.or(self.heldout.as_ref()).or(self.train.as_ref());
        let samples = samples.max(1);
        let k = self.iwae();
        let mut vals: Vec<f64> = Vec::new();
        let nterms = self.program.elbo.terms.len();
        let mut term_vals: Vec<Vec<f64>> = vec![Vec::new(); nterms];
        let mut seqs: Vec<usize> = Vec::new();
        let mut r = stream(seed, u64::MAX - 1, 4);
        let mut run = |batch: Batch| -> Result<(), TrainError> {
            let fwd = self.program.forward::<NoneTape, _>(
                &self.store,
                &batch,
                &mut r,
                self.step,
                self.baseline as f32,
            )?;
            vals.extend(fwd.elbo.as_vec().iter().map(|x| f64::from(*x)));
            for (i, t) in fwd.terms.iter().enumerate() {
                term_vals[i].extend(t.as_vec().iter().map(|x| f64::from(*x)));
            }
            Ok(())
        };
        match data {
            Some(d) => {
                let chunk = 256usize;
                let all: Vec<usize> = (0..d.n).collect();
                for part in all.chunks(chunk) {
                    let idx: Vec<usize> = (0..samples).flat_map(|_| part.iter().copied()).collect();
                    run(data_batch(&self.program, d, &idx, k))?;
                    seqs.extend(&idx);
                }
            }
            None => {
                for _ in 0..samples {
                    run(control_batch(
                        &self.program,
                        self.cfg.batch * k,
                        self.horizon(),
                    ))?;
                }
            }
        }
        let mut report = EvalReport::new(&self.program, &vals, &term_vals);
        if seqs.len() == vals.len() {
            report.draw_seq = seqs;
        }
        Ok(report)
    }

    /// The importance-weighted bound with `k` samples per draw (IWAE-k), estimated like
    /// [`Trainer::evaluate`]: the model is re-derived and re-lowered with `iwae = k` (every
    /// KL term becomes a Monte Carlo log-ratio, so each copy's sum is its log weight
    /// log p(x, z) − log q(z | x)), and the log-mean-exp over the k copies is the bound.
    /// A model that cannot be lowered with `iwae = k` is [`TrainError::Unsupported`].
    pub fn evaluate_iwae(
        &mut self,
        k: usize,
        data: Option<&Dataset>,
        samples: usize,
        seed: u64,
    ) -> Result<EvalReport, TrainError> {
        let mut m = self.program.model.clone();
        m.objective.iwae = u32::try_from(k.max(1)).unwrap_or(u32::MAX);
        let elbo = crate::derive::derive(&m);
        let program = Program::new(&m, &elbo).map_err(|d| {
            TrainError::Unsupported(
                d.iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let own = std::mem::replace(&mut self.program, program);
        let r = self.evaluate(data, samples, seed);
        self.program = own;
        r
    }
}
