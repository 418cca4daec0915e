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
    let (Some(Arg::Pos(which)), Some(Arg::Pos(default)), 2) =
        (args.first(), args.get(1), args.len())
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
            let is_cat = |f: &ImagineFactor| matches!(&f.stmt, StmtAst::Sample { dist, .. } if dist.family.name == "Categorical");
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

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "model m {
  dim O = env(obs, 3), A = env(act, 1)
  observed o[t] : real[O]
  input a[t] : action[A]
  net actor = mlp(O -> 2*A)
  net pick = mlp(O -> A)
  imagine {
    policy a[t] ~ TanhNormal.split(actor(o[t]))
    prior a[t] ~ Flat
    policy a[t] ~ Categorical(logits = pick(o[t]))
    prior a[t] ~ Categorical(logits = zeros(A))
  }
}";

    fn dims(ast: &ModelAst) -> Vec<f64> {
        let Some(Item::Dims(bs)) = ast.items.first() else {
            panic!("dims first")
        };
        bs.iter()
            .map(|b| match b.value.kind {
                ExprKind::Num(x) => x,
                _ => f64::NAN,
            })
            .collect()
    }

    fn families(ast: &ModelAst) -> Vec<String> {
        ast.items
            .iter()
            .flat_map(|it| match it {
                Item::Imagine { factors, .. } => factors
                    .iter()
                    .filter_map(|f| match &f.stmt {
                        StmtAst::Sample { dist, .. } => Some(dist.family.name.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => vec![],
            })
            .collect()
    }

    fn nets(ast: &ModelAst) -> Vec<String> {
        (ast.items.iter())
            .filter_map(|it| match it {
                Item::Net { name, .. } => Some(name.name.clone()),
                _ => None,
            })
            .collect()
    }

    fn action_type(ast: &ModelAst) -> String {
        (ast.items.iter())
            .find_map(|it| match it {
                Item::Var { name, ty, .. } if name.name == "a" => Some(ty.name.name.clone()),
                _ => None,
            })
            .expect("a")
    }

    #[test]
    fn defaults_without_an_environment_and_sizes_from_one() {
        let mut ast = crate::parse::parse(SRC).expect("parses");
        specialise(&mut ast, None).expect("ok");
        assert_eq!(dims(&ast), vec![3.0, 1.0]);
        assert_eq!(action_type(&ast), "real");
        assert_eq!(families(&ast), vec!["TanhNormal", "Flat"]);
        assert_eq!(nets(&ast), vec!["actor"]);
        let mut ast = crate::parse::parse(SRC).expect("parses");
        let cartpole = EnvShape {
            obs: 4,
            act: 2,
            discrete: true,
        };
        specialise(&mut ast, Some(&cartpole)).expect("ok");
        assert_eq!(dims(&ast), vec![4.0, 2.0]);
        assert_eq!(action_type(&ast), "onehot");
        assert_eq!(families(&ast), vec!["Categorical", "Categorical"]);
        assert_eq!(nets(&ast), vec!["pick"]);
    }

    #[test]
    fn malformed_environment_sizes_are_e089() {
        for bad_src in ["env(obs)", "env(rew, 3)", "env(obs, 0)", "env(obs, x)"] {
            let mut ast =
                crate::parse::parse(&SRC.replace("env(obs, 3)", bad_src)).expect("parses");
            let e = specialise(&mut ast, None).expect_err(bad_src);
            assert_eq!(e[0].code, Code::BadEnvSize, "{bad_src}");
            assert!(e[0].help.contains("env(obs, 3)"), "{}", e[0].help);
        }
    }
}
