//! The reference runtime: the lowered [`Program`] interpreted on dfdx tensors, one op at a
//! time on a shared autodiff tape — the definition every other backend is tested against,
//! the fallback for what the fused runtime lacks, and the CUDA path.
//!
//! Input: a [`Program`] and a [`crate::lower::Batch`]. Output: [`Program::forward`]'s
//! [`Forward`] (every ELBO term per sequence, on the tape), the draws of `vic sample`
//! (`exec/predictive.rs`, `exec/simulate.rs`), and [`Program::init_params`] (the parameter
//! store both runtimes read). Invariants:
//! - only the chain of sampled latents and deterministic states runs step by step; every
//!   other factor (likelihoods, priors given sampled parents, KLs, rewards) runs once over its
//!   whole time range as batched ops (rows = steps × sequences, time-major);
//! - q's distribution parameters computed on the chain are recorded and reused by the KL
//!   terms, never recomputed;
//! - no tensor op sees a shape the checker did not prove; two operands of one op never share
//!   a tensor id (repeated leaves are refreshed);
//! - it interprets the IR on its own, sharing no code with the fused lowering
//!   (`crate::fused::build`), so the differential tests compare two independent readings.

mod eval;
mod exec;

pub use exec::{ChainPosterior, Forward};

use crate::ir::*;
use crate::lower::{net_prefix, param_name, Program, ALPHA_PARAM, BASELINE_PARAM};
use crate::runtime::nets::params::ParamStore;
use crate::runtime::nets::{gru, mlp};
use crate::runtime::rng::Rng;
use crate::runtime::{Dev, RtError};
use rand_distr::Distribution;

/// Tapes the reference runtime runs on: `NoneTape` (evaluation) and the shared training tape.
pub trait LTape: crate::runtime::RtTape + Clone {}
impl<T: crate::runtime::RtTape + Clone> LTape for T {}

impl Program {
    fn alpha_value<T, P: crate::runtime::nets::params::Params<T>>(
        &self,
        p: &P,
    ) -> Result<f32, RtError> {
        Ok(p.vector(ALPHA_PARAM)?.as_vec()[0].exp())
    }

    /// Every parameter, initialised from `rng` (nets: PyTorch's default, U(±1/√fan_in);
    /// params: their declared initial values).
    pub fn init_params(&self, dev: &Dev, rng: &mut Rng) -> Result<ParamStore, RtError> {
        let m = &self.model;
        let mut store = ParamStore::new(dev.clone());
        for (i, n) in m.nets.iter().enumerate() {
            let prefix = net_prefix(m, i);
            match &n.kind {
                NetKind::Mlp { sizes, .. } => mlp::add_mlp(&mut store, &prefix, sizes, rng)?,
                NetKind::Gru { input, hidden } | NetKind::Rnn { input, hidden, .. } => {
                    gru::add_gru(&mut store, &prefix, *input, *hidden, rng)?
                }
            }
        }
        for (i, prm) in m.params.iter().enumerate() {
            let n = prm.shape.numel();
            let values: Vec<f32> = match &prm.init {
                ParamInit::Fill(v) => vec![*v as f32; n],
                ParamInit::Values(vs) => vs.iter().map(|v| *v as f32).collect(),
                ParamInit::Normal { mean, std } => {
                    let d = rand_distr::Normal::new(*mean, *std)
                        .map_err(|e| RtError::Shape(e.to_string()))?;
                    (0..n).map(|_| d.sample(rng) as f32).collect()
                }
                ParamInit::Uniform { low, high } => {
                    let d = rand_distr::Uniform::new(*low, *high);
                    (0..n).map(|_| d.sample(rng) as f32).collect()
                }
            };
            let shape: Vec<usize> = if prm.shape.0.is_empty() {
                vec![1]
            } else {
                prm.shape.0.clone()
            };
            store.insert_host(&param_name(m, i), &shape, values)?;
        }
        if self
            .estimators
            .values()
            .any(|e| *e == Estimator::ScoreFunction)
        {
            store.insert_host(BASELINE_PARAM, &[1], vec![0.0])?;
        }
        for o in &m.optimality {
            if let Alpha::Auto { init, .. } = o.alpha {
                store.insert_host(ALPHA_PARAM, &[1], vec![(init as f32).ln()])?;
            }
        }
        Ok(store)
    }
}
