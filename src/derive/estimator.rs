//! Per-latent gradient estimators: the automatic choice and its one-line reason.

use crate::ir::*;
use serde::Serialize;

/// Supports up to this many values are summed exactly.
pub const ENUMERATE_MAX: u64 = 16;

/// The gradient estimator of one latent's samples, with the family it is drawn from and a
/// one-line reason (shown by `vic elbo` and in the JSON; `lower` reads `var_id` and `kind`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatentEstimator {
    /// The latent's name.
    pub var: String,
    /// The latent, as an id (lower reads this, never the name).
    #[serde(skip)]
    pub var_id: VarId,
    /// The estimator, typed (lower reads this; `estimator` is its keyword for display).
    #[serde(skip)]
    pub kind: Estimator,
    /// `kind`'s keyword: `reparam`, `straight_through`, `enumerate` or `score_function`.
    pub estimator: &'static str,
    /// `q`, or `p` when the latent has no q factor and is sampled from the prior.
    pub sampled_from: &'static str,
    /// The name of the family the latent is sampled from.
    pub family: &'static str,
    /// One line: why this estimator.
    pub why: String,
}

/// The number of joint values, as a number when it fits and as a power otherwise.
fn support_text(ty: VarType) -> String {
    match (ty.support_size(), ty) {
        (Some(n), _) => n.to_string(),
        (None, VarType::Binary { size }) => format!("2^{size}"),
        (None, VarType::OneHot { groups, classes }) => format!("{classes}^{groups}"),
        (None, _) => "too many".into(),
    }
}

/// The estimator of one latent's samples, and why.
pub fn choose_estimator(m: &Model, v: VarId) -> LatentEstimator {
    let var = &m.vars[v];
    let sampler = m
        .factors_of(v, Block::Q)
        .chain(m.factors_of(v, Block::P))
        .find_map(|(_, f)| match &f.body {
            FactorBody::Sample(d) => Some((f.block, d.family)),
            FactorBody::Define(_) => None,
        });
    let (block, family) = sampler.unwrap_or((Block::P, Family::Normal));
    let sampled_from = block.letter();
    let (est, why) = if let Some(e) = var.estimator {
        (e, format!("annotated `via {}`", e.keyword()))
    } else {
        match family.spec().reparam {
            Some(why) => (Estimator::Reparam, why.to_string()),
            None => match var.ty.support_size() {
                Some(n) if n <= ENUMERATE_MAX && !var.timed => {
                    (Estimator::Enumerate, format!("discrete with {n} values (≤ {ENUMERATE_MAX}): exact sum, no sampling noise"))
                }
                Some(n) if n <= ENUMERATE_MAX => (
                    Estimator::ScoreFunction,
                    format!("discrete with {n} values per step, but time-indexed: enumerating T steps costs {n}^T; score function with a baseline (annotate `via straight_through` for a biased, low-variance gradient)"),
                ),
                _ => (
                    Estimator::ScoreFunction,
                    format!("discrete with {} values (> {ENUMERATE_MAX}): score function with a baseline (annotate `via straight_through` for a biased, low-variance gradient)", support_text(var.ty)),
                ),
            },
        }
    };
    let chain = match super::marginal::chain(m, v) {
        Ok(Some(c)) if var.timed && est == Estimator::Enumerate => Some(c.q.is_some()),
        _ => None,
    };
    let why = if chain == Some(false) {
        "no q factor: a discrete chain summed out of p exactly by the forward algorithm (not sampled)".to_string()
    } else if chain == Some(true) {
        "q is a Markov chain: enumerated exactly over q's chain by its forward marginals (not sampled)".to_string()
    } else if block == Block::P && !m.has_q(v) {
        format!("no q factor: sampled from p (tied); {why}")
    } else {
        why
    };
    LatentEstimator {
        var: var.name.clone(),
        var_id: v,
        kind: est,
        estimator: est.keyword(),
        sampled_from,
        family: family.name(),
        why,
    }
}
