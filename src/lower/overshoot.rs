//! Which latents latent overshooting (PlaNet) targets and which models it cannot run on:
//! what both runtimes' windows (`reference/exec/overshoot.rs`, `fused/build/overshoot.rs`)
//! and the lowering's diagnostics read.

use crate::ir::*;

/// The latents that get overshooting terms and their p general-case factor: time-indexed,
/// Normal in q (a general case, recorded at every step) and in p.
pub fn targets(m: &Model) -> Vec<(VarId, FactorId)> {
    let mut out = Vec::new();
    for (v, var) in m.vars.iter().enumerate() {
        if var.role != Role::Latent || !var.timed {
            continue;
        }
        let general = |block| {
            m.factors_of(v, block)
                .find(|(_, f)| matches!(f.case, TimeCase::From(_)))
                .and_then(|(fi, f)| match &f.body {
                    FactorBody::Sample(d) if d.family == Family::Normal => Some(fi),
                    _ => None,
                })
        };
        if let (Some(_), Some(pf)) = (general(Block::Q), general(Block::P)) {
            out.push((v, pf));
        }
    }
    out
}

/// Why the reference backend cannot run overshooting for this model, if it cannot.
pub fn blocker(m: &Model) -> Option<String> {
    if !m.is_sequential() {
        return Some("the model has no time-indexed latent".into());
    }
    if m.max_lag() > 1 {
        return Some("p reads further back than one step (lag > 1)".into());
    }
    if targets(m).is_empty() {
        return Some(
            "no time-indexed latent is Normal with general cases `x[t]` in both p and q".into(),
        );
    }
    let (_, timed) = super::plan::prior_order(m);
    for cv in &timed {
        if m.vars[cv.var].role == Role::Observed {
            continue;
        }
        if !cv
            .producers
            .iter()
            .any(|(c, _)| matches!(c, TimeCase::From(k) if *k <= 2))
        {
            return Some(format!(
                "p has no general case `{}[t]` from step 2 on for the open-loop rollout",
                m.vars[cv.var].name
            ));
        }
    }
    None
}
