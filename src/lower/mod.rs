//! Stage 5, lower: ELBO IR → a tensor program over a batch of sequences, run on dfdx.
//!
//! Input: a checked [`Model`] and its [`Elbo`]. Output: a [`Program`] whose
//! [`Program::forward`] evaluates every ELBO term on a [`Batch`], and whose
//! [`Program::init_params`] builds the parameter store.
//! Invariants:
//! - only the chain of sampled latents and deterministic states runs step by step; every
//!   other factor (likelihoods, priors given sampled parents, KLs, rewards) runs once over its
//!   whole time range as batched ops (rows = steps × sequences, time-major);
//! - q's distribution parameters computed on the chain are recorded and reused by the KL
//!   terms, never recomputed;
//! - no tensor op sees a shape the checker did not prove; two operands of one op never share
//!   a tensor id (repeated leaves are refreshed).

mod error;
mod eval;
mod exec;
pub mod plan;

pub use error::LowerError;
pub use eval::{net_prefix, num_op, param_name};
/// The latents that get latent-overshooting terms (for the fused runtime).
pub(crate) use exec::overshoot::targets as overshoot_targets;
pub use exec::{Batch, Forward};

use crate::derive::Elbo;
use crate::diag::{Code, Diagnostic};
use crate::ir::*;
use crate::runtime::nets::params::ParamStore;
use crate::runtime::nets::{gru, mlp};
use crate::runtime::rng::Rng;
use crate::runtime::{Dev, RtError};
use rand_distr::Distribution;
use std::collections::HashMap;

/// Tapes the lowering runs on: `NoneTape` (evaluation) and the shared training tape.
pub trait LTape: crate::runtime::RtTape + Clone {}
impl<T: crate::runtime::RtTape + Clone> LTape for T {}

/// The learned offset of the score-function baseline.
pub const BASELINE_PARAM: &str = "baseline.offset";

/// The parameter holding log α of an auto-tuned temperature.
pub const ALPHA_PARAM: &str = "alpha.log";

/// The reference tensor program of a checked model and its ELBO: what [`Program::forward`]
/// runs on dfdx and what `fused::build` compiles. Built once by [`Program::new`].
#[derive(Clone, Debug)]
pub struct Program {
    /// The checked model IR.
    pub model: Model,
    /// The derived objective; its terms' `Compute` decide how each term is evaluated.
    pub elbo: Elbo,
    /// Which variables run on the sequential chain, and in what order.
    pub plan: plan::Plan,
    /// The gradient estimator of each latent (from `Elbo::estimators`), keyed by variable id.
    pub estimators: HashMap<VarId, Estimator>,
    /// Target entropy of an auto-tuned α.
    pub auto_alpha: Option<f64>,
}

fn unsupported(msg: String, help: &str) -> Diagnostic {
    Diagnostic::new(Code::Unsupported, msg).help(help.to_string())
}

/// Why a latent cannot be enumerated by this backend, if it cannot. Enumeration tiles the
/// batch over the latent's values, so the latent must be static, drawn by q from data only,
/// and the objective must be a plain sum of terms.
fn enumeration_blocker(m: &Model, v: VarId) -> Option<String> {
    if m.vars[v].timed {
        return match crate::derive::marginal::chain(m, v) {
            Ok(Some(_)) => None,
            Ok(None) | Err(_) => {
                Some("it is time-indexed and not a chain the forward algorithm sums out".into())
            }
        };
    }
    let mut q = m.factors_of(v, Block::Q);
    let Some((_, f)) = q.next() else {
        return Some("it has no q factor".into());
    };
    if f.parents
        .iter()
        .any(|r| !matches!(m.vars[r.var].role, Role::Observed | Role::Input))
    {
        return Some("its q factor reads other latents".into());
    }
    let o = &m.objective;
    if o.iwae > 1 || o.free_nats.is_some() || o.kl_balance.is_some() {
        return Some("IWAE, free nats and KL balancing need per-sample terms".into());
    }
    if m.vars.iter().enumerate().any(|(w, x)| {
        w != v
            && x.role == Role::Latent
            && x.ty.is_discrete()
            && x.estimator != Some(Estimator::StraightThrough)
            && x.estimator != Some(Estimator::Enumerate)
    }) {
        return Some("another discrete latent uses the score function, whose learning signal would need the enumerated sum".into());
    }
    None
}

impl Program {
    /// The enumerated (static) latent and its number of values; a time-indexed chain summed
    /// out by the forward algorithm is not enumerated by tiling the batch.
    pub fn enumerated(&self) -> Option<(VarId, usize)> {
        self.estimators
            .iter()
            .find(|(v, e)| **e == Estimator::Enumerate && !self.model.vars[**v].timed)
            .map(|(v, _)| {
                (
                    *v,
                    self.model.vars[*v].ty.support_size().unwrap_or(u64::MAX) as usize,
                )
            })
    }

    /// Lower a checked model. Features the backend does not run yet are diagnostics.
    pub fn new(model: &Model, elbo: &Elbo) -> Result<Program, LowerError> {
        Program::lower(model, elbo, None).map_err(LowerError::from)
    }

    /// [`Program::new`] with the checker's spans, so that a feature the backend does not run
    /// points at its declaration: the latent, the optimality variable or the objective block.
    pub fn new_spanned(
        model: &Model,
        elbo: &Elbo,
        spans: &ModelSpans,
    ) -> Result<Program, LowerError> {
        Program::lower(model, elbo, Some(spans)).map_err(LowerError::from)
    }

    fn lower(
        model: &Model,
        elbo: &Elbo,
        spans: Option<&ModelSpans>,
    ) -> Result<Program, Vec<Diagnostic>> {
        let at = |d: Diagnostic, span: Option<crate::span::Span>, text: &str| match span {
            Some(s) => d.label(s, text),
            None => d,
        };
        let mut errs = Vec::new();
        if model.objective.overshooting > 1 {
            if let Some(why) = exec::overshoot::blocker(model) {
                errs.push(at(
                    unsupported(
                        format!("latent overshooting cannot run for this model: {why}"),
                        "remove `overshooting` from the objective block to train this model",
                    ),
                    spans.and_then(|s| s.objective),
                    "sets overshooting",
                ));
            }
        }
        let mut estimators = HashMap::new();
        for e in &elbo.estimators {
            let (v, est) = (e.var_id, e.kind);
            if est == Estimator::Enumerate {
                let var_span = spans.and_then(|s| s.vars.get(v).copied());
                if let Some(why) = enumeration_blocker(model, v) {
                    errs.push(at(unsupported(
                        format!("exact enumeration of `{}` is not supported here: {why}", e.var),
                        "annotate the latent `via straight_through` or `via score_function` to train it",
                    ), var_span, "enumerated"));
                }
                if !model.vars[v].timed
                    && estimators.iter().any(|(w, x): (&VarId, &Estimator)| {
                        *x == Estimator::Enumerate && !model.vars[*w].timed
                    })
                {
                    errs.push(at(unsupported("more than one enumerated latent".into(), "enumerate one latent and use `via straight_through` or `via score_function` for the others"), var_span, "a second enumerated latent"));
                }
            }
            estimators.insert(v, est);
        }
        if model.objective.overshooting > 1
            && estimators.values().any(|e| *e == Estimator::Enumerate)
        {
            errs.push(at(
                unsupported(
                    "latent overshooting with an enumerated latent".into(),
                    "annotate the discrete latent `via straight_through` or remove `overshooting`",
                ),
                spans.and_then(|s| s.objective),
                "sets overshooting",
            ));
        }
        let mut auto_alpha = None;
        for (oi, o) in model.optimality.iter().enumerate() {
            if let Alpha::Auto { target, .. } = o.alpha {
                if auto_alpha.is_some() {
                    errs.push(at(
                        unsupported(
                            "two auto-tuned temperatures".into(),
                            "tune α for one optimality variable",
                        ),
                        spans.and_then(|s| s.optimality.get(oi).copied()),
                        "a second auto-tuned α",
                    ));
                }
                auto_alpha = Some(target);
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Program {
            model: model.clone(),
            elbo: elbo.clone(),
            plan: plan::Plan::new(model),
            estimators,
            auto_alpha,
        })
    }

    /// Steps before the first one that inits must cover.
    fn min_init_lag(&self) -> u32 {
        self.model
            .inits
            .iter()
            .map(|i| (1 - i.step) as u32)
            .max()
            .unwrap_or(0)
    }

    /// The KL weight at an optimiser step.
    pub fn kl_weight(&self, step: u64) -> f64 {
        crate::objective::kl_weight::at(self.model.objective.kl_weight, step)
    }

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
