//! `kl_weight = β` or `kl_weight = anneal(from, to, steps = N)`: multiplies every KL-like term
//! (closed-form KL, Monte Carlo log-ratio, entropy) in the training objective, β-VAE style;
//! annealing is linear in the optimiser step, then constant.

use super::{num, ModifierSpec, Modifiers};
use crate::derive::Compute;
use crate::ir::{KlWeight, Objective, VarOrOpt};

/// This modifier's row of [`super::MODIFIERS`].
pub const SPEC: ModifierSpec = ModifierSpec {
    key: "kl_weight",
    applies,
    acts_on: "KL-like terms (closed-form KLs, Monte Carlo log-ratios, entropies)",
    is_set: |o| o.kl_weight != KlWeight::Fixed(1.0),
    attach,
    display,
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
