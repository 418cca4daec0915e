//! `kl_balance = b` (DreamerV2): `b·KL(sg(q) ‖ p) + (1 − b)·KL(q ‖ sg(p))` — the value is the
//! KL, the gradient is split `b : 1 − b` between the prior and the posterior. Acts on
//! closed-form KL terms only.

use super::{num, ModifierSpec, Modifiers};
use crate::check::env::Ck;
use crate::forms::Compute;
use crate::ir::{Objective, VarOrOpt};
use crate::parse::ast::SettingAst;

/// This modifier's row of [`super::MODIFIERS`].
pub const SPEC: ModifierSpec = ModifierSpec {
    key: "kl_balance",
    parse,
    applies,
    acts_on: "closed-form KL terms only",
    is_set: |o| o.kl_balance.is_some(),
    attach,
    display,
    shape: |m, _, s| s.balance = m.kl_balance.is_some().then(|| gradient_weights(m)),
};

/// Closed-form KL terms only.
fn applies(c: Compute) -> bool {
    c.is_closed_kl()
}

fn attach(obj: &Objective, _: VarOrOpt, m: &mut Modifiers) {
    m.kl_balance = obj.kl_balance;
}

fn display(m: &Modifiers) -> Option<String> {
    let b = m.kl_balance?;
    Some(format!(
        "KL balance {0}: {0}·KL(sg(q) ‖ p) + {1}·KL(q ‖ sg(p))",
        num(b),
        num(1.0 - b)
    ))
}

/// The gradient weights `(on q, on p)`: `(1 − b, b)`, or `(1, 1)` without balancing.
pub fn gradient_weights(m: &Modifiers) -> (f32, f32) {
    match m.kl_balance {
        Some(b) => ((1.0 - b) as f32, b as f32),
        None => (1.0, 1.0),
    }
}

/// Parse and check the `kl_balance` setting into the model's objective (diagnostics on `ck`).
fn parse(ck: &mut Ck, s: &SettingAst) {
    let Some(b) = ck.scalar_eval(&s.value) else {
        return;
    };
    if (0.0..=1.0).contains(&b) {
        ck.model.objective.kl_balance = Some(b);
    } else {
        ck.bad_setting(
            s,
            &format!("{b} is outside [0, 1]"),
            "the balance is the weight of the prior side, e.g. `kl_balance = 0.8` (DreamerV2)",
        );
    }
}
