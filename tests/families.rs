//! The families' surface: keyword parameters as torch.distributions names them, `probs =` on
//! a Categorical or Bernoulli (the same model as its logits), and the chain of an HMM written
//! with `probs =` checking clean. The kernels' values are tested against scipy in
//! `src/runtime/tests/{special,families}.rs` and the fused kernels against the reference in
//! `tests/fused.rs` (`special_families_match_reference`).

use vic::lower::{Batch, Program};
use vic::runtime::{rng, Dev};

/// The reference ELBO per sequence of `src` on a batch of `b` rows filled by `fill`.
fn elbo(src: &str, b: usize, t: usize, fill: impl Fn(&vic::ir::Var, usize) -> f32) -> Vec<f32> {
    let m = vic::compile(src, "inline.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = p
        .init_params(&Dev::default(), &mut rng::seeded(11))
        .expect("params");
    let mut data = std::collections::HashMap::new();
    for (v, var) in p.model.vars.iter().enumerate() {
        if var.role != vic::ir::Role::Observed {
            continue;
        }
        let n = if var.timed { t * b } else { b } * var.ty.size();
        data.insert(v, (0..n).map(|i| fill(var, i)).collect());
    }
    let batch = Batch {
        b,
        t,
        data,
        mask: None,
    };
    let traced = store.trace();
    let fwd = p
        .forward(&traced, &batch, &mut rng::seeded(5), 0, 0.0)
        .expect("reference forward");
    fwd.elbo.as_vec()
}

fn same(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(1.0),
            "{what}: {a:?} vs {b:?}"
        );
    }
}

const CAT: &str = r#"
model cat {
  observed x : real[2]
  observed y : binary[3]
  latent   k : onehot[3]
  param ql : real[3] = [0.1, -0.4, 0.3]
  p {
    k ~ Categorical(PRIOR)
    x ~ Normal(dot(k, [0.0, 1.0, 2.0]), 1)
    y ~ Bernoulli(BERN)
  }
  q {
    k ~ Categorical(logits = ql)
  }
}
"#;

#[test]
fn probs_are_the_model_with_their_logits() {
    let fill = |var: &vic::ir::Var, i: usize| {
        if var.name == "y" {
            (i % 2) as f32
        } else {
            (0.37 * i as f32).sin()
        }
    };
    let with = |prior: &str, bern: &str| {
        elbo(
            &CAT.replace("PRIOR", prior).replace("BERN", bern),
            4,
            1,
            fill,
        )
    };
    let probs = with("probs = [0.2, 0.3, 0.5]", "probs = [0.1, 0.5, 0.8]");
    let logits = with(
        "log([0.2, 0.3, 0.5])",
        "logits = log([0.1, 0.5, 0.8]) - log(1 - [0.1, 0.5, 0.8])",
    );
    same(&probs, &logits, "probs = p vs logits = log p");
    // Unnormalised probs are renormalised per group (torch's Categorical(probs)).
    let scaled = with("probs = [2, 3, 5]", "probs = [0.1, 0.5, 0.8]");
    same(&probs, &scaled, "probs renormalised");
}

#[test]
fn keyword_parameters_name_torch_parameters() {
    let src = |prior: &str| {
        format!(
            r#"
model kw {{
  observed x : real[2]
  latent   g : real[2]
  latent   z : real[2]
  param a : real[2] = [0.3, -0.2]
  p {{
    g ~ {prior}
    z ~ Normal(loc = 0, scale = 1)
    x ~ Normal(z + g, scale = 0.5)
  }}
  q {{
    g ~ Gamma(softplus(a) + 1, rate = 2)
    z ~ Normal(a, 1)
  }}
}}
"#
        )
    };
    let fill = |_: &vic::ir::Var, i: usize| (0.37 * i as f32).sin();
    let positional = elbo(&src("Gamma(2, 3)"), 3, 1, fill);
    let named = elbo(&src("Gamma(rate = 3, concentration = 2)"), 3, 1, fill);
    same(&positional, &named, "keywords in any order");
}

/// An HMM's chain written with `probs =` (a transition matrix times the previous one-hot)
/// checks clean.
#[test]
fn an_hmm_chain_with_probs_checks() {
    let src = r#"
model hmm {
  const P = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
  observed y[t] : real
  latent   k[t] : onehot[3]
  p {
    k[1] ~ Categorical(probs = [0.3, 0.3, 0.4])
    k[t] ~ Categorical(probs = P @ k[t-1])
    y[t] ~ Normal(dot(k[t], [0.0, 1.0, 2.0]), 1)
  }
}
"#;
    vic::compile(src, "hmm.vmodel").expect("checks");
}

const TRACK: &str = r#"
model track {
  const A = [[1, 0.1], [0, 1]]
  observed y[t] : real[2]
  latent   x[t] : real[2]
  init x[0] = 0
  param s : real[2] = [0.2, -0.1]
  p {
    x[t] ~ PRIOR
    y[t] ~ Normal(x[t], 0.5)
  }
  q {
    x[t] ~ POST
  }
}
"#;

/// A MultivariateNormal with a diagonal `scale_tril` is the diagonal Normal: the same ELBO
/// (log-density, closed-form KL and sampler; the same noise) as the model written with Normal.
#[test]
fn a_diagonal_multivariate_normal_is_the_normal() {
    let fill = |_: &vic::ir::Var, i: usize| (0.37 * i as f32).sin();
    let with = |prior: &str, post: &str| {
        elbo(
            &TRACK.replace("PRIOR", prior).replace("POST", post),
            3,
            4,
            fill,
        )
    };
    let mvn = with(
        "MultivariateNormal(A @ x[t-1], scale_tril = [[0.3, 0], [0, 0.2]])",
        "MultivariateNormal(A @ x[t-1] + 0.5 * y[t], scale_tril = [[0.4, 0], [0, 0.25]])",
    );
    let normal = with(
        "Normal(A @ x[t-1], [0.3, 0.2])",
        "Normal(A @ x[t-1] + 0.5 * y[t], [0.4, 0.25])",
    );
    same(&mvn, &normal, "diagonal MVN vs Normal");
}

/// Correlated process noise in a tracking model: checks, derives the closed-form MVN KL, runs
/// on the fused runtime (`tests/fused.rs` compares it with the reference).
#[test]
fn correlated_process_noise_runs() {
    let src = TRACK
        .replace(
            "PRIOR",
            "MultivariateNormal(A @ x[t-1], scale_tril = [[0.3, 0], [0.15, 0.2]])",
        )
        .replace(
            "POST",
            "MultivariateNormal(A @ x[t-1] + 0.5 * y[t], scale_tril = Lq)",
        )
        .replace(
            "  param s :",
            "  param Lq : real[2, 2] = [[0.3, 0], [0.1, 0.3]]\n  param s :",
        );
    let m = vic::compile(&src, "track.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    assert!(p
        .elbo
        .terms
        .iter()
        .any(|t| t.compute == vic::derive::Compute::Kl(vic::family::KlForm::MvnMvn)));
    assert!(vic::fused::caps::support(&p).is_ok());
    let fill = |_: &vic::ir::Var, i: usize| (0.37 * i as f32).sin();
    let e = elbo(&src, 3, 4, fill);
    assert!(e.iter().all(|x| x.is_finite()), "{e:?}");
}

/// A `scale_tril` of the wrong shape is refused, naming the matrix it needs.
#[test]
fn scale_tril_of_the_wrong_shape_is_refused() {
    let src = TRACK
        .replace("PRIOR", "MultivariateNormal(0, scale_tril = [0.3, 0.2])")
        .replace("POST", "Normal(0, 1)");
    let Err(err) = vic::compile(&src, "track.vmodel") else {
        panic!("a 2-value scale_tril is refused")
    };
    let text = format!("{err:?}");
    assert!(text.contains("2×2 lower-triangular"), "{text}");
}

/// The worked examples of docs/language.md §9 check.
#[test]
fn the_documented_examples_check() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/language.md"))
        .expect("docs");
    for name in ["robust", "counts", "track"] {
        let i = doc.find(&format!("model {name} {{")).expect("the example");
        let j = i + doc[i..].find("\n```").expect("its end");
        vic::compile(&doc[i..j], &format!("{name}.vmodel"))
            .unwrap_or_else(|e| panic!("docs example `{name}`: {e:?}"));
    }
}

/// Gamma–Poisson conjugacy, trained: q = Gamma(e^a, e^b) on a Poisson rate with a Gamma(2, 1)
/// prior and counts n₁…n₈ reaches the exact posterior Gamma(2 + Σn, 1 + 8) — the implicit
/// reparameterisation gradients of the Gamma sampler, the Gamma KL and the Poisson likelihood
/// together. Tolerance: the posterior mean within 3%, its standard deviation within 10%
/// (Adam's noise around the optimum; the measured errors are well inside).
#[test]
fn gamma_poisson_trains_to_the_conjugate_posterior() {
    use std::collections::BTreeMap;
    use vic::data::{Dataset, RawArray};
    use vic::train::{specs_of, TrainConfig, Trainer};
    let src = r#"
model gp {
  observed n : real[8]
  latent   lam : real
  param a : real = 0
  param b : real = 0
  p {
    lam ~ Gamma(2, 1)
    n ~ Poisson(lam)
  }
  q {
    lam ~ Gamma(exp(a), exp(b))
  }
}
"#;
    let m = vic::compile(src, "gp.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let counts = [3.0f32, 5.0, 2.0, 4.0, 6.0, 3.0, 4.0, 5.0];
    let raw = BTreeMap::from([("n".to_string(), RawArray::new(vec![1, 8], counts.to_vec()))]);
    let d = Dataset::from_raw("inline", raw, &specs_of(&p), 1).expect("data");
    let steps = 6000;
    let mut tr = Trainer::new(
        p,
        Some(d),
        TrainConfig {
            batch: 32,
            lr: 5e-2,
            holdout: 0.0,
            cosine_total: Some(steps),
            seed: 3,
            ..TrainConfig::default()
        },
    )
    .expect("trainer");
    for _ in 0..steps {
        tr.step().expect("step");
    }
    let get = |n: &str| f64::from(tr.store.get(n).expect("param").to_host()[0]);
    let (alpha, beta) = (get("param.a").exp(), get("param.b").exp());
    let (pa, pb) = (2.0 + counts.iter().map(|&x| f64::from(x)).sum::<f64>(), 9.0);
    let (mean, sd) = (alpha / beta, alpha.sqrt() / beta);
    let (pmean, psd) = (pa / pb, pa.sqrt() / pb);
    eprintln!("q = Gamma({alpha:.3}, {beta:.3}): mean {mean:.4} sd {sd:.4}; exact Gamma({pa}, {pb}): mean {pmean:.4} sd {psd:.4}");
    assert!(
        (mean - pmean).abs() < 0.03 * pmean,
        "mean {mean} vs {pmean}"
    );
    assert!((sd - psd).abs() < 0.1 * psd, "sd {sd} vs {psd}");
}

/// Beta–Bernoulli conjugacy, trained: q = Beta(e^a, e^b) on a coin's bias with a Beta(1, 1)
/// prior and `Bernoulli(probs = θ)` flips reaches the exact posterior Beta(1 + heads,
/// 1 + tails) — the Beta sampler's implicit gradients in both parameters, the Beta KL and a
/// `probs =` likelihood of a latent. Tolerances as the Gamma–Poisson test.
#[test]
fn beta_bernoulli_trains_to_the_conjugate_posterior() {
    use std::collections::BTreeMap;
    use vic::data::{Dataset, RawArray};
    use vic::train::{specs_of, TrainConfig, Trainer};
    let src = r#"
model bb {
  observed x : binary[10]
  latent   th : real
  param a : real = 0
  param b : real = 0
  p {
    th ~ Beta(1, 1)
    x ~ Bernoulli(probs = th)
  }
  q {
    th ~ Beta(exp(a), exp(b))
  }
}
"#;
    let m = vic::compile(src, "bb.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let flips = [1.0f32, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0];
    let raw = BTreeMap::from([("x".to_string(), RawArray::new(vec![1, 10], flips.to_vec()))]);
    let d = Dataset::from_raw("inline", raw, &specs_of(&p), 1).expect("data");
    let steps = 6000;
    let mut tr = Trainer::new(
        p,
        Some(d),
        TrainConfig {
            batch: 32,
            lr: 5e-2,
            holdout: 0.0,
            cosine_total: Some(steps),
            seed: 3,
            ..TrainConfig::default()
        },
    )
    .expect("trainer");
    for _ in 0..steps {
        tr.step().expect("step");
    }
    let get = |n: &str| f64::from(tr.store.get(n).expect("param").to_host()[0]);
    let (a, b) = (get("param.a").exp(), get("param.b").exp());
    let (pa, pb) = (8.0, 4.0);
    let sd = |a: f64, b: f64| (a * b / ((a + b).powi(2) * (a + b + 1.0))).sqrt();
    let (mean, pmean) = (a / (a + b), pa / (pa + pb));
    eprintln!(
        "q = Beta({a:.3}, {b:.3}): mean {mean:.4} sd {:.4}; exact Beta(8, 4): mean {pmean:.4} sd {:.4}",
        sd(a, b),
        sd(pa, pb)
    );
    assert!(
        (mean - pmean).abs() < 0.03 * pmean,
        "mean {mean} vs {pmean}"
    );
    assert!(
        (sd(a, b) - sd(pa, pb)).abs() < 0.1 * sd(pa, pb),
        "sd {} vs {}",
        sd(a, b),
        sd(pa, pb)
    );
}

/// Probabilities the model computes as exactly 0 or 1 are read as ε = f32::EPSILON and
/// 1 − ε (torch's `clamp_probs`): a finite log-likelihood, `ln ε` for an observation the model
/// calls impossible, instead of −∞ (and a NaN gradient).
#[test]
fn probs_of_zero_and_one_are_clamped_as_torch() {
    let src = r#"
model edge {
  observed y : binary[3]
  latent   z : real
  param w : real[3] = [0, 1, 0.5]
  p {
    z ~ Normal(0, 1)
    y ~ Bernoulli(probs = clamp(w + 0 * z, 0, 1))
  }
  q {
    z ~ Normal(0, 1)
  }
}
"#;
    // Rows alternate y = [0, 1, 0] and [1, 0, 1].
    let got = elbo(src, 2, 1, |_, i| (i % 2) as f32);
    let eps = f64::from(f32::EPSILON);
    let (sure, never, half) = ((1.0 - eps).ln(), eps.ln(), 0.5f64.ln());
    let want = [sure + sure + half, never + never + half];
    for (g, w) in got.iter().zip(want) {
        assert!(g.is_finite(), "{got:?}");
        assert!((f64::from(*g) - w).abs() < 1e-4, "{got:?} vs {want:?}");
    }
}
