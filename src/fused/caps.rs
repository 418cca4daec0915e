//! What the fused runtime runs: one table, read once per program before anything is built.
//!
//! Input: a lowered [`Program`]. Output: `Ok(())` when the fused runtime runs every feature
//! the program uses, else [`Unsupported`] naming the first feature it lacks (the table's
//! order). The trainer decides its runtime from this before the first step, and `vic check
//! --summary`, the run's `config.json` and `vic run`'s first lines all read the same answer.
//! Invariant: a program this table accepts is one [`super::build::build`] lowers; a build that
//! still fails is a fault in vic, not a fallback (`tests/runtimes.rs` checks every shipped
//! model, the property tests generated ones).
//!
//! Each row is a language feature the fused runtime does not run yet and how to find it in a
//! program. A feature given fused kernels loses its row here and its `unsup` in `build`.

use super::build::Unsupported;
use crate::family::Family;
use crate::ir::*;
use crate::lower::Program;

/// A feature the fused runtime lacks: its name, and where a program uses it (`None`: not used).
pub struct Lack {
    /// The feature, as messages name it.
    pub feature: &'static str,
    /// Where `p` uses it, in words (`None` where it does not).
    pub find: fn(&Program) -> Option<String>,
}

/// The features the fused runtime does not run, in the order they are reported.
pub const LACKS: &[Lack] = &[
    Lack {
        feature: "latent overshooting of static or non-Normal latents, or with nets over time",
        find: |p| {
            let m = &p.model;
            if m.objective.overshooting < 2 {
                return None;
            }
            if let Some(v) = m.vars.iter().find(|v| !v.timed) {
                return Some(format!("`{}` is static", v.name));
            }
            // The windows' views of data are the main buffers', whose trailing steps a q
            // that reads ahead would need per window.
            if m.max_lead() > 0 {
                return Some("q reads data ahead (a window)".into());
            }
            // An open-loop window would scan its own sequences (`fused/build/overshoot.rs`).
            if let Some(n) = (m.nets.iter()).find(|n| matches!(n.kind, NetKind::Rnn { .. })) {
                return Some(format!("`{}` is a net over time", n.name));
            }
            m.factors.iter().find_map(|f| match &f.body {
                FactorBody::Sample(d)
                    if f.block == Block::P
                        && m.vars[f.var].role == Role::Latent
                        && d.family != Family::Normal =>
                {
                    Some(format!("`{}` is {}", m.vars[f.var].name, d.family.name()))
                }
                _ => None,
            })
        },
    },
    Lack {
        feature: "a latent whose q family changes over time",
        find: |p| {
            let m = &p.model;
            (0..m.vars.len()).find_map(|v| {
                let mut fams = m.factors.iter().filter_map(|f| match &f.body {
                    FactorBody::Sample(d) if f.var == v && f.block == Block::Q => Some(d.family),
                    _ => None,
                });
                let first = fams.next()?;
                fams.any(|f| f != first)
                    .then(|| format!("`{}`", m.vars[v].name))
            })
        },
    },
    Lack {
        // Bernoulli (`binary`) latents are drawn (straight-through or score function); their
        // values are not enumerated (`fused/build/bernoulli.rs`).
        feature: "exact enumeration of Bernoulli latents",
        find: |p| {
            let m = &p.model;
            sorted_estimators(p)
                .find(|(v, e)| {
                    !matches!(e, Estimator::StraightThrough | Estimator::ScoreFunction)
                        && matches!(m.vars[*v].ty, VarType::Binary { .. })
                })
                .map(|(v, _)| format!("`{}`", m.vars[v].name))
        },
    },
    Lack {
        // A time-indexed chain is summed out by the forward algorithm (`build/hmm.rs`); a
        // static latent is enumerated by tiling the batch, in static models only.
        feature: "exact enumeration in a model with time-indexed variables",
        find: |p| {
            let m = &p.model;
            if !m.vars.iter().any(|x| x.timed) {
                return None;
            }
            sorted_estimators(p)
                .find(|(v, e)| *e == Estimator::Enumerate && !m.vars[*v].timed)
                .map(|(v, _)| format!("`{}`", m.vars[v].name))
        },
    },
    Lack {
        feature: "a discrete chain of more than 64 states summed out",
        find: |p| {
            crate::derive::marginal::chains(&p.model)
                .into_iter()
                .find(|c| c.classes > crate::fused::hmm::MAX_STATES)
                .map(|c| format!("`{}`", p.model.vars[c.var].name))
        },
    },
    Lack {
        feature: "exact enumeration of more than 4096 values",
        find: |p| {
            let m = &p.model;
            sorted_estimators(p)
                .find(|(v, e)| {
                    *e == Estimator::Enumerate
                        && m.vars[*v].ty.support_size().is_none_or(|n| n > 4096)
                })
                .map(|(v, _)| format!("`{}`", m.vars[v].name))
        },
    },
    Lack {
        feature: "the score-function estimator under IWAE",
        find: |p| {
            (p.model.objective.iwae > 1)
                .then(|| sorted_estimators(p).find(|(_, e)| *e == Estimator::ScoreFunction))
                .flatten()
                .map(|(v, _)| format!("`{}`", p.model.vars[v].name))
        },
    },
    Lack {
        feature: "free nats or KL balancing on a categorical term",
        find: |p| {
            let m = &p.model;
            p.elbo.terms.iter().find_map(|t| match t.owner_id {
                VarOrOpt::Var(v)
                    if matches!(m.vars[v].ty, VarType::OneHot { .. })
                        && (t.modifiers.free_nats.is_some()
                            || t.modifiers.kl_balance.is_some()) =>
                {
                    Some(format!("`{}`", m.vars[v].name))
                }
                _ => None,
            })
        },
    },
    Lack {
        feature: "a family without fused kernels",
        find: |p| {
            p.model.factors.iter().find_map(|f| match &f.body {
                FactorBody::Sample(d) if !fused_family(&p.model, f, d.family) => Some(format!(
                    "{} `{}`",
                    d.family.name(),
                    p.model.vars[f.var].name
                )),
                _ => None,
            })
        },
    },
];

/// Whether the fused runtime has the kernels `f` needs for `family`: Normal, TanhNormal,
/// Uniform, Laplace, Flat, LogNormal, StudentT, Gamma, Beta, Poisson and MultivariateNormal
/// everywhere, Categorical on one-hot variables, Bernoulli as a
/// likelihood of observed data and on binary latents.
fn fused_family(m: &Model, f: &Factor, family: Family) -> bool {
    match family {
        Family::Normal | Family::TanhNormal | Family::Uniform | Family::Laplace | Family::Flat => {
            true
        }
        // `fused::special` (a Poisson only ever observed: the checker refuses it on a latent).
        Family::LogNormal | Family::StudentT | Family::Gamma | Family::Beta | Family::Poisson => {
            true
        }
        Family::MultivariateNormal => true,
        Family::Categorical => matches!(m.vars[f.var].ty, VarType::OneHot { .. }),
        Family::Bernoulli => {
            matches!(m.vars[f.var].role, Role::Observed)
                || (matches!(m.vars[f.var].ty, VarType::Binary { .. })
                    && m.vars[f.var].role == Role::Latent)
        }
    }
}

/// The program's estimators in variable order (a stable report).
fn sorted_estimators(p: &Program) -> impl Iterator<Item = (VarId, Estimator)> {
    let mut v: Vec<(VarId, Estimator)> = p.estimators.iter().map(|(v, e)| (*v, *e)).collect();
    v.sort_by_key(|(v, _)| *v);
    v.into_iter()
}

/// Whether the fused runtime runs `p`: `Err` names the first feature of [`LACKS`] it uses.
pub fn support(p: &Program) -> Result<(), Unsupported> {
    for lack in LACKS {
        if let Some(at) = (lack.find)(p) {
            return Err(Unsupported(if at.is_empty() {
                lack.feature.to_string()
            } else {
                format!("{}: {at}", lack.feature)
            }));
        }
    }
    Ok(())
}
