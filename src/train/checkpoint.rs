//! A trainer's checkpoints: saving parameters, optimiser state and progress atomically, and
//! loading them back (to resume a run, or to evaluate and sample from its parameters).
//!
//! Input: a [`Trainer`] and a path. Output: a `safetensors` file whose metadata (inside its
//! checksum) names the model's fingerprint, the step, the baseline, the horizon and the
//! configuration. Invariants: a checkpoint is loaded only into a trainer of the same checked
//! model (the fingerprint); a resumed run continues bit-identically, and the settings that
//! differ from the checkpoint's are reported; in a data-parallel job rank 0 alone writes.

use super::{CheckpointInfo, TrainError, Trainer};
use crate::runtime::checkpoint;
use std::path::Path;

impl Trainer {
    /// A fingerprint of the checked model this trainer runs: its IR without the rollout
    /// horizon (which `--horizon` may override; it is compared as configuration).
    pub fn model_hash(&self) -> String {
        let mut m = self.program.model.clone();
        m.objective.horizon = None;
        checkpoint::fingerprint(format!("{m:?}").as_bytes())
    }

    /// Metadata stored with a checkpoint (inside its checksum).
    fn meta(&self) -> String {
        serde_json::json!({
            "model": self.program.model.name,
            "model_hash": self.model_hash(),
            "step": self.step,
            "baseline": self.baseline,
            "horizon": self.horizon(),
            "config": self.cfg,
        })
        .to_string()
    }

    /// Save parameters, optimiser state and progress atomically.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        if !self.is_lead() {
            return Ok(()); // distributed hook: rank 0 alone writes
        }
        checkpoint::save(path, &self.store, Some(&self.adam), &self.meta())
            .map_err(|e| TrainError::Checkpoint(e.to_string()))
    }

    /// Load a checkpoint written for this model (the same checked IR) and copy its
    /// parameters into the store; returns it with its parsed metadata.
    fn load_checkpoint(
        &mut self,
        path: &Path,
    ) -> Result<(checkpoint::Checkpoint, serde_json::Value), TrainError> {
        let ck =
            checkpoint::load(path, &self.dev).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        let meta: serde_json::Value = serde_json::from_str(&ck.meta)
            .map_err(|e| TrainError::Checkpoint(format!("bad metadata: {e}")))?;
        let hash = self.model_hash();
        if meta["model_hash"].as_str() != Some(hash.as_str()) {
            return Err(TrainError::Checkpoint(format!(
                "it was written for another model (`{}`, fingerprint {}; this `{}` is {hash})",
                meta["model"].as_str().unwrap_or("?"),
                meta["model_hash"].as_str().unwrap_or("none"),
                self.program.model.name,
            )));
        }
        self.store.assign_from(&ck.params).map_err(|e| {
            TrainError::Checkpoint(format!(
                "{e} (was the checkpoint written by another model?)"
            ))
        })?;
        Ok((ck, meta))
    }

    /// Restore parameters, optimiser state and progress (the model must be the one the
    /// checkpoint was written for). Returns the settings that differ from the checkpoint's
    /// (`seed 0 → 1`): the run continues with the new ones, but is then not the run an
    /// uninterrupted one would have been.
    pub fn resume(&mut self, path: &Path) -> Result<Vec<String>, TrainError> {
        let (ck, meta) = self.load_checkpoint(path)?;
        self.step = meta["step"]
            .as_u64()
            .ok_or_else(|| TrainError::Checkpoint("metadata has no step".into()))?;
        self.baseline = meta["baseline"].as_f64().unwrap_or(0.0);
        if let Some(a) = ck.adam {
            self.adam = a;
        }
        self.params_changed();
        let mut changed = Vec::new();
        let now = serde_json::to_value(&self.cfg).unwrap_or_default();
        let then = &meta["config"];
        for key in [
            "seed",
            "batch",
            "lr",
            "weight_decay",
            "clip",
            "warmup",
            "cosine_total",
            "holdout",
            "sampling",
        ] {
            if then[key] != now[key] {
                changed.push(format!("{key} {} → {}", then[key], now[key]));
            }
        }
        if meta["horizon"].as_u64() != Some(self.horizon() as u64) {
            changed.push(format!("horizon {} → {}", meta["horizon"], self.horizon()));
        }
        Ok(changed)
    }

    /// Load parameters only (for `vic eval` / `vic sample`); returns what the checkpoint
    /// says of the run that wrote it.
    pub fn load_params(&mut self, path: &Path) -> Result<CheckpointInfo, TrainError> {
        let (_, meta) = self.load_checkpoint(path)?;
        self.step = meta["step"].as_u64().unwrap_or(0);
        self.params_changed();
        let config = &meta["config"];
        Ok(CheckpointInfo {
            step: self.step,
            holdout: config["holdout"].as_f64().unwrap_or(0.0),
            seed: config["seed"].as_u64().unwrap_or(0),
        })
    }
}
