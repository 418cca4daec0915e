//! Draws from p with a trainer's parameters (`vic sample` and the Python package's
//! `Fit.sample`): the prior predictive, or open loop after following the posterior on the
//! first `condition` steps of the data. Inputs come from the data's rows (cycled), cut or
//! padded with zeros to the horizon.

use super::{control_batch, data_batch, resolve_horizon, Trainer};
use crate::data::Dataset;
use crate::ir::{Block, FactorBody, Family, VarId};
use std::collections::HashMap;

/// Why there are no draws.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    /// `condition` is longer than the sequences drawn.
    #[error("condition {condition} is longer than the {t} steps drawn")]
    ConditionTooLong {
        /// The steps asked to follow the posterior.
        condition: usize,
        /// The steps drawn.
        t: usize,
    },
    /// `condition` needs data with at least that many steps.
    #[error("condition {condition} needs data with at least that many steps")]
    ConditionNeedsData {
        /// The steps asked to follow the posterior.
        condition: usize,
    },
    /// A variable of p has an improper (Flat) prior, which has no draws.
    #[error(
        "cannot draw from `{model}`: `{var}` has an improper prior (Flat) in p, which has no draws"
    )]
    Improper {
        /// The model.
        model: String,
        /// The variable.
        var: String,
        /// The variable as written in a factor (`x[t]`).
        written: String,
    },
    /// q cannot follow the data's first steps on its own (see [`condition_blocker`]).
    #[error("cannot condition `{model}` on the data's first steps: {why}")]
    CannotCondition {
        /// The model.
        model: String,
        /// Why.
        why: String,
    },
    /// The draw failed.
    #[error("cannot draw from `{model}`: {error}")]
    Failed {
        /// The model.
        model: String,
        /// Why.
        error: String,
    },
}

/// The draws of [`Trainer::draw`].
#[derive(Clone, Debug)]
pub struct Draws {
    /// Sequences drawn.
    pub n: usize,
    /// Steps drawn (1 for a static model).
    pub t: usize,
    /// Every latent, state and observed variable drawn, batch-major `(n, t, size)` (or
    /// `(n, size)` for static ones), by variable id.
    pub values: HashMap<VarId, Vec<f32>>,
}

impl Draws {
    /// The draws by variable name with their shapes, in the model's order of variables.
    pub fn named(&self, m: &crate::ir::Model) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        m.vars
            .iter()
            .enumerate()
            .filter_map(|(v, var)| {
                let host = self.values.get(&v)?;
                let size = var.ty.size();
                let shape = if var.timed {
                    vec![self.n, self.t, size]
                } else {
                    vec![self.n, size]
                };
                Some((var.name.clone(), shape, host.clone()))
            })
            .collect()
    }
}

impl Trainer {
    /// The number of steps [`Trainer::draw`] draws: `horizon`, else the data's sequence
    /// length, else the model's horizon.
    pub fn draw_steps(&self, horizon: Option<usize>, data: Option<&Dataset>) -> usize {
        horizon
            .or(data.and_then(|d| d.t))
            .unwrap_or_else(|| resolve_horizon(None, &self.program.model))
    }

    /// Draw `n` sequences of [`Trainer::draw_steps`] steps from p: the rows of `data` (cycled)
    /// give the inputs and, for the first `condition` steps, the observations the posterior
    /// follows; without data (control problems) rollouts start from the model's inits.
    pub fn draw(
        &self,
        n: usize,
        horizon: Option<usize>,
        condition: usize,
        data: Option<&Dataset>,
        seed: u64,
    ) -> Result<Draws, SampleError> {
        let m = &self.program.model;
        let t = self.draw_steps(horizon, data);
        if condition > t {
            return Err(SampleError::ConditionTooLong { condition, t });
        }
        if condition > 0 && data.and_then(|d| d.t).is_none_or(|dt| condition > dt) {
            return Err(SampleError::ConditionNeedsData { condition });
        }
        if let Some(why) = (condition > 0).then(|| condition_blocker(m)).flatten() {
            return Err(SampleError::CannotCondition {
                model: m.name.clone(),
                why,
            });
        }
        let mut batch = match data {
            Some(d) => {
                let idx: Vec<usize> = (0..n).map(|i| i % d.n).collect();
                data_batch(&self.program, d, &idx, 1)
            }
            None => control_batch(&self.program, n, t),
        };
        if m.is_sequential() && batch.t != t {
            // Pad or cut the data's inputs to the requested horizon (inputs past the data are 0).
            for (v, host) in batch.data.iter_mut() {
                let size = m.vars[*v].ty.size();
                if !m.vars[*v].timed {
                    continue;
                }
                let mut out = vec![0.0; t * batch.b * size];
                let keep = t.min(batch.t) * batch.b * size;
                out[..keep].copy_from_slice(&host[..keep]);
                *host = out;
            }
            batch.t = t;
        }
        // p must have a draw for every variable it generates; a Flat prior (improper) has none.
        if let Some(f) = m.factors.iter().find(|f| {
            f.block == Block::P
                && matches!(&f.body, FactorBody::Sample(d) if d.family == Family::Flat)
        }) {
            let var = &m.vars[f.var];
            return Err(SampleError::Improper {
                model: m.name.clone(),
                var: var.name.clone(),
                written: format!("{}{}", var.name, if var.timed { "[t]" } else { "" }),
            });
        }
        let mut rng = crate::runtime::rng::seeded(seed);
        let values =
            self.simulate(&batch, condition, &mut rng)
                .map_err(|e| SampleError::Failed {
                    model: m.name.clone(),
                    error: e.to_string(),
                })?;
        Ok(Draws { n, t, values })
    }
}

/// Why q cannot follow the first `k` observed steps of `m` on its own (conditioning hides the
/// data after them), if it cannot — on both runtimes, before either runs.
pub(crate) fn condition_blocker(m: &crate::ir::Model) -> Option<String> {
    use crate::ir::NetKind;
    if let Some(ch) = crate::derive::marginal::chains(m).first() {
        return Some(format!(
            "`{}` is summed out of p (it has no q factor to follow the data)",
            m.vars[ch.var].name
        ));
    }
    if m.max_lead() > 0 {
        return Some("q reads data ahead (`y[t+k]`), past the steps conditioning keeps".into());
    }
    let reverse = |n: &crate::ir::Net| matches!(n.kind, NetKind::Rnn { reverse: true, .. });
    (m.nets.iter().find(|n| reverse(n)))
        .map(|n| format!("the net `{}` reads each sequence from its end", n.name))
}
