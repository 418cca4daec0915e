//! `free_nats = n [placement = per_element | after_mean | per_step]`: the KL below `n` nats
//! gives no gradient. `per_element` floors each latent dimension before summing,
//! `after_mean` floors the batch-and-time mean of the summed KL (Dreamer, the default),
//! `per_step` floors each step's KL (PlaNet). Acts on closed-form KL terms only.

use super::{num, ModifierSpec, Modifiers};
use crate::check::env::Ck;
use crate::derive::Compute;
use crate::diag::{Code, Diagnostic};
use crate::ir::{FreeNats, FreeNatsPlacement, Objective, VarOrOpt};
use crate::parse::ast::{ExprKind, SettingAst};

/// This modifier's row of [`super::MODIFIERS`].
pub const SPEC: ModifierSpec = ModifierSpec {
    key: "free_nats",
    parse,
    applies,
    acts_on: "closed-form KL terms only",
    is_set: |o| o.free_nats.is_some(),
    attach,
    display,
};

/// Closed-form KL terms only.
fn applies(c: Compute) -> bool {
    c.is_closed_kl()
}

fn attach(obj: &Objective, _: VarOrOpt, m: &mut Modifiers) {
    m.free_nats = obj.free_nats;
}

fn display(m: &Modifiers) -> Option<String> {
    let f = m.free_nats?;
    Some(format!(
        "free nats {} ({})",
        num(f.nats),
        f.placement.keyword()
    ))
}

/// The floor of each latent dimension's KL (`per_element`), if attached.
pub fn per_element(m: &Modifiers) -> Option<f32> {
    match m.free_nats {
        Some(FreeNats {
            nats,
            placement: FreeNatsPlacement::PerElement,
        }) => Some(nats as f32),
        _ => None,
    }
}

/// The floor of each row's (step's) KL (`per_step`), if attached.
pub fn per_step(m: &Modifiers) -> Option<f32> {
    match m.free_nats {
        Some(FreeNats {
            nats,
            placement: FreeNatsPlacement::PerStep,
        }) => Some(nats as f32),
        _ => None,
    }
}

/// The floor of the mean over rows (`after_mean`), if attached (a data-parallel run decides
/// it on the global batch's mean, see `fused::Engine::settle`).
pub fn after_mean(m: &Modifiers) -> Option<f64> {
    match m.free_nats {
        Some(FreeNats {
            nats,
            placement: FreeNatsPlacement::AfterMean,
        }) => Some(nats),
        _ => None,
    }
}

/// How a KL row's loss gradient is seeded, given the rows' values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seed {
    /// Every row gets this factor.
    All(f32),
    /// Rows above the floor get the factor, the others none.
    Above(f32, f32),
}

/// The seed of a closed-form KL term's rows for `d(loss)/d(row) = scale`, with `mean` the
/// mean of the rows (for `after_mean`). `per_element` acts inside the KL kernel instead.
pub fn seed(m: &Modifiers, scale: f32, mean: f64) -> Seed {
    if let Some(floor) = per_step(m) {
        Seed::Above(scale, floor)
    } else if let Some(FreeNats {
        nats,
        placement: FreeNatsPlacement::AfterMean,
    }) = m.free_nats
    {
        Seed::All(after_mean_gate(scale, nats, mean))
    } else {
        Seed::All(scale)
    }
}

/// `after_mean`'s gradient factor: the KL's mean is clamped at `nats`, so below it the term
/// has no gradient.
pub fn after_mean_gate(scale: f32, nats: f64, mean: f64) -> f32 {
    if mean > nats {
        scale
    } else {
        0.0
    }
}

/// Parse and check the `free_nats` setting into the model's objective (diagnostics on `ck`).
fn parse(ck: &mut Ck, s: &SettingAst) {
    let Some(n) = ck.scalar_eval(&s.value) else {
        return;
    };
    if n < 0.0 {
        ck.bad_setting(
            s,
            "free nats are ≥ 0",
            "e.g. `free_nats = 3.0` (PlaNet) or `1.0` (Dreamer)",
        );
        return;
    }
    // The clamp runs in f32: a larger bound is infinite there (and panicked).
    if n > f64::from(f32::MAX) {
        ck.bad_setting(
            s,
            &format!("{n:e} is beyond the largest f32 ({:e})", f32::MAX),
            "e.g. `free_nats = 3.0` (PlaNet) or `1.0` (Dreamer)",
        );
        return;
    }
    let mut placement = FreeNatsPlacement::AfterMean;
    for o in &s.opts {
        let val = match &o.value.kind {
            ExprKind::Name(id) => FreeNatsPlacement::parse(&id.name),
            _ => None,
        };
        match (o.name.name.as_str(), val) {
            ("placement", Some(p)) => placement = p,
            _ => {
                ck.err(Diagnostic::new(Code::BadSetting, "invalid free-nats placement")
                        .label(o.name.span.to(o.value.span), "expected `placement = per_element | after_mean | per_step`")
                        .help("per_element clamps each latent dimension, after_mean clamps the batch-and-time mean (Dreamer), per_step clamps each step's KL (PlaNet)"));
                return;
            }
        }
    }
    ck.model.objective.free_nats = Some(FreeNats { nats: n, placement });
}
