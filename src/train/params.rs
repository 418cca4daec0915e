//! Learned values by name, as NumPyro's `svi_result.params` gives them: each model `param`
//! with the value the model uses (the raw value through `softplus`, `exp`, `sigmoid` or `tanh`
//! when every use of the parameter applies the same one), the raw value beside it, and every
//! net weight as stored. The store's names lose their `param.` / `net.` prefixes: `s`,
//! `enc.0.weight`; the entropy temperature `alpha.log` is reported as `alpha` (its `exp`).

use crate::ir::{ExprKind, FactorBody, Model, UnOp};
use crate::lower::{param_name, ALPHA_PARAM};
use crate::runtime::nets::params::ParamStore;

/// One learned tensor.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NamedParam {
    /// Its name: a model `param` as declared, a net weight as `net.layer.weight`, or `alpha`.
    pub name: String,
    /// Its shape as stored.
    pub shape: Vec<usize>,
    /// The map the model applies to it (`"softplus"`, `"exp"`, …), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<&'static str>,
    /// The value the model uses (`transform` applied), row-major.
    pub value: Vec<f64>,
    /// The stored, unconstrained value, row-major.
    pub raw: Vec<f64>,
}

/// The maps that make a parameter's value constrained.
fn constraining(op: UnOp) -> bool {
    matches!(op, UnOp::Softplus | UnOp::Exp | UnOp::Sigmoid | UnOp::Tanh)
}

/// For each model parameter, the constraining map applied at every use of it, if one is.
pub fn transforms(m: &Model) -> Vec<Option<UnOp>> {
    // Per parameter: the map at each use (None: used as it is).
    let mut uses: Vec<Vec<Option<UnOp>>> = vec![Vec::new(); m.params.len()];
    let mut visit = |root: &crate::ir::Expr| {
        let mut stack = vec![(root, None::<UnOp>)];
        while let Some((e, parent)) = stack.pop() {
            if let ExprKind::Param(p) = e.kind {
                if let Some(u) = uses.get_mut(p) {
                    u.push(parent.filter(|op| constraining(*op)));
                }
            }
            let op = match e.kind {
                ExprKind::Unary { op, .. } => Some(op),
                _ => None,
            };
            stack.extend(e.children().into_iter().map(|c| (c, op)));
        }
    };
    for f in &m.factors {
        match &f.body {
            FactorBody::Define(e) => visit(e),
            FactorBody::Sample(d) => match &d.args {
                crate::ir::DistArgs::LocScale { loc, scale } => {
                    visit(loc);
                    visit(scale);
                }
                crate::ir::DistArgs::Split { head, .. } => visit(head),
                crate::ir::DistArgs::Logits(e) => visit(e),
                crate::ir::DistArgs::Bounds { low, high } => {
                    visit(low);
                    visit(high);
                }
                crate::ir::DistArgs::Params(ps) => ps.iter().for_each(&mut visit),
                crate::ir::DistArgs::None => {}
            },
        }
    }
    for i in &m.inits {
        visit(&i.value);
    }
    for o in &m.optimality {
        visit(&o.reward);
    }
    uses.into_iter()
        .map(|u| match u.first() {
            Some(Some(op)) if u.iter().all(|x| *x == Some(*op)) => Some(*op),
            _ => None,
        })
        .collect()
}

/// Every learned tensor of `store` by name: the model's `param`s first (in declaration
/// order), then the nets' weights and `alpha` (in the store's name order).
pub fn named_params(m: &Model, store: &ParamStore) -> Vec<NamedParam> {
    let maps = transforms(m);
    let host = |name: &str| {
        store.get(name).ok().map(|p| {
            (
                p.shape(),
                p.to_host()
                    .iter()
                    .map(|x| f64::from(*x))
                    .collect::<Vec<f64>>(),
            )
        })
    };
    let mut out = Vec::new();
    for (i, p) in m.params.iter().enumerate() {
        let Some((shape, raw)) = host(&param_name(m, i)) else {
            continue;
        };
        let op = maps.get(i).copied().flatten();
        let value = match op {
            Some(op) => raw.iter().map(|x| op.eval(*x)).collect(),
            None => raw.clone(),
        };
        out.push(NamedParam {
            name: p.name.clone(),
            shape,
            transform: op.map(UnOp::name),
            value,
            raw,
        });
    }
    for (name, p) in store.iter() {
        let raw: Vec<f64> = p.to_host().iter().map(|x| f64::from(*x)).collect();
        if name == ALPHA_PARAM {
            out.push(NamedParam {
                name: "alpha".into(),
                shape: p.shape(),
                transform: Some("exp"),
                value: raw.iter().map(|x| x.exp()).collect(),
                raw,
            });
        } else if let Some(rest) = name.strip_prefix("net.") {
            out.push(NamedParam {
                name: rest.to_string(),
                shape: p.shape(),
                transform: None,
                value: raw.clone(),
                raw,
            });
        }
    }
    out
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

    /// `s` is only used as `softplus(s)`, `m` as it is, and `k` both ways (so it has no map).
    #[test]
    fn a_map_is_reported_only_when_every_use_applies_it() {
        let m = model(
            r#"
model toy {
  observed x : real
  latent   z : real
  param m : real = 0.3
  param s : real = 0.5413248546
  param k : real = 0.1
  p { z ~ Normal(k, softplus(k))
      x ~ Normal(z, 1) }
  q { z ~ Normal(m, softplus(s)) }
}"#,
        );
        let names: Vec<&str> = m.params.iter().map(|p| p.name.as_str()).collect();
        let maps = transforms(&m);
        let of = |n: &str| maps[names.iter().position(|x| *x == n).unwrap()];
        assert_eq!(of("m"), None);
        assert_eq!(of("s"), Some(UnOp::Softplus));
        assert_eq!(of("k"), None);
    }

    /// At initialisation s = ln(e − 1), so softplus(s) = 1 (by hand: ln(1 + e − 1) = 1).
    #[test]
    fn the_constrained_value_is_the_map_of_the_raw_one() {
        let src = std::fs::read_to_string("models/lg_toy.vmodel").expect("lg_toy");
        let compiled = crate::compile(&src, "lg_toy.vmodel").expect("compiles");
        let p = crate::lower::Program::new(compiled.ir(), &compiled.elbo()).expect("lowers");
        let tr = crate::train::Trainer::new(p, None, crate::train::TrainConfig::default())
            .expect("sets up");
        let all = named_params(&tr.program.model, &tr.store);
        let s = all.iter().find(|p| p.name == "s").expect("s");
        assert_eq!(s.transform, Some("softplus"));
        assert!((s.raw[0] - 0.5413248546).abs() < 1e-6, "{s:?}");
        assert!((s.value[0] - 1.0).abs() < 1e-6, "{s:?}");
        let m = all.iter().find(|p| p.name == "m").expect("m");
        assert_eq!(m.transform, None);
        assert!((m.value[0] - 0.3).abs() < 1e-6);
    }
}
