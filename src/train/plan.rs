//! A run's plan: what the user asked for (batch, steps or epochs, horizon, schedule),
//! resolved once against the model and its data. The model's IR is never changed: a
//! `--horizon` goes into the configuration, and [`crate::train::Trainer::horizon`] reads it.

use super::{resolve_horizon, Sampling, TrainConfig};
use crate::data::{split_sizes, Dataset};
use crate::ir::Model;

/// The batch when neither the flags nor the model's `batch` give one.
pub const DEFAULT_BATCH: usize = 128;
/// Optimiser steps when neither `steps` nor `epochs` is given.
pub const DEFAULT_STEPS: u64 = 1000;
/// Datasets smaller than this are not split (all of it trains; the report is on it).
pub const MIN_ROWS_TO_SPLIT: usize = 10;

/// What a user asks of a run, before it is resolved: `None` means "the default" (the
/// model's declaration, else vic's default). The rest of the optimiser's settings (learning
/// rate, clipping, warmup, seed, …) are in `config` as given. The default asks for nothing:
/// every setting is vic's (and `vic run`'s) default, with 10% of the data held out.
#[derive(Clone, Debug)]
pub struct RunFlags {
    /// Settings taken as they are; `batch`, `horizon`, `sampling`, `cosine_total` and
    /// `holdout` are resolved from the fields below.
    pub config: TrainConfig,
    /// Sequences per minibatch (default: the model's `batch`, else [`DEFAULT_BATCH`]).
    pub batch: Option<usize>,
    /// Total optimiser steps, counting resumed ones.
    pub steps: Option<u64>,
    /// Passes over the training split (shuffled minibatches); excludes `steps`.
    pub epochs: Option<u64>,
    /// Rollout length of a control problem (default: the model's `horizon`, else 50).
    pub horizon: Option<usize>,
    /// Cosine learning-rate decay over the whole run.
    pub cosine: bool,
    /// Fraction of the data held out (data with fewer than [`MIN_ROWS_TO_SPLIT`] rows is
    /// not split).
    pub holdout: f64,
}

impl Default for RunFlags {
    fn default() -> RunFlags {
        let config = TrainConfig::default();
        RunFlags {
            holdout: config.holdout,
            config,
            batch: None,
            steps: None,
            epochs: None,
            horizon: None,
            cosine: false,
        }
    }
}

/// A resolved run: the trainer's configuration and the number of steps to reach.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The configuration to build the [`crate::train::Trainer`] with.
    pub config: TrainConfig,
    /// Total optimiser steps (a resumed run continues up to it).
    pub total: u64,
    /// The rollout length (control problems) or the data's sequence length (1 for static
    /// data): the steps of one sequence through the model.
    pub sequence_steps: usize,
    /// Rows in the training split (`None` for a control problem).
    pub train_rows: Option<usize>,
}

/// A plan that cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `horizon` was given for a model fitted to data.
    #[error(
        "--horizon is for control problems; `{model}` takes its sequence length from its data"
    )]
    HorizonForData {
        /// The model's name.
        model: String,
    },
    /// `epochs` was given for a model without data.
    #[error("`{model}` has no data, so it has no epochs")]
    EpochsWithoutData {
        /// The model's name.
        model: String,
    },
    /// `steps` and `epochs` were both given.
    #[error("give either steps or epochs, not both")]
    StepsAndEpochs,
}

impl RunPlan {
    /// Resolve `flags` against `model` and its `data` (the whole file, before the held-out
    /// split).
    pub fn resolve(
        flags: &RunFlags,
        model: &Model,
        data: Option<&Dataset>,
    ) -> Result<RunPlan, PlanError> {
        if flags.horizon.is_some() && !model.is_control() {
            return Err(PlanError::HorizonForData {
                model: model.name.clone(),
            });
        }
        let mut config = flags.config.clone();
        config.batch = flags
            .batch
            .or(model.objective.batch.map(|b| b as usize))
            .unwrap_or(DEFAULT_BATCH);
        config.horizon = flags.horizon;
        config.holdout = match data {
            Some(d) if d.n >= MIN_ROWS_TO_SPLIT => flags.holdout,
            _ => 0.0,
        };
        config.sampling = if flags.epochs.is_some() {
            Sampling::Epochs
        } else {
            Sampling::WithReplacement
        };
        // Trainer::new splits any data of 2 rows or more when holdout > 0.
        let train_rows = data.map(|d| {
            if config.holdout > 0.0 && d.n >= 2 {
                split_sizes(d.n, config.holdout).0
            } else {
                d.n
            }
        });
        let total = match (flags.steps, flags.epochs, train_rows) {
            (Some(_), Some(_), _) => return Err(PlanError::StepsAndEpochs),
            (Some(s), None, _) => s,
            (None, Some(e), Some(n)) => {
                e.saturating_mul(n.div_ceil(config.batch.min(n).max(1)) as u64)
            }
            (None, Some(_), None) => {
                return Err(PlanError::EpochsWithoutData {
                    model: model.name.clone(),
                })
            }
            (None, None, _) => DEFAULT_STEPS,
        };
        config.cosine_total = flags.cosine.then_some(total);
        let sequence_steps = match data {
            Some(d) => d.t.unwrap_or(1),
            None => resolve_horizon(config.horizon, model),
        };
        Ok(RunPlan {
            config,
            total,
            sequence_steps,
            train_rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(src: &str) -> Model {
        crate::compile(src, "t.vmodel")
            .expect("compiles")
            .checked
            .model
    }

    fn shipped(name: &str) -> Model {
        let src = std::fs::read_to_string(format!("models/{name}")).expect("shipped model");
        model(&src)
    }

    fn rows(n: usize, t: usize) -> Dataset {
        Dataset {
            n,
            t: Some(t),
            arrays: Default::default(),
            mask: None,
            layout: Default::default(),
            extras: Default::default(),
            source: "x.npz".into(),
        }
    }

    /// 100 rows, 10 held out, batch 32: an epoch is ⌈90 / 32⌉ = 3 steps, so 4 epochs are 12.
    #[test]
    fn epochs_count_minibatches_of_the_training_split() {
        let m = shipped("ssm.vmodel");
        let flags = RunFlags {
            batch: Some(32),
            epochs: Some(4),
            holdout: 0.1,
            cosine: true,
            ..RunFlags::default()
        };
        let p = RunPlan::resolve(&flags, &m, Some(&rows(100, 50))).unwrap();
        assert_eq!(p.train_rows, Some(90));
        assert_eq!(p.total, 12);
        assert_eq!(p.config.cosine_total, Some(12));
        assert_eq!(p.config.sampling, Sampling::Epochs);
        assert_eq!(p.sequence_steps, 50);
    }

    /// Nine rows are too few to hold some out; the batch defaults to 128.
    #[test]
    fn small_data_is_not_split_and_defaults_apply() {
        let m = shipped("ssm.vmodel");
        let flags = RunFlags {
            holdout: 0.1,
            ..RunFlags::default()
        };
        let p = RunPlan::resolve(&flags, &m, Some(&rows(9, 5))).unwrap();
        assert_eq!(p.config.holdout, 0.0);
        assert_eq!(p.train_rows, Some(9));
        assert_eq!(p.total, DEFAULT_STEPS);
        assert_eq!(
            p.config.batch,
            m.objective.batch.map_or(128, |b| b as usize)
        );
        assert_eq!(p.config.cosine_total, None);
    }

    /// A control problem takes `--horizon` over its own, without changing the model.
    #[test]
    fn the_horizon_of_a_control_problem_is_resolved_without_touching_the_model() {
        let m = shipped("lqr.vmodel");
        let declared = m.objective.horizon;
        let flags = RunFlags {
            horizon: Some(7),
            steps: Some(3),
            ..RunFlags::default()
        };
        let p = RunPlan::resolve(&flags, &m, None).unwrap();
        assert_eq!(p.sequence_steps, 7);
        assert_eq!(p.total, 3);
        assert_eq!(m.objective.horizon, declared);
        let p = RunPlan::resolve(&RunFlags::default(), &m, None).unwrap();
        assert_eq!(
            p.sequence_steps,
            declared.map_or(super::super::DEFAULT_HORIZON, |h| h as usize)
        );
    }

    /// The library's default holds out what `vic run` holds out by default (10%).
    #[test]
    fn the_default_flags_are_vic_run_s_defaults() {
        let m = shipped("ssm.vmodel");
        let p = RunPlan::resolve(&RunFlags::default(), &m, Some(&rows(100, 5))).unwrap();
        assert_eq!(p.config.holdout, 0.1);
        assert_eq!(p.train_rows, Some(90));
        assert_eq!(p.total, DEFAULT_STEPS);
    }

    #[test]
    fn contradictory_flags_are_plan_errors() {
        let ssm = shipped("ssm.vmodel");
        let lqr = shipped("lqr.vmodel");
        let horizon = RunFlags {
            horizon: Some(5),
            ..RunFlags::default()
        };
        assert!(matches!(
            RunPlan::resolve(&horizon, &ssm, Some(&rows(20, 5))),
            Err(PlanError::HorizonForData { .. })
        ));
        let epochs = RunFlags {
            epochs: Some(2),
            ..RunFlags::default()
        };
        assert!(matches!(
            RunPlan::resolve(&epochs, &lqr, None),
            Err(PlanError::EpochsWithoutData { .. })
        ));
    }
}
