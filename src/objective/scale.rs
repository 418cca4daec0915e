//! `scale <term> = s`: multiplies the named variable's terms in the training objective (every
//! kind of term). Parsed in `check::objective`; applied as a factor on the term's loss.

use super::{num, ModifierSpec, Modifiers};
use crate::derive::Compute;
use crate::ir::{Objective, VarOrOpt};

/// This modifier's row of [`super::MODIFIERS`].
pub const SPEC: ModifierSpec = ModifierSpec {
    key: "scale",
    applies,
    acts_on: "every term",
    is_set: |o| !o.scales.is_empty(),
    attach,
    display,
};

/// Every term kind is scaled.
fn applies(_: Compute) -> bool {
    true
}

fn attach(obj: &Objective, owner: VarOrOpt, m: &mut Modifiers) {
    m.scale = of(obj, owner);
}

/// The scale of `owner`'s terms (1 when none is set).
pub fn of(obj: &Objective, owner: VarOrOpt) -> f64 {
    obj.scales
        .iter()
        .find(|(o, _)| *o == owner)
        .map(|(_, s)| *s)
        .unwrap_or(1.0)
}

fn display(m: &Modifiers) -> Option<String> {
    (m.scale != 1.0).then(|| format!("× {}", num(m.scale)))
}
