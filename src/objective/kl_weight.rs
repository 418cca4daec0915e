//! `kl_weight = β` or `kl_weight = anneal(from, to, steps = N)`: multiplies every KL-like term
//! (closed-form KL, Monte Carlo log-ratio, entropy) in the training objective, β-VAE style;
//! annealing is linear in the optimiser step, then constant.

use super::{num, ModifierSpec, Modifiers};
use crate::check::env::Ck;
use crate::forms::Compute;
use crate::ir::{KlWeight, Objective, VarOrOpt};
use crate::parse::ast::{Arg, ExprKind, SettingAst};

/// This modifier's row of [`super::MODIFIERS`].
pub const SPEC: ModifierSpec = ModifierSpec {
    key: "kl_weight",
    parse,
    applies,
    acts_on: "KL-like terms (closed-form KLs, Monte Carlo log-ratios, entropies)",
    is_set: |o| o.kl_weight != KlWeight::Fixed(1.0),
    attach,
    display,
    shape: |m, w, s| s.factor *= factor(m, w),
};

/// Every term that stands for −KL(q ‖ p).
fn applies(c: Compute) -> bool {
    c.is_kl_like()
}

fn attach(obj: &Objective, _: VarOrOpt, m: &mut Modifiers) {
    m.kl_weight = Some(obj.kl_weight).filter(|w| *w != KlWeight::Fixed(1.0));
}

fn display(m: &Modifiers) -> Option<String> {
    Some(match m.kl_weight? {
        KlWeight::Fixed(w) => format!("KL weight {}", num(w)),
        KlWeight::Anneal { from, to, steps } => {
            format!("KL weight {}→{} over {steps} steps", num(from), num(to))
        }
    })
}

/// The weight at optimiser step `step`.
pub fn at(w: KlWeight, step: u64) -> f64 {
    match w {
        KlWeight::Fixed(w) => w,
        KlWeight::Anneal { from, to, steps } => {
            from + (to - from) * (step.min(steps) as f64 / steps as f64)
        }
    }
}

/// The factor a term's loss is multiplied by: the weight at this step where the modifier is
/// attached, 1 elsewhere.
pub fn factor(m: &Modifiers, weight_now: f32) -> f32 {
    if m.kl_weight.is_some() {
        weight_now
    } else {
        1.0
    }
}

/// `null`, `{"kind": "fixed", "value": β}` or `{"kind": "anneal", "from", "to", "steps"}`.
pub(super) fn ser<S: serde::Serializer>(w: &Option<KlWeight>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let Some(w) = w else {
        return s.serialize_none();
    };
    let mut m = s.serialize_map(None)?;
    match *w {
        KlWeight::Fixed(v) => {
            m.serialize_entry("kind", "fixed")?;
            m.serialize_entry("value", &v)?;
        }
        KlWeight::Anneal { from, to, steps } => {
            m.serialize_entry("kind", "anneal")?;
            m.serialize_entry("from", &from)?;
            m.serialize_entry("to", &to)?;
            m.serialize_entry("steps", &steps)?;
        }
    }
    m.end()
}

/// Parse and check the `kl_weight` setting into the model's objective (diagnostics on `ck`).
fn parse(ck: &mut Ck, s: &SettingAst) {
    if let ExprKind::Call { fun, args } = &s.value.kind {
        if fun.name == "anneal" {
            let mut pos = vec![];
            let mut steps = None;
            for a in args {
                match a {
                    Arg::Pos(e) => pos.push(ck.scalar_eval(e)),
                    Arg::Kw(k) if k.name.name == "steps" => steps = ck.scalar_eval(&k.value),
                    Arg::Kw(k) => {
                        ck.bad_setting(
                            s,
                            &format!("unknown argument `{}`", k.name.name),
                            "write `anneal(from, to, steps = N)`",
                        );
                        return;
                    }
                }
            }
            match (pos.as_slice(), steps) {
                    ([Some(a), Some(b)], Some(n)) if *a >= 0.0 && *b >= 0.0 && n >= 1.0 && n.fract() == 0.0 => {
                        ck.model.objective.kl_weight = KlWeight::Anneal { from: *a, to: *b, steps: n as u64 };
                    }
                    _ => ck.bad_setting(s, "anneal needs from ≥ 0, to ≥ 0 and a whole `steps = N ≥ 1`", "write `kl_weight = anneal(0, 1, steps = 5000)`: linear from 0 to 1 over 5000 steps"),
                }
            return;
        }
    }
    if let Some(w) = ck.scalar_eval(&s.value) {
        if w >= 0.0 {
            ck.model.objective.kl_weight = KlWeight::Fixed(w);
        } else {
            ck.bad_setting(
                s,
                "a KL weight is ≥ 0",
                "write a number ≥ 0 or `anneal(from, to, steps = N)`",
            );
        }
    }
}
