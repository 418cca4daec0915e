//! Objective modifiers as a list: each modifier of the `objective { … }` block that reshapes
//! ELBO terms (per-term scale, KL weight and annealing, free nats in its three placements, KL
//! balancing) is one file here with, in one place, its parse and check (called by
//! `check::objective` for its key), which term computations it acts on
//! (`applies`), how it is attached to a term ([`attach`]), how it is displayed ([`display`]),
//! and how it is applied: the helpers the reference loss (`lower::terms`) and the fused loss
//! head (`fused::engine`, `fused::build`) both call.
//!
//! The one rule that keeps display and application in agreement: derive attaches a modifier
//! to a term only where `applies` holds, display shows exactly what is attached, and both
//! losses apply exactly what is attached (`tests/modifiers.rs` checks the values).
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

use crate::derive::Compute;
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
