//! Latent overshooting (PlaNet) against its closed form on a linear-Gaussian model.
//!
//! p: z_1 ~ N(0, 1), z_t = a z_{t−1} + N(0, σp²), x_t = z_t + N(0, 1);  q: z_t ~ N(c x_t, sq²)
//! (q reads only x_t, so its samples at different steps are independent). The d-step
//! open-loop prior of z_t starts from z_{t−d} ~ q, runs p for d − 1 steps, and is
//! N(a y, σp²) with y ~ N(a^{d−1} c x_{t−d}, a^{2(d−1)} sq² + σp² Σ_{j<d−1} a^{2j}); so
//! E KL(q_t ‖ p_d) = ln(σp/sq) + (sq² + (c x_t − a m_y)² + a² v_y)/(2σp²) − ½, summed over
//! t = d+1 … T. The Monte Carlo mean over 4000 copies must agree within 4 standard errors;
//! and with a learned transition coefficient the objective's gradient must agree with central
//! differences of the closed form (the terms train p through the open-loop rollout).

use std::collections::BTreeMap;

use vic::data::{Dataset, RawArray};
use vic::lower::Program;
use vic::runtime::{backward, rng, Dev};
use vic::train::{data_batch, specs_of, TrainConfig, Trainer};

const A: f64 = 0.8;
const SP: f64 = 0.6;
const C: f64 = 0.4;
const SQ: f64 = 0.5;

fn model(d: u32) -> String {
    format!(
        r#"
model os_lg {{
  observed x[t] : real
  latent   z[t] : real
  p {{
    z[1] ~ Normal(0, 1)
    z[t] ~ Normal({A} * z[t-1], {SP})
    x[t] ~ Normal(z[t], 1)
  }}
  q {{
    z[t] ~ Normal({C} * x[t], {SQ})
  }}
  objective {{
    overshooting = {d}
  }}
}}
"#
    )
}

fn program(d: u32) -> Program {
    let m = vic::compile(&model(d), "os_lg.vmodel").expect("compiles");
    Program::new(m.ir(), &m.elbo()).expect("lowers")
}

const XS: [f64; 7] = [0.5, -1.0, 1.5, 0.25, -0.75, 2.0, -0.5];

fn closed_form(d: usize) -> f64 {
    closed_form_at(d, A)
}

/// E Σ_{t>d} KL(q_t ‖ p_d) for transition coefficient `a` (d = 1 is the ELBO's own KL).
fn closed_form_at(d: usize, a: f64) -> f64 {
    let t_len = XS.len();
    let mut total = 0.0;
    for t in d + 1..=t_len {
        let x0 = XS[t - d - 1];
        let my = a.powi(d as i32 - 1) * C * x0;
        let vy = a.powi(2 * (d as i32 - 1)) * SQ * SQ
            + SP * SP * (0..d - 1).map(|j| a.powi(2 * j as i32)).sum::<f64>();
        let mq = C * XS[t - 1];
        total +=
            (SP / SQ).ln() + (SQ * SQ + (mq - a * my).powi(2) + a * a * vy) / (2.0 * SP * SP) - 0.5;
    }
    total
}

fn data(p: &Program) -> Dataset {
    let raw = BTreeMap::from([(
        "x".to_string(),
        RawArray::new(vec![1, XS.len()], XS.iter().map(|x| *x as f32).collect()),
    )]);
    Dataset::from_raw("inline", raw, &specs_of(p), 1).expect("data")
}

#[test]
fn overshooting_terms_match_the_closed_form() {
    let p = program(4);
    let store = p
        .init_params(&Dev::default(), &mut rng::seeded(0))
        .expect("params");
    let d = data(&p);
    let n = 4000;
    let batch = data_batch(&p, &d, &vec![0; n], 1);
    let fwd = p
        .forward::<dfdx::prelude::NoneTape, _>(&store, &batch, &mut rng::seeded(3), 0, 0.0)
        .expect("forward");
    assert_eq!(fwd.overshooting.len(), 3, "d = 2, 3, 4");
    for (i, kl) in fwd.overshooting.iter().enumerate() {
        let dist = i + 2;
        let v: Vec<f64> = kl.as_vec().iter().map(|x| f64::from(*x)).collect();
        let m = v.iter().sum::<f64>() / n as f64;
        let se =
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n as f64 - 1.0) / n as f64).sqrt();
        let want = closed_form(dist);
        eprintln!("d = {dist}: {m:.4} ± {se:.4}, closed form {want:.4}");
        assert!(
            (m - want).abs() < 4.0 * se + 1e-4,
            "d = {dist}: {m} ± {se} vs {want}"
        );
    }
}

#[test]
fn overshooting_trains_on_both_runtimes() {
    for (engine, name) in [
        (vic::train::EngineChoice::Auto, "fused"),
        (vic::train::EngineChoice::Reference, "reference"),
    ] {
        let p = program(3);
        let d = data(&p);
        let cfg = TrainConfig {
            holdout: 0.0,
            batch: 8,
            engine,
            ..TrainConfig::default()
        };
        let mut tr = Trainer::new(p, Some(d), cfg).expect("trainer");
        for _ in 0..20 {
            let s = tr.step().expect("a finite step");
            assert!(s.elbo.is_finite());
        }
        assert!(tr.engine().starts_with(name), "{}", tr.engine());
    }
}

/// The overshooting terms train p: the gradient of the objective with respect to a learned
/// transition coefficient `a` (through the d-step priors, their open-loop samples included)
/// against central differences of the closed-form expected objective
///   −Σ_{t≥2} E KL(q_t ‖ p_1) − (1/D) Σ_{d=2..D} Σ_{t>d} E KL(q_t ‖ p_d)
/// (the likelihood and KL(q_1 ‖ p(z_1)) do not depend on `a`). Without the overshooting
/// terms the gradient would be ∂/∂a of the first sum alone, which the test tells apart.
#[test]
fn overshooting_gradient_matches_the_closed_form() {
    let dmax = 4;
    let src = model(dmax as u32)
        .replace("model os_lg {", "model os_lg {\n  param a : real = 0.8")
        .replace(&format!("Normal({A} * z[t-1]"), "Normal(a * z[t-1]");
    let m = vic::compile(&src, "os_lg_a.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = p
        .init_params(&Dev::default(), &mut rng::seeded(0))
        .expect("params");
    let d = data(&p);
    let objective = |a: f64, with_os: bool| {
        // closed_form_at(1, ·) sums t ≥ 2, as the ELBO's general-case KL does.
        let one = -closed_form_at(1, a);
        let os: f64 = (2..=dmax).map(|k| closed_form_at(k, a)).sum::<f64>() / dmax as f64;
        if with_os {
            one - os
        } else {
            one
        }
    };
    let h = 1e-5;
    let exact = (objective(A + h, true) - objective(A - h, true)) / (2.0 * h);
    let wrong = (objective(A + h, false) - objective(A - h, false)) / (2.0 * h);
    let (n, passes) = (2000, 20);
    let batch = data_batch(&p, &d, &vec![0; n], 1);
    let mut r = rng::seeded(8);
    let g: Vec<f64> = (0..passes)
        .map(|_| {
            let traced = store.trace();
            let fwd = p.forward(&traced, &batch, &mut r, 0, 0.0).expect("forward");
            drop(traced);
            let mut grads = backward(fwd.objective);
            let gm = store.grads(&mut grads);
            f64::from(gm["param.a"][0]) / n as f64
        })
        .collect();
    let mean = g.iter().sum::<f64>() / passes as f64;
    let se =
        (g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (passes - 1) as f64 / passes as f64)
            .sqrt();
    eprintln!(
        "∂obj/∂a = {mean:.4} ± {se:.4}; closed form {exact:.4} (without overshooting {wrong:.4})"
    );
    assert!(
        (mean - exact).abs() < 4.0 * se + 1e-4,
        "{mean} ± {se} vs {exact}"
    );
    assert!(
        (wrong - exact).abs() > 8.0 * se,
        "not precise enough to see the overshooting terms"
    );
}

/// Latent overshooting of a model whose p transition reads a net over time: the open-loop
/// window would scan the window's own sequences, which the fused lowering does not do; the
/// capability table says so and the reference path trains it (no panic, no silent
/// out-of-range read on the fused side).
#[test]
fn overshooting_with_a_net_over_time_trains_on_the_reference_path() {
    let src = r#"
model os_rnn {
  observed x[t] : real
  latent   z[t] : real
  net back = rnn(1 -> 4)
  net head = linear(4 -> 1)
  p {
    z[1] ~ Normal(0, 1)
    z[t] ~ Normal(0.8 * z[t-1] + head(back(x[:t])), 0.6)
    x[t] ~ Normal(z[t], 1)
  }
  q {
    z[t] ~ Normal(0.4 * x[t], 0.5)
  }
  objective {
    overshooting = 2
  }
}
"#;
    let m = vic::compile(src, "os_rnn.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("the reference path runs it");
    let why = vic::fused::caps::support(&p).expect_err("not a fused feature");
    assert!(why.0.contains("overshooting"), "{}", why.0);
    let store = p
        .init_params(&Dev::default(), &mut rng::seeded(0))
        .expect("params");
    assert!(vic::fused::Engine::new(&p, &store, 4, 6, 1).is_err());
    let d = data(&p);
    let cfg = TrainConfig {
        holdout: 0.0,
        batch: 4,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(p, Some(d), cfg).expect("trainer");
    for _ in 0..3 {
        assert!(tr.step().expect("a finite step").elbo.is_finite());
    }
    assert!(tr.engine().starts_with("reference"), "{}", tr.engine());
}
