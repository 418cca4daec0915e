//! The two runtimes under training: every shipped model trained 20 steps on the reference
//! interpreter (dfdx) and on the fused runtime from the same seed, batch and noise must follow
//! the same trajectory — the ELBO and every term at each step, the gradient norm, automatic α,
//! and every parameter after the last step — up to float rounding compounded over 20 Adam
//! steps. One step's gradient agreeing is not enough: SAC's temperature was frozen on the
//! fused runtime (its optimiser skipped a parameter no op reads) while every single-step
//! comparison passed.

mod common;

use common::shipped::{shipped_models, trainer};
use vic::train::{EngineChoice, StepStats, Trainer};

const STEPS: usize = 20;
/// The ELBO, terms, gradient norm and entropy at every step: relative (of values ≥ 1 in size;
/// absolute below). Measured worst on the shipped models: 3e-6 (the RSSMs).
const STEP_TOL: f64 = 2e-5;
/// Each parameter tensor after the last step, relative to how far it moved. Measured worst:
/// 2.3e-4 (an RSSM's prior net, through Adam's per-entry scaling of rounding-level gradients).
const PARAM_TOL: f64 = 1e-3;

fn norm(v: impl Iterator<Item = f32>) -> f64 {
    v.map(|x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1.0)
}

/// The trajectories of `file` on both runtimes; `Err` when the fused runtime does not run it.
fn compare(file: &str) -> Result<(), String> {
    let mut r = trainer(file, EngineChoice::Reference);
    let mut f = trainer(file, EngineChoice::Auto);
    let mut worst = 0.0f64;
    let mut worst_param = 0.0f64;
    for n in 0..STEPS {
        let a: StepStats = r
            .step()
            .unwrap_or_else(|e| panic!("{file}: reference step: {e}"));
        let b: StepStats = f
            .step()
            .unwrap_or_else(|e| panic!("{file}: fused step: {e}"));
        if n == 0 && !f.engine().starts_with("fused") {
            return Err(f.engine());
        }
        let mut pairs = vec![("elbo".to_string(), a.elbo, b.elbo)];
        pairs.push(("grad_norm".into(), a.grad_norm, b.grad_norm));
        for (i, (x, y)) in a.terms.iter().zip(&b.terms).enumerate() {
            pairs.push((format!("term {}", i + 1), *x, *y));
        }
        if let (Some(x), Some(y)) = (a.policy_entropy, b.policy_entropy) {
            pairs.push(("policy entropy".into(), x, y));
        }
        for (what, x, y) in pairs {
            let e = rel(x, y);
            worst = worst.max(e);
            assert!(
                e <= STEP_TOL,
                "{file}: step {}: {what} reference {x} vs fused {y} (relative {e:.2e} > {STEP_TOL:.0e})",
                n + 1
            );
        }
    }
    // Every parameter after the last step, automatic α included: the difference between the
    // two runtimes' displacements from the initial values, relative to the displacement (Adam
    // divides each gradient entry by its own running scale, so an entry whose gradient is
    // float rounding around 0 moves by ±lr either way: compared one by one, such entries
    // would differ by up to 2·lr·steps; in the norm of a tensor they are a small share).
    let init = trainer(file, EngineChoice::Reference);
    for (((name, pr), (_, pf)), (_, p0)) in
        r.store.iter().zip(f.store.iter()).zip(init.store.iter())
    {
        let (vr, vf, v0) = (pr.to_host(), pf.to_host(), p0.to_host());
        let moved = norm(vr.iter().zip(&v0).map(|(a, b)| a - b));
        let apart = norm(vr.iter().zip(&vf).map(|(a, b)| a - b));
        let e = apart / moved.max(1e-12);
        let e = if moved > 0.0 { e } else { apart };
        worst_param = worst_param.max(e);
        assert!(
            e <= PARAM_TOL,
            "{file}: parameter {name} after {STEPS} steps: the runtimes are {apart:.3e} apart, \
             it moved {moved:.3e} (relative {e:.2e} > {PARAM_TOL:.0e})"
        );
        // A parameter that trains on one runtime trains on the other.
        assert_eq!(
            v0 == vr,
            v0 == vf,
            "{file}: parameter {name} moved on one runtime only"
        );
    }
    eprintln!("{file}: worst relative difference over {STEPS} steps {worst:.2e}, parameters {worst_param:.2e}");
    Ok(())
}

/// Every shipped model: both runtimes agree over 20 steps, or the model is one the fused
/// runtime does not run yet, and exactly those (the list shrinks as the runtime grows).
#[test]
fn every_shipped_model_trains_alike_on_both_runtimes() {
    const NOT_FUSED: &[&str] = &[];
    let files = shipped_models();
    let mut fell_back = Vec::new();
    for file in &files {
        if let Err(why) = compare(file) {
            fell_back.push(file.as_str());
            eprintln!("{file}: {why}");
        }
    }
    assert_eq!(
        fell_back, NOT_FUSED,
        "models the fused runtime does not run"
    );
}

/// SAC's automatic temperature trains on the fused runtime too (it was frozen at α = 1
/// there), and its trajectory is the reference's.
#[test]
fn automatic_alpha_trains_on_both_runtimes() {
    let alpha = |t: &Trainer| {
        let (_, p) = (t.store.iter())
            .find(|(n, _)| n.as_str() == vic::lower::ALPHA_PARAM)
            .expect("sac has an automatic α");
        f64::from(p.to_host()[0]).exp()
    };
    let mut r = trainer("sac.vmodel", EngineChoice::Reference);
    let mut f = trainer("sac.vmodel", EngineChoice::Fused);
    for _ in 0..STEPS {
        r.step().expect("reference step");
        f.step().expect("fused step");
    }
    let (ar, af) = (alpha(&r), alpha(&f));
    // Adam moves ln α by about lr = 1e-3 a step while the entropy is off its target.
    assert!((1.0 - ar).abs() > 5.0 * STEPS as f64 * 1e-4, "α = {ar}");
    assert!(rel(ar, af) < 1e-5, "α reference {ar} vs fused {af}");
}
