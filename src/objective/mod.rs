//! Objective modifiers as a list: each modifier of the `objective { … }` block that reshapes
//! ELBO terms (per-term scale, KL weight and annealing, free nats in its three placements, KL
//! balancing) is one file here with, in one place, its parse and check (called by
//! `check::objective` for its key), which term computations it acts on
//! (`applies`), how it is attached to a term ([`attach`]), how it is displayed ([`display`]),
//! and how it is applied (`shape`: its part of the term's [`Shaping`], the loss-shaping
//! primitives that the reference loss (`reference::exec::terms`) and the fused runtime
//! (`fused::build`'s KL op, `fused::engine`'s loss head) both apply).
//!
//! The one rule that keeps display and application in agreement: derive attaches a modifier
//! to a term only where `applies` holds, display shows exactly what is attached, and both
//! losses apply exactly what is attached (`tests/modifiers.rs` checks the values). A runtime
//! reads a term's modifiers only through [`shaping`], and destructures the [`Shaping`] with
//! every field named: a modifier is one row here whose `shape` writes into the shaping, and a
//! new kind of effect is a new field, which no runtime compiles without applying.
//! Free nats and KL balancing act on closed-form KL terms only, as in PlaNet and Dreamer
//! (a Monte Carlo log-ratio or an entropy is not clamped or balanced); the checker warns when
//! they are set but no term of the model is a closed-form KL.
//!
//! (IWAE and overshooting change the bound or add terms rather than reshape one; they stay
//! in `lower` and are not in this list.)

pub mod free_nats;
pub mod kl_balance;
pub mod kl_weight;
pub mod scale;

use crate::forms::Compute;
use crate::ir::{FreeNats, KlWeight, Objective, VarOrOpt};
use serde::Serialize;

/// The modifiers the objective block applies to one term (each `None`/`1` when it does not
/// apply to the term's computation).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Modifiers {
    /// Per-term scale (`scale x = …`).
    pub scale: f64,
    /// KL weight (and annealing) for KL-like terms.
    #[serde(serialize_with = "kl_weight::ser")]
    pub kl_weight: Option<KlWeight>,
    /// Free nats, on closed-form KL terms.
    pub free_nats: Option<FreeNats>,
    /// KL balancing: `b·KL(sg(q) ‖ p) + (1 − b)·KL(q ‖ sg(p))`, on closed-form KL terms.
    pub kl_balance: Option<f64>,
}

/// One modifier of the list.
pub struct ModifierSpec {
    /// The `objective` setting that turns it on.
    pub key: &'static str,
    /// Parse and check the setting into `ck.model.objective` (diagnostics on `ck`).
    pub parse: fn(&mut crate::check::env::Ck, &crate::parse::ast::SettingAst),
    /// Whether it acts on a term computed this way.
    pub applies: fn(Compute) -> bool,
    /// The terms it acts on, as a help line says it.
    pub acts_on: &'static str,
    /// Whether the objective block sets it (to a value that changes anything).
    pub is_set: fn(&Objective) -> bool,
    /// Copy the setting onto a term's modifiers (called only where `applies` holds).
    pub attach: fn(&Objective, VarOrOpt, &mut Modifiers),
    /// Its part of the terms table's modifier column, if it is attached.
    pub display: fn(&Modifiers) -> Option<String>,
    /// Its effect on the training loss, if it is attached: written into the term's shaping,
    /// given the KL weight at this step.
    pub shape: fn(&Modifiers, f32, &mut Shaping),
}

/// How a term's attached modifiers shape its part of the training loss (not its reported
/// value): the primitives both runtimes apply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shaping {
    /// The loss is the term times this (per-term scale × the KL weight at this step).
    pub factor: f32,
    /// Free nats: where the KL is floored (no gradient below the floor).
    pub floor: Option<Floor>,
    /// KL balancing: the gradient weights `(on q, on p)` of `KL(q ‖ sg p)` and `KL(sg q ‖ p)`.
    pub balance: Option<(f32, f32)>,
}

/// Where a closed-form KL is floored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Floor {
    /// Each latent dimension's KL, before the sum over dimensions.
    Element(f32),
    /// Each row's (step's) KL.
    Row(f32),
    /// The mean over the batch's rows (of the global batch in a data-parallel run).
    Mean(f64),
}

impl Shaping {
    /// No modifier: the term as it is.
    pub const IDENTITY: Shaping = Shaping {
        factor: 1.0,
        floor: None,
        balance: None,
    };
}

/// The shaping of a term with modifiers `m` at a step whose KL weight is `weight_now`: every
/// modifier of the list, in order.
pub fn shaping(m: &Modifiers, weight_now: f32) -> Shaping {
    let mut s = Shaping::IDENTITY;
    for spec in &MODIFIERS {
        (spec.shape)(m, weight_now, &mut s);
    }
    s
}

/// The list, in display order.
pub const MODIFIERS: [ModifierSpec; 4] = [
    scale::SPEC,
    kl_weight::SPEC,
    free_nats::SPEC,
    kl_balance::SPEC,
];

/// The modifiers of one term: every modifier of the list that applies to `compute`.
pub fn attach(obj: &Objective, owner: VarOrOpt, compute: Compute) -> Modifiers {
    let mut m = Modifiers {
        scale: 1.0,
        kl_weight: None,
        free_nats: None,
        kl_balance: None,
    };
    for spec in &MODIFIERS {
        if (spec.applies)(compute) {
            (spec.attach)(obj, owner, &mut m);
        }
    }
    m
}

/// The modifier column of a term: each attached modifier's text, `; `-separated.
pub fn display(m: &Modifiers) -> String {
    MODIFIERS
        .iter()
        .filter_map(|spec| (spec.display)(m))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The settings that are set but act on none of these term computations (a warning each).
pub fn unused(obj: &Objective, computes: &[Compute]) -> Vec<&'static ModifierSpec> {
    MODIFIERS
        .iter()
        .filter(|spec| (spec.is_set)(obj) && !computes.iter().any(|c| (spec.applies)(*c)))
        .collect()
}

/// A short decimal as the terms table writes it: at most 6 significant digits, no float noise.
fn num(x: f64) -> String {
    let s = format!("{:.6}", x);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{FreeNatsPlacement, KlWeight};

    /// Each modifier of the list, attached alone, shapes the loss (so none is displayed and
    /// then skipped by a runtime's application), and exactly as documented.
    #[test]
    fn every_modifier_shapes_the_loss() {
        let none = Modifiers {
            scale: 1.0,
            kl_weight: None,
            free_nats: None,
            kl_balance: None,
        };
        assert_eq!(shaping(&none, 0.25), Shaping::IDENTITY);
        let cases: Vec<(&str, Modifiers, Shaping)> = vec![
            (
                "scale",
                Modifiers {
                    scale: 3.0,
                    ..none.clone()
                },
                Shaping {
                    factor: 3.0,
                    ..Shaping::IDENTITY
                },
            ),
            (
                "kl_weight",
                Modifiers {
                    kl_weight: Some(KlWeight::Fixed(0.25)),
                    ..none.clone()
                },
                Shaping {
                    factor: 0.25,
                    ..Shaping::IDENTITY
                },
            ),
            (
                "free_nats",
                Modifiers {
                    free_nats: Some(FreeNats {
                        nats: 3.0,
                        placement: FreeNatsPlacement::PerStep,
                    }),
                    ..none.clone()
                },
                Shaping {
                    floor: Some(Floor::Row(3.0)),
                    ..Shaping::IDENTITY
                },
            ),
            (
                "kl_balance",
                Modifiers {
                    kl_balance: Some(0.8),
                    ..none.clone()
                },
                Shaping {
                    balance: Some((0.2f64 as f32, 0.8)),
                    ..Shaping::IDENTITY
                },
            ),
        ];
        let keys: Vec<&str> = MODIFIERS.iter().map(|m| m.key).collect();
        assert_eq!(
            keys,
            cases.iter().map(|c| c.0).collect::<Vec<_>>(),
            "a modifier of the list without a case here"
        );
        for (key, m, want) in cases {
            let got = shaping(&m, 0.25);
            assert_eq!(got, want, "{key}");
            assert_ne!(got, Shaping::IDENTITY, "{key} has no effect on the loss");
        }
    }
}
