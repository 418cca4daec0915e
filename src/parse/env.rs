//! Sizes from the environment (issue 19): one agent model for every Box/Discrete environment.
//!
//! Input: a parsed model and, when it runs in an environment, that environment's shape
//! ([`EnvShape`]: observation size, action size, whether actions are discrete). Output: the
//! same model with its environment-dependent parts fixed, before the checker sees it:
//! - `dim O = env(obs, 3)`, `A = env(act, 1)`: the environment's size, or the default (the
//!   second argument) without an environment (`vic check`, `vic elbo`, `vic run`);
//! - a variable of type `action[A]`: `onehot[A]` for a `Discrete(A)` space, else `real[A]`;
//! - an `imagine` block with two `policy` (or two `prior`) statements on that action, one of
//!   them a `Categorical`: the Categorical one is kept for a discrete space, the other one
//!   otherwise; a net only the dropped statement called is dropped with it.
//!
//! Invariants: a model without `env(…)`, `action[…]` or a doubled statement is returned as it
//! was (the pass is the identity on every model written before it); a malformed `env(…)` is
//! `E089` with the form to write.

use super::ast::*;
use crate::diag::{Code, Diagnostic};

/// What a model needs to know of its environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvShape {
    /// Observation values per step.
    pub obs: usize,
    /// Action values per step (classes of a discrete action).
    pub act: usize,
    /// A `Discrete(act)` action space (one-hot actions).
    pub discrete: bool,
}

fn bad(span: crate::span::Span, why: &str) -> Diagnostic {
    Diagnostic::new(Code::BadEnvSize, format!("invalid environment size: {why}"))
        .label(span, why.to_string())
        .help("write `dim O = env(obs, 3), A = env(act, 1)`: the environment's observation or action size, and the size used without an environment")
}

/// The value of `env(obs|act, default)` for `env`, `None` when `e` is not such a call.
fn env_size(e: &Expr, env: Option<&EnvShape>) -> Option<Result<f64, Diagnostic>> {
    let ExprKind::Call { fun, args } = &e.kind else {
        return None;
    };
    if fun.name != "env" {
        return None;
    }
    let (Some(Arg::Pos(which)), Some(Arg::Pos(default)), 2) = (args.first(), args.get(1), args.len())
    else {
        return Some(Err(bad(e.span, "`env` takes a size's name and a default")));
    };
    let ExprKind::Name(w) = &which.kind else {
        return Some(Err(bad(which.span, "the first argument is `obs` or `act`")));
    };
    let ExprKind::Num(d) = default.kind else {
        return Some(Err(bad(default.span, "the default is a number")));
    };
    if d < 1.0 || d.fract() != 0.0 {
        return Some(Err(bad(default.span, "the default is a whole number ≥ 1")));
    }
    Some(match (w.name.as_str(), env) {
        ("obs", Some(s)) => Ok(s.obs as f64),
        ("act", Some(s)) => Ok(s.act as f64),
        ("obs" | "act", None) => Ok(d),
        _ => Err(bad(which.span, "the first argument is `obs` or `act`")),
    })
}

/// Names of the functions (nets) an expression calls.
fn calls(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Call { fun, args } => {
            out.push(fun.name.clone());
            for a in args {
                match a {
                    Arg::Pos(x) => calls(x, out),
                    Arg::Kw(k) => calls(&k.value, out),
                }
            }
        }
        ExprKind::Bin { lhs, rhs, .. } => {
            calls(lhs, out);
            calls(rhs, out);
        }
        ExprKind::Neg(x) | ExprKind::Select(x, _) => calls(x, out),
        ExprKind::Array(xs) => xs.iter().for_each(|x| calls(x, out)),
        ExprKind::Num(_) | ExprKind::Name(_) | ExprKind::Index { .. } => {}
    }
}

fn dist_calls(d: &DistAst) -> Vec<String> {
    let mut out = Vec::new();
    for a in &d.args {
        match a {
            Arg::Pos(x) => calls(x, &mut out),
            Arg::Kw(k) => calls(&k.value, &mut out),
        }
    }
    out
}

/// Fixes the environment-dependent parts of `ast` for `env` (defaults without one).
pub fn specialise(ast: &mut ModelAst, env: Option<&EnvShape>) -> Result<(), Vec<Diagnostic>> {
    let mut errs = Vec::new();
    let discrete = env.is_some_and(|e| e.discrete);
    for item in &mut ast.items {
        match item {
            Item::Dims(bs) => {
                for b in bs {
                    match env_size(&b.value, env) {
                        Some(Ok(x)) => b.value.kind = ExprKind::Num(x),
                        Some(Err(d)) => errs.push(d),
                        None => {}
                    }
                }
            }
            Item::Var { ty, .. } if ty.name.name == "action" => {
                ty.name.name = if discrete { "onehot" } else { "real" }.into();
            }
            _ => {}
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    // Doubled policy/prior statements: keep the one that fits the action space.
    let mut dropped: Vec<String> = Vec::new();
    for item in &mut ast.items {
        let Item::Imagine { factors, .. } = item else {
            continue;
        };
        for role in [ImagineRole::Policy, ImagineRole::Prior] {
            let of_role: Vec<usize> = (0..factors.len())
                .filter(|&i| factors[i].role == role)
                .collect();
            if of_role.len() != 2 {
                continue;
            }
            let is_cat = |f: &ImagineFactor| {
                matches!(&f.stmt, StmtAst::Sample { dist, .. } if dist.family.name == "Categorical")
            };
            let cats = of_role.iter().filter(|&&i| is_cat(&factors[i])).count();
            if cats != 1 {
                continue; // the checker reports two statements
            }
            let drop = *of_role
                .iter()
                .find(|&&i| is_cat(&factors[i]) != discrete)
                .expect("one of each");
            if let StmtAst::Sample { dist, .. } = &factors[drop].stmt {
                dropped.extend(dist_calls(dist));
            }
            factors.remove(drop);
        }
    }
    // A net only a dropped statement called goes with it (no unused-net warning).
    if !dropped.is_empty() {
        let text = format!("{:?}", ast.items);
        ast.items.retain(|it| match it {
            Item::Net { name, .. } if dropped.contains(&name.name) => {
                // Still called elsewhere: its name appears in another item's text.
                let needle = format!("name: \"{}\"", name.name);
                text.matches(&needle).count() > 1
            }
            _ => true,
        });
    }
    Ok(())
}
