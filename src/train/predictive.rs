//! Draws from a trainer's parameters (`vic sample`, with or without `--posterior`) on the
//! runtime the trainer trains on.
//!
//! Input: a [`Trainer`], a data batch and the noise stream. Output: host draws of every
//! observed variable and the posterior's latents (reconstructions, one-step predictions), or
//! of every variable (draws from p, conditioned or not), batch-major. Invariants: the fused and the
//! reference runtimes give the same draws from the same seed (`tests/predictive.rs`); a model
//! with an enumerated latent draws on the reference runtime (decided before anything is
//! built), and a fused lowering failure on any other model it trains is a fault.

use super::{TrainError, Trainer};
use crate::ir::VarId;
use crate::lower::Batch;
use crate::runtime::rng::Rng;
use crate::runtime::RtError;
use std::collections::HashMap;

impl Trainer {
    /// Posterior predictive draws x̃ ~ p(x | z), z ~ q(z | x) on `batch`'s data, and the
    /// latents they were drawn from.
    pub fn posterior_predictive(
        &self,
        batch: &Batch,
        rng: &mut Rng,
    ) -> Result<HashMap<VarId, Vec<f32>>, TrainError> {
        if self.predictive_runtime() == "reference" {
            return Ok(self.program.posterior_predictive(&self.store, batch, rng)?);
        }
        crate::fused::predictive::posterior_predictive(&self.program, &self.store, batch, rng)
            .map_err(|u| fault("posterior predictive", u))
    }

    /// The posterior marginals and Viterbi path of every chain summed out, on `batch`'s
    /// data ([`crate::lower::Program::chain_posterior`]: f64 on the host, either runtime's
    /// parameters alike).
    pub fn chain_posterior(
        &self,
        batch: &Batch,
        rng: &mut Rng,
    ) -> Result<Vec<crate::reference::ChainPosterior>, TrainError> {
        Ok(self.program.chain_posterior(&self.store, batch, rng)?)
    }

    /// One-step predictive draws (p one step open loop from the posterior at `t − 1`) of
    /// every time-indexed observed variable; see [`crate::lower::Program::one_step_blocker`]
    /// for the models that have none.
    pub fn one_step_predictive(
        &self,
        batch: &Batch,
        rng: &mut Rng,
    ) -> Result<HashMap<VarId, Vec<f32>>, TrainError> {
        if self.one_step_runtime() == "reference" {
            return Ok(self.program.one_step_predictive(&self.store, batch, rng)?);
        }
        crate::fused::predictive::one_step_predictive(&self.program, &self.store, batch, rng)
            .map_err(|u| fault("one-step predictive", u))
    }

    /// Draws from p on `batch` (`vic sample`): with `condition = k`, q on the first `k`
    /// observed steps and p open loop after (`k = 0`: the prior predictive); every variable,
    /// batch-major. Enumerated latents are drawn, not summed.
    pub fn simulate(
        &self,
        batch: &Batch,
        condition: usize,
        rng: &mut Rng,
    ) -> Result<HashMap<VarId, Vec<f32>>, TrainError> {
        if let Some(why) = (condition > 0)
            .then(|| super::sample::condition_blocker(&self.program.model))
            .flatten()
        {
            return Err(TrainError::Runtime(RtError::Shape(format!(
                "cannot condition on the data's first steps: {why}"
            ))));
        }
        if self.draws_runtime() == "reference" {
            return Ok(self.program.simulate(&self.store, batch, condition, rng)?);
        }
        crate::fused::predictive::draws(&self.program, &self.store, batch, condition, rng)
            .map_err(|u| fault("draws", u))
    }

    /// The runtime [`Trainer::simulate`] draws on.
    pub fn draws_runtime(&self) -> &'static str {
        if self.runs_fused() && crate::fused::build::draws_lack(&self.program.model).is_none() {
            "fused"
        } else {
            "reference"
        }
    }

    /// The runtime [`Trainer::posterior_predictive`] draws on: `"fused"` or `"reference"`.
    pub fn predictive_runtime(&self) -> &'static str {
        // A chain summed out is drawn from its posterior (forward filtering, backward
        // sampling) on the reference runtime.
        if self.runs_fused()
            && self.program.enumerated().is_none()
            && crate::derive::marginal::chains(&self.program.model).is_empty()
        {
            "fused"
        } else {
            "reference"
        }
    }

    /// The runtime [`Trainer::one_step_predictive`] draws on.
    pub fn one_step_runtime(&self) -> &'static str {
        match self.predictive_runtime() {
            "fused" if crate::fused::build::one_step_lacks(&self.program.model).is_none() => {
                "fused"
            }
            _ => "reference",
        }
    }
}

/// A fused lowering failure on a program the fused runtime trains.
fn fault(what: &str, u: crate::fused::Unsupported) -> TrainError {
    TrainError::Runtime(RtError::Fault(format!(
        "the fused {what} failed on a model the fused runtime trains: {}",
        u.0
    )))
}

/// Why a posterior predictive cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PredictiveError {
    /// A control problem observes nothing to reconstruct.
    #[error("the posterior predictive needs an observed variable; this is a control problem")]
    Control,
    /// The model has no one-step predictive (the reason).
    #[error("one-step predictions cannot run for this model: {0}")]
    OneStep(String),
    /// Drawing failed (what was drawn, the fault).
    #[error("{what} sampling failed: {error}")]
    Draw {
        /// "posterior predictive" or "one-step predictive".
        what: &'static str,
        /// The fault.
        error: TrainError,
    },
}

/// Per observation of one variable: (data value, mean, 5%, 25%, 75%, 95%) of its draws,
/// `None` where masked (or, for one-step predictions, at the first step); indexed
/// `(sequence · T + step) · size + element`.
pub type Summary = Vec<Option<[f32; 6]>>;

/// The predictive check of one observed variable's draws against its data.
#[derive(Debug, Clone)]
pub struct PredictiveCheck {
    /// The draws' id in [`PosteriorDraws::drawn`] (a variable, or `vars.len() + variable`
    /// for its one-step predictions).
    pub id: usize,
    /// `x`, or `x_onestep`.
    pub label: String,
    /// Steps per sequence (1 for a static variable).
    pub steps: usize,
    /// The variable's size.
    pub size: usize,
    /// The summary of every observation.
    pub summary: Summary,
    /// One-step predictions rather than reconstructions.
    pub one_step: bool,
}

impl PredictiveCheck {
    /// (observations, fraction inside the central 50% interval, inside the 90% interval).
    pub fn coverage(&self) -> (usize, f64, f64) {
        let obs: Vec<&[f32; 6]> = self.summary.iter().flatten().collect();
        let n = obs.len().max(1) as f64;
        let in50 = obs.iter().filter(|o| o[0] >= o[3] && o[0] <= o[4]).count() as f64 / n;
        let in90 = obs.iter().filter(|o| o[0] >= o[2] && o[0] <= o[5]).count() as f64 / n;
        (obs.len(), in50, in90)
    }
}

/// Posterior predictive draws of the first sequences of a dataset (`vic sample --posterior`,
/// `Fit.posterior_predictive`).
#[derive(Debug, Clone)]
pub struct PosteriorDraws {
    /// Sequences drawn for (the first `seqs` of the data).
    pub seqs: usize,
    /// Draws per sequence.
    pub draws: usize,
    /// Named arrays, in the order `vic sample --posterior` writes them: each variable's draws
    /// `(K, S, T, size)` or `(K, S, size)`, an observed one's data `<name>_data` beside them,
    /// then the one-step predictions `<name>_onestep`, then each summed-out chain's posterior
    /// marginals `<k>_marginals` `(K, S, T, K_states)` and Viterbi path `<k>_viterbi` `(K, S, T)`.
    pub arrays: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// The predictive check of each observed variable in the data (and of its one-step
    /// predictions).
    pub checks: Vec<PredictiveCheck>,
    /// The raw draws by id (one-step predictions at `vars.len() + variable`).
    pub drawn: HashMap<usize, Vec<f32>>,
}

/// The empirical quantile of sorted values (nearest rank).
fn quantile(sorted: &[f32], q: f64) -> f32 {
    let i = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summarise(
    drawn: &[f32],
    data: &[f32],
    mask: Option<&[f32]>,
    (seqs, k, tt, size): (usize, usize, usize, usize),
    data_t: usize,
) -> Summary {
    let mut out = Vec::with_capacity(seqs * tt * size);
    let mut vals = vec![0.0f32; k];
    for i in 0..seqs {
        for t in 0..tt {
            let observed = !matches!(mask, Some(mk) if mk[i * data_t + t] == 0.0);
            for e in 0..size {
                if !observed {
                    out.push(None);
                    continue;
                }
                for (j, v) in vals.iter_mut().enumerate() {
                    *v = drawn[((j * seqs + i) * tt + t) * size + e];
                }
                if vals.iter().any(|v| v.is_nan()) {
                    // One-step predictions have none at step 1.
                    out.push(None);
                    continue;
                }
                let mean = vals.iter().sum::<f32>() / k as f32;
                vals.sort_by(|a, b| a.total_cmp(b));
                out.push(Some([
                    data[(i * tt + t) * size + e],
                    mean,
                    quantile(&vals, 0.05),
                    quantile(&vals, 0.25),
                    quantile(&vals, 0.75),
                    quantile(&vals, 0.95),
                ]));
            }
        }
    }
    out
}

impl Trainer {
    /// The extent `(sequences, steps)` of a posterior predictive of the first `n` sequences
    /// of `d` (for a memory check before drawing); [`PredictiveError::Control`] for a control
    /// problem.
    pub fn posterior_extent(
        &self,
        d: &crate::data::Dataset,
        n: usize,
    ) -> Result<(usize, usize), PredictiveError> {
        let m = &self.program.model;
        if m.is_control() {
            return Err(PredictiveError::Control);
        }
        let tt = if m.is_sequential() {
            d.t.unwrap_or(1)
        } else {
            1
        };
        Ok((n.min(d.n), tt))
    }

    /// `k` posterior predictive draws of each of the first `n` sequences of `d` from the
    /// noise stream of `seed` (and, with `one_step`, the one-step predictions after them),
    /// with the predictive check of every observed variable.
    pub fn posterior_draws(
        &self,
        d: &crate::data::Dataset,
        n: usize,
        k: usize,
        one_step: bool,
        seed: u64,
    ) -> Result<PosteriorDraws, PredictiveError> {
        use crate::ir::Role;
        let (seqs, tt) = self.posterior_extent(d, n)?;
        let m = &self.program.model;
        let idx: Vec<usize> = (0..k).flat_map(|_| 0..seqs).collect();
        let batch = super::data_batch(&self.program, d, &idx, 1);
        let mut rng = crate::runtime::rng::seeded(seed);
        let mut drawn = self
            .posterior_predictive(&batch, &mut rng)
            .map_err(|error| PredictiveError::Draw {
                what: "posterior predictive",
                error,
            })?;
        // One-step predictions under ids past the model's variables (`<name>_onestep`).
        let nv = m.vars.len();
        if one_step {
            if let Some(why) = self.program.one_step_blocker() {
                return Err(PredictiveError::OneStep(why.to_string()));
            }
            let x = self
                .one_step_predictive(&batch, &mut rng)
                .map_err(|error| PredictiveError::Draw {
                    what: "one-step predictive",
                    error,
                })?;
            drawn.extend(x.into_iter().map(|(v, h)| (v + nv, h)));
        }
        let mut arrays = Vec::new();
        let mut checks = Vec::new();
        let entries = m
            .vars
            .iter()
            .enumerate()
            .map(|(v, var)| (v, v, var.name.clone()))
            .chain(
                m.vars
                    .iter()
                    .enumerate()
                    .map(|(v, var)| (v + nv, v, format!("{}_onestep", var.name))),
            );
        for (id, v, label) in entries {
            let var = &m.vars[v];
            let Some(host) = drawn.get(&id) else { continue };
            let size = var.ty.size();
            let vt = if var.timed { tt } else { 1 };
            let mut shape = vec![k, seqs];
            if var.timed {
                shape.push(vt);
            }
            shape.push(size);
            arrays.push((label.clone(), shape, host.clone()));
            if var.role == Role::Observed {
                if let Some(real) = d.array(&var.name) {
                    let real = &real[..seqs * vt * size];
                    let mut shape = vec![seqs];
                    if var.timed {
                        shape.push(vt);
                    }
                    shape.push(size);
                    if id == v {
                        arrays.push((format!("{}_data", var.name), shape, real.to_vec()));
                    }
                    let mask = d.mask.as_deref().filter(|_| var.timed);
                    checks.push(PredictiveCheck {
                        id,
                        label,
                        steps: vt,
                        size,
                        summary: summarise(host, real, mask, (seqs, k, vt, size), vt),
                        one_step: id >= nv,
                    });
                }
            }
        }
        // A chain summed out: its posterior marginals and Viterbi path beside the draws.
        let chains =
            self.chain_posterior(&batch, &mut rng)
                .map_err(|error| PredictiveError::Draw {
                    what: "chain posterior",
                    error,
                })?;
        arrays.extend(chains.iter().flat_map(|c| c.arrays(k, seqs)));
        Ok(PosteriorDraws {
            seqs,
            draws: k,
            arrays,
            checks,
            drawn,
        })
    }
}
