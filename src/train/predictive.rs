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
