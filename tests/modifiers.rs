//! Objective modifiers against closed forms and gradient identities: IWAE approaches
//! log p(x) as K grows; free nats stop the KL gradient below the threshold; KL balancing
//! leaves the value unchanged and splits the gradient b : (1 − b) between p and q; KL
//! annealing scales the KL gradient by the scheduled weight.

use std::collections::{BTreeMap, HashMap};
use vic::lower::{Batch, Program};
use vic::runtime::{backward, rng};

/// The linear-Gaussian toy with q = N(m, softplus(s)) at m = 0.3, softplus(s) = 1, and a
/// learned prior mean `pm` (0), plus an objective block.
fn toy(objective: &str) -> String {
    format!(
        r#"
model toy {{
  observed x : real
  latent   z : real
  param m  : real = 0.3
  param s  : real = 0.5413248546
  param pm : real = 0
  p {{ z ~ Normal(pm, 1)
      x ~ Normal(z, 1) }}
  q {{ z ~ Normal(m, softplus(s)) }}
  objective {{ {objective} }}
}}"#
    )
}

struct Run {
    elbo: Vec<f32>,
    grads: BTreeMap<String, Vec<f32>>,
}

fn run(objective: &str, b: usize, seed: u64, step: u64) -> Run {
    let model = vic::compile(&toy(objective), "toy.vmodel").expect("compiles");
    let prog = Program::new(model.ir(), &model.elbo()).expect("lowers");
    let dev = vic::runtime::Dev::default();
    let mut r = rng::seeded(seed);
    let store = prog.init_params(&dev, &mut r).expect("params");
    let x = model.ir().var_id("x").expect("x");
    let k = model.ir().objective.iwae as usize;
    let batch = Batch {
        b: b * k,
        t: 1,
        data: HashMap::from([(x, vec![1.0; b * k])]),
        mask: None,
    };
    let traced = store.trace();
    let f = prog
        .forward(&traced, &batch, &mut r, step, 0.0)
        .expect("forward");
    let elbo = f.elbo.as_vec();
    let grads = store.grads(&mut backward(f.objective));
    Run { elbo, grads }
}

fn mean(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

const LOG_PX: f64 = -1.515_512;
const ELBO_Q03: f64 = -1.709; // −½ln 2π − ½(0.7² + 1) − ½·0.3²

#[test]
fn iwae_tightens_towards_log_px() {
    let (e1, s1) = mean(&run("", 20_000, 1, 0).elbo);
    assert!(
        (e1 - ELBO_Q03).abs() < 4.0 * s1 + 1e-3,
        "K = 1: {e1} ± {s1}"
    );
    let (e10, s10) = mean(&run("iwae = 10", 5_000, 2, 0).elbo);
    let (e200, s200) = mean(&run("iwae = 200", 1_000, 3, 0).elbo);
    assert!(
        e10 > e1 + 4.0 * (s1 + s10),
        "IWAE(10) {e10} should beat the ELBO {e1}"
    );
    assert!(
        e200 > e10 + 4.0 * (s10 + s200),
        "IWAE(200) {e200} should beat IWAE(10) {e10}"
    );
    assert!(
        e200 < LOG_PX + 4.0 * s200,
        "IWAE(200) {e200} ± {s200} exceeds log p(x)"
    );
    assert!(
        (e200 - LOG_PX).abs() < 0.01,
        "IWAE(200) {e200} should be within 0.01 of log p(x) {LOG_PX}"
    );
}

#[test]
fn free_nats_above_the_kl_stop_its_gradient() {
    // KL(N(0.3, 1) ‖ N(0, 1)) = 0.045 < 1 nat: with free nats the KL contributes no gradient,
    // so pm's gradient (it appears only in the KL) vanishes, whatever the placement.
    let plain = run("", 64, 5, 0);
    assert!(
        plain.grads["param.pm"][0].abs() > 1.0,
        "without free nats pm has a gradient"
    );
    for placement in ["per_step", "per_element", "after_mean"] {
        let r = run(
            &format!("free_nats = 1.0, placement = {placement}"),
            64,
            5,
            0,
        );
        assert_eq!(
            r.grads["param.pm"][0], 0.0,
            "{placement}: KL gradient below the free nats"
        );
        // The reported ELBO is the bound, unchanged by the modifier.
        assert_eq!(
            r.elbo, plain.elbo,
            "{placement}: the ELBO value is unmodified"
        );
    }
    // Below the KL the threshold is inactive and gradients are those of the plain objective.
    let low = run("free_nats = 0.01, placement = per_step", 64, 5, 0);
    assert_eq!(low.grads["param.pm"], plain.grads["param.pm"]);
}

#[test]
fn kl_balancing_splits_the_gradient_between_prior_and_posterior() {
    let plain = run("", 64, 7, 0);
    let bal = run("kl_balance = 0.8", 64, 7, 0);
    assert_eq!(bal.elbo, plain.elbo, "balancing does not change the value");
    // The prior side gets weight b, the posterior side 1 − b, in the KL's gradient. pm appears
    // only in the KL's prior side.
    let (gp, gb) = (
        plain.grads["param.pm"][0] as f64,
        bal.grads["param.pm"][0] as f64,
    );
    assert!(
        (gb - 0.8 * gp).abs() < 1e-4 * gp.abs().max(1.0),
        "prior side: {gb} vs 0.8·{gp}"
    );
}

#[test]
fn kl_annealing_scales_the_kl_gradient() {
    let plain = run("", 64, 9, 0);
    for (step, w) in [(0u64, 0.0f64), (250, 0.25), (1000, 1.0), (5000, 1.0)] {
        let r = run("kl_weight = anneal(0, 1, steps = 1000)", 64, 9, step);
        let (gp, ga) = (
            plain.grads["param.pm"][0] as f64,
            r.grads["param.pm"][0] as f64,
        );
        assert!(
            (ga - w * gp).abs() < 1e-4 * gp.abs().max(1.0),
            "step {step}: {ga} vs {w}·{gp}"
        );
    }
}

/// The toy with another q or prior: `(p of z, q of z, objective)`.
fn variant(pz: &str, qz: &str, objective: &str) -> String {
    format!(
        r#"
model toy {{
  observed x : real
  latent   z : real
  param m  : real = 0.3
  param s  : real = 0.5413248546
  param pm : real = 0
  p {{ z ~ {pz}
      x ~ Normal(z, 1) }}
  q {{ z ~ {qz} }}
  objective {{ {objective} }}
}}"#
    )
}

/// The KL-like term's modifier column as `vic elbo` displays it, and the parameter gradients
/// of the training objective (same seed and batch).
fn display_and_grads(src: &str) -> (String, String, BTreeMap<String, Vec<f32>>) {
    let model = vic::compile(src, "toy.vmodel").expect("compiles");
    let elbo = model.elbo();
    let term = elbo
        .terms
        .iter()
        .find(|t| t.kind.is_kl_like())
        .expect("a KL-like term");
    let shown = vic::objective::display(&term.modifiers);
    let prog = Program::new(model.ir(), &elbo).expect("lowers");
    let dev = vic::runtime::Dev::default();
    let mut r = rng::seeded(11);
    let store = prog.init_params(&dev, &mut r).expect("params");
    let x = model.ir().var_id("x").expect("x");
    let batch = Batch {
        b: 32,
        t: 1,
        data: HashMap::from([(x, vec![1.0; 32])]),
        mask: None,
    };
    let traced = store.trace();
    let f = prog
        .forward(&traced, &batch, &mut r, 0, 0.0)
        .expect("forward");
    let grads = store.grads(&mut backward(f.objective));
    (term.kind.name().to_string(), shown, grads)
}

/// Display and application agree: a modifier is shown on a KL-like term exactly when it
/// changes that term's training gradient. Free nats and KL balancing act on closed-form KLs
/// only (PlaNet, Dreamer); the KL weight and per-term scales on every KL-like term.
#[test]
fn modifiers_are_displayed_exactly_where_they_are_applied() {
    let kinds = [
        ("Normal(pm, 1)", "Normal(m, softplus(s))", "KL"),
        ("Normal(pm, 1)", "TanhNormal(m, softplus(s))", "log-ratio"),
        ("Flat", "Normal(m, softplus(s))", "entropy"),
        ("Flat", "TanhNormal(m, softplus(s))", "entropy"),
    ];
    // Each KL below is far under 5 nats, so free nats, where applied, zero the KL's gradient.
    let settings = [
        ("free_nats = 5.0", "free nats", Some("KL")),
        (
            "free_nats = 5.0, placement = per_step",
            "free nats",
            Some("KL"),
        ),
        (
            "free_nats = 5.0, placement = per_element",
            "free nats",
            Some("KL"),
        ),
        ("kl_balance = 0.8", "KL balance", Some("KL")),
        ("kl_weight = 0.5", "KL weight", None),
        ("scale z = 2", "× 2", None),
    ];
    for (pz, qz, kind) in kinds {
        let (k0, shown0, plain) = display_and_grads(&variant(pz, qz, ""));
        assert_eq!(k0, kind, "{qz} ‖ {pz}");
        assert_eq!(shown0, "", "{kind}: no modifier without settings");
        for (setting, text, only) in settings {
            let (_, shown, grads) = display_and_grads(&variant(pz, qz, setting));
            let displayed = shown.contains(text);
            let applied = grads.iter().any(|(name, g)| {
                g.iter()
                    .zip(&plain[name])
                    .any(|(a, b)| (a - b).abs() > 1e-6 * (1.0 + b.abs()))
            });
            assert_eq!(
                displayed, applied,
                "{kind} with `{setting}`: displayed {displayed} ({shown:?}), applied {applied}"
            );
            let expected = only.is_none_or(|k| k == kind);
            assert_eq!(applied, expected, "{kind} with `{setting}`");
        }
    }
}
