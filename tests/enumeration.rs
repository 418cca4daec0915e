//! Exact enumeration of a small discrete latent: with no other latent the ELBO is a finite
//! sum, so the backend's value and gradient must match an f64 computation of
//! Σ_k q_k [log p(x | k) + log p(k) − log q_k] to float precision.

use std::collections::{BTreeMap, HashMap};
use vic::lower::{Batch, Program};
use vic::runtime::{backward, rng};

const SRC: &str = r#"
model mix {
  observed x : real
  latent   c : onehot[3] via enumerate
  param logits_q : real[3] = [0.2, -0.1, 0.5]
  param mu : real[3] = [-1, 0, 2]
  p {
    c ~ Categorical(zeros(3))
    x ~ Normal(dot(c, mu), 1)
  }
  q {
    c ~ Categorical(logits_q)
  }
}"#;

fn exact(logits: &[f64; 3], mu: &[f64; 3], x: f64) -> f64 {
    let z: f64 = logits.iter().map(|l| l.exp()).sum();
    let q: Vec<f64> = logits.iter().map(|l| l.exp() / z).collect();
    (0..3)
        .map(|k| {
            let loglik = -0.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * (x - mu[k]).powi(2);
            q[k] * (loglik + (1.0f64 / 3.0).ln() - q[k].ln())
        })
        .sum()
}

#[test]
fn enumerated_elbo_and_gradient_match_the_finite_sum() {
    let model = vic::compile(SRC, "mix.vmodel").expect("compiles");
    let prog = Program::new(model.ir(), &model.elbo()).expect("lowers");
    assert_eq!(prog.enumerated().map(|(_, n)| n), Some(3));
    let dev = vic::runtime::Dev::default();
    let mut r = rng::seeded(0);
    let store = prog.init_params(&dev, &mut r).expect("params");
    let x = model.ir().var_id("x").expect("x");
    let xv = 0.7;
    let batch = Batch {
        b: 1,
        t: 1,
        data: HashMap::from([(x, vec![xv as f32])]),
        mask: None,
    };

    let traced = store.trace();
    let f = prog
        .forward(&traced, &batch, &mut r, 0, 0.0)
        .expect("forward");
    let elbo = f.elbo.as_vec()[0] as f64;
    let logits = [0.2, -0.1, 0.5];
    let mu = [-1.0, 0.0, 2.0];
    let want = exact(&logits, &mu, xv);
    assert!(
        (elbo - want).abs() < 1e-5,
        "enumerated ELBO {elbo} vs exact {want}"
    );

    let grads: BTreeMap<String, Vec<f32>> = store.grads(&mut backward(f.objective.negate()));
    // d(−ELBO)/dθ against central differences of the exact sum.
    let h = 1e-6;
    for (name, base, idx) in [
        ("param.logits_q", logits, 0usize),
        ("param.logits_q", logits, 2),
        ("param.mu", mu, 1),
        ("param.mu", mu, 2),
    ] {
        let (mut up, mut dn) = (base, base);
        up[idx] += h;
        dn[idx] -= h;
        let fd = if name.ends_with("logits_q") {
            (exact(&up, &mu, xv) - exact(&dn, &mu, xv)) / (2.0 * h)
        } else {
            (exact(&logits, &up, xv) - exact(&logits, &dn, xv)) / (2.0 * h)
        };
        let ad = -(grads[name][idx] as f64);
        assert!(
            (ad - fd).abs() < 1e-4 * (1.0 + fd.abs()),
            "{name}[{idx}]: autodiff {ad} vs finite differences {fd}"
        );
    }
}

/// A time-indexed latent `via enumerate` whose q is not a first-order chain (here one
/// general case with no `c[t-1]`) is neither a chain the forward algorithm sums out (no q
/// factor: `tests/hmm.rs`) nor one enumerated over q's chain (`tests/qchain.rs`), so the
/// checker refuses it (`E079`, pointing at q's factor) instead of the runtime (it was `E200`
/// at `vic run`).
#[test]
fn enumeration_of_a_sequential_latent_with_q_is_refused_when_checked() {
    let src = r#"
model hmm {
  observed x[t] : real
  latent   c[t] : onehot[2] via enumerate
  param mu : real[2] = [-1, 1]
  p { c[t] ~ Categorical(zeros(2))
      x[t] ~ Normal(dot(c[t], mu), 1) }
  q { c[t] ~ Categorical(zeros(2)) }
}"#;
    let Err(f) = vic::compile(src, "hmm.vmodel") else {
        panic!("enumerating over time with a q factor is refused")
    };
    let codes: Vec<&str> = f.reports.iter().map(|r| r.diag.code.as_str()).collect();
    assert!(codes.iter().all(|c| *c == "vic::E079"), "{codes:?}");
    assert!(
        f.reports.iter().any(|r| r
            .diag
            .message
            .contains("q of `c` must be `c[1] ~ Categorical(…)`")),
        "{f}"
    );
}
