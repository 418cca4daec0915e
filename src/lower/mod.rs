//! Stage 5, lower: ELBO IR → the backend-neutral [`Program`] every runtime builds from.
//!
//! Input: a checked [`Model`] and its [`Elbo`]. Output: a [`Program`] — the model, its ELBO,
//! the execution [`plan::Plan`] (which variables run on the sequential chain, in what order),
//! each latent's estimator and the auto-α target — and what all backends share: the data
//! [`Batch`], the parameter names, overshooting's targets ([`overshoot`]). Invariants: no
//! tensors here (the reference runtime, `crate::reference`, interprets a `Program` on dfdx;
//! the fused runtime, `crate::fused`, compiles it); what no backend runs is a diagnostic
//! with a span, never a panic later.

mod batch;
mod error;
pub mod overshoot;
pub mod plan;

pub use batch::Batch;
pub use error::LowerError;

use crate::derive::Elbo;
use crate::diag::{Code, Diagnostic};
use crate::ir::*;
use std::collections::HashMap;

/// The learned offset of the score-function baseline.
pub const BASELINE_PARAM: &str = "baseline.offset";

/// The parameter holding log α of an auto-tuned temperature.
pub const ALPHA_PARAM: &str = "alpha.log";

/// The lowered program of a checked model and its ELBO: what the reference runtime
/// (`Program::forward` on dfdx) interprets and what `fused::build` compiles. Built once by
/// [`Program::new`].
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
            Ok(None) => {
                Some("it is time-indexed and not a chain the forward algorithm sums out".into())
            }
            // The first reason (with IWAE: that a chain is not combined with it).
            Err(why) => Some(why.first().map_or_else(
                || "it is time-indexed and not a chain the forward algorithm sums out".into(),
                |(w, _)| w.clone(),
            )),
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
            if let Some(why) = overshoot::blocker(model) {
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

    /// Steps before the first that lags and inits reach.
    pub(crate) fn lag_steps(&self) -> usize {
        self.plan.max_lag.max(self.min_init_lag()) as usize
    }
}

/// The parameter-store name of `param` `p`: `param.<name>`.
pub fn param_name(m: &Model, p: ParamId) -> String {
    format!("param.{}", m.params[p].name)
}

/// The parameter-store prefix of net `n`'s weights: `net.<name>`.
pub fn net_prefix(m: &Model, n: NetId) -> String {
    format!("net.{}", m.nets[n].name)
}

/// A unary op on a folded number, in f32 as the tensors compute it.
pub fn num_op(op: UnOp, x: f32) -> f32 {
    op.eval(f64::from(x)) as f32
}
