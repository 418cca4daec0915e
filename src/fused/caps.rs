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
use crate::derive::{Compute, KlForm, TermKind};
use crate::family::{EntropyForm, Family};
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
        feature: "latent overshooting",
        find: |p| (p.model.objective.overshooting > 1).then(String::new),
    },
    Lack {
        feature: "IWAE",
        find: |p| (p.model.objective.iwae > 1).then(String::new),
    },
    Lack {
        feature: "a gradient estimator other than reparameterisation",
        find: |p| {
            let mut vs: Vec<_> = (p.estimators.iter())
                .filter(|(_, e)| **e != Estimator::Reparam)
                .map(|(v, _)| *v)
                .collect();
            vs.sort();
            vs.first()
                .map(|v| format!("the estimator of `{}`", p.model.vars[*v].name))
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
    Lack {
        feature: "a closed-form KL or entropy without fused kernels",
        find: |p| {
            p.elbo.terms.iter().find_map(|t| match t.compute {
                Compute::Kl(KlForm::NormalNormal) | Compute::Entropy(EntropyForm::Normal) => None,
                Compute::Kl(form) => Some(format!("{form:?}")),
                Compute::Entropy(form) => Some(format!("{form:?}")),
                _ => None,
            })
        },
    },
    Lack {
        feature: "a likelihood or KL of a definition",
        find: |p| {
            p.elbo.terms.iter().find_map(|t| {
                let f = match &t.kind {
                    TermKind::LogLikelihood { p: f } => f,
                    TermKind::Kl { p: f, .. } | TermKind::LogRatio { p: f, .. } => f,
                    _ => return None,
                };
                let f = &p.model.factors[f.factor];
                matches!(f.body, FactorBody::Define(_))
                    .then(|| format!("`{}`", p.model.vars[f.var].name))
            })
        },
    },
];

/// Whether the fused runtime has the kernels `f` needs for `family`: Normal and TanhNormal
/// everywhere, Bernoulli as a likelihood of observed data; a Flat prior needs none (its term
/// is q's entropy).
fn fused_family(m: &Model, f: &Factor, family: Family) -> bool {
    match family {
        Family::Normal | Family::TanhNormal | Family::Flat => true,
        Family::Bernoulli => matches!(m.vars[f.var].role, Role::Observed),
        _ => false,
    }
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
