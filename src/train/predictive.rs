//! The posterior predictive of a trainer's parameters (`vic sample --posterior`): draws on the
//! runtime the trainer trains on.
//!
//! Input: a [`Trainer`], a data batch and the noise stream. Output: host draws of every
//! observed variable and the posterior's latents, batch-major. Invariants: the fused and the
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
            .map_err(|u| {
                TrainError::Runtime(RtError::Fault(format!(
                    "the fused posterior predictive failed on a model the fused runtime trains: {}",
                    u.0
                )))
            })
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
}
