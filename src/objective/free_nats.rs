//! `free_nats = n [placement = per_element | after_mean | per_step]`: the KL below `n` nats
//! gives no gradient. `per_element` floors each latent dimension before summing,
//! `after_mean` floors the batch-and-time mean of the summed KL (Dreamer, the default),
//! `per_step` floors each step's KL (PlaNet). Acts on closed-form KL terms only.

use super::{num, Floor, ModifierSpec, Modifiers, Shaping};
use crate::check::env::Ck;
use crate::diag::{Code, Diagnostic};
use crate::forms::Compute;
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
    shape,
};

fn shape(m: &Modifiers, _: f32, s: &mut Shaping) {
    s.floor = m.free_nats.map(|f| match f.placement {
        FreeNatsPlacement::PerElement => Floor::Element(f.nats as f32),
        FreeNatsPlacement::PerStep => Floor::Row(f.nats as f32),
        FreeNatsPlacement::AfterMean => Floor::Mean(f.nats),
    });
}

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
