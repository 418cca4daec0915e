//! Known-dynamics imagination (`imagine { … start = prior }`): the rollouts run in the model's
//! own `p`, which must therefore be fully declared.
//!
//! Input: the checked IR with its `Model::behaviour`. Output: `E097` diagnostics, nothing else
//! changes. Invariants after a clean pass with `start = prior`: no variable is observed (there
//! is no world model to learn), `p` reads no net and no parameter (nothing would train them:
//! the actor and the critic are the only learners), every static latent has a proper prior in
//! `p` (start states are drawn from it), and no timed latent is drawn by a Flat prior.

use super::env::Ck;
use crate::diag::{Code, Diagnostic};
use crate::ir::*;

const HELP: &str =
    "`start = prior` imagines in the dynamics `p` declares (known, nothing learned): \
                    write them with constants, states (`x[t] = …`) and latents with proper priors, \
                    or learn a world model from data with `start = posterior`";

/// The first net or parameter an expression reads, by name.
fn learned_in(m: &Model, e: &Expr) -> Option<String> {
    let mut found = None;
    e.walk(&mut |x| {
        if found.is_some() {
            return;
        }
        match &x.kind {
            ExprKind::Net { net, .. } | ExprKind::Gru { net, .. } | ExprKind::Rnn { net, .. } => {
                found = Some(format!("the net `{}`", m.nets[*net].name));
            }
            ExprKind::Param(p) => found = Some(format!("the parameter `{}`", m.params[*p].name)),
            _ => {}
        }
    });
    found
}

fn dist_exprs(d: &Dist) -> Vec<&Expr> {
    match &d.args {
        DistArgs::LocScale { loc, scale } => vec![loc, scale],
        DistArgs::Split { head, .. } => vec![head],
        DistArgs::Logits(l) => vec![l],
        DistArgs::Bounds { low, high } => vec![low, high],
        DistArgs::Params(ps) => ps.iter().collect(),
        DistArgs::None => vec![],
    }
}

impl Ck {
    /// `E097`: with `start = prior`, the dynamics must be declared (see the module note).
    pub fn known_dynamics(&mut self) {
        let known = (self.model.behaviour.as_ref()).is_some_and(|b| b.start == ImagineStart::Prior);
        if !known {
            return;
        }
        let mut errs = Vec::new();
        for (v, var) in self.model.vars.iter().enumerate() {
            if var.role == Role::Observed {
                errs.push(
                    Diagnostic::new(
                        Code::KnownDynamics,
                        format!(
                            "`start = prior` imagines in the declared dynamics, but `{}` is observed: a world model to learn from data",
                            var.name
                        ),
                    )
                    .label(self.spans.vars[v], "observed")
                    .help(HELP),
                );
            }
        }
        for (i, f) in self.model.factors.iter().enumerate() {
            if f.block != Block::P {
                continue;
            }
            let var = &self.model.vars[f.var];
            let exprs: Vec<&Expr> = match &f.body {
                FactorBody::Define(e) => vec![e],
                FactorBody::Sample(d) => {
                    if matches!(d.args, DistArgs::None) && var.role == Role::Latent {
                        errs.push(
                            Diagnostic::new(
                                Code::KnownDynamics,
                                format!(
                                    "`{}` has a Flat prior: known-dynamics imagination draws it from p",
                                    var.name
                                ),
                            )
                            .label(self.spans.factors[i], "no distribution to draw from")
                            .help(HELP),
                        );
                    }
                    dist_exprs(d)
                }
            };
            if let Some(what) = exprs.iter().find_map(|e| learned_in(&self.model, e)) {
                errs.push(
                    Diagnostic::new(
                        Code::KnownDynamics,
                        format!(
                            "the dynamics of `{}` read {what}, which nothing trains with `start = prior`",
                            var.name
                        ),
                    )
                    .label(self.spans.factors[i], format!("reads {what}"))
                    .help(HELP),
                );
            }
        }
        for e in errs {
            self.err(e);
        }
    }
}
