//! Training against closed forms: the linear-Gaussian toy (ELBO and posterior in closed form),
//! the linear-Gaussian SSM (Kalman log-likelihood), gradient estimators against exact
//! gradients (score function, straight-through, reparameterised), the digits VAE, and
//! maximum-entropy LQR against the exact optimal stationary gain of its finite horizon.
//!
//! Everything is seeded; every tolerance is stated next to its assertion. Run with
//! `cargo test --test training -- --nocapture` to see the measured numbers.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use vic::data::{Dataset, RawArray};
use vic::lower::Program;
use vic::runtime::nets::params::ParamStore;
use vic::runtime::{backward, rng, Dev};
use vic::train::{data_batch, specs_of, EvalReport, TrainConfig, Trainer};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn program_of(src: &str, name: &str) -> Program {
    let m = vic::compile(src, name).unwrap_or_else(|e| panic!("{name} does not compile: {e:?}"));
    Program::new(m.ir(), &m.elbo()).unwrap_or_else(|e| panic!("{name} does not lower: {e:?}"))
}

fn program(file: &str) -> Program {
    let path = models_dir().join(file);
    let src = std::fs::read_to_string(&path).expect("model file is readable");
    program_of(&src, file)
}

/// One data set of one array `name` with `shape` (the leading axis is N).
fn dataset(p: &Program, name: &str, shape: Vec<usize>, data: Vec<f32>) -> Dataset {
    let raw = BTreeMap::from([(name.to_string(), RawArray::new(shape, data))]);
    Dataset::from_raw("inline", raw, &specs_of(p), 1).expect("valid inline data")
}

fn param(tr: &Trainer, name: &str) -> Vec<f64> {
    tr.store
        .get(name)
        .unwrap_or_else(|_| panic!("no parameter `{name}`"))
        .to_host()
        .iter()
        .map(|x| f64::from(*x))
        .collect()
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn log_normal(x: f64, mean: f64, var: f64) -> f64 {
    -0.5 * (2.0 * PI * var).ln() - 0.5 * (x - mean).powi(2) / var
}

/// Mean and standard error of the mean.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

fn timed<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let t0 = std::time::Instant::now();
    let r = f();
    eprintln!("[{what}: {:.1} s]", t0.elapsed().as_secs_f64());
    r
}

// ---------------------------------------------------------------------------------------
// 1. Linear-Gaussian toy: p(z) = N(0, 1), p(x | z) = N(z, 1), x = 1.
// ---------------------------------------------------------------------------------------

/// Exact ELBO of q = N(m, σ²) at x = 1:
/// E_q[log N(1; z, 1)] − KL(N(m, σ²) ‖ N(0, 1)).
fn lg_toy_elbo(m: f64, sigma: f64) -> f64 {
    let v = sigma * sigma;
    let loglik = -0.5 * (2.0 * PI).ln() - 0.5 * ((1.0 - m).powi(2) + v);
    let kl = 0.5 * (v + m * m - 1.0 - v.ln());
    loglik - kl
}

fn lg_toy_trainer(cfg: TrainConfig) -> Trainer {
    let p = program("lg_toy.vmodel");
    let d = dataset(&p, "x", vec![1], vec![1.0]);
    Trainer::new(p, Some(d), cfg).expect("trainer")
}

#[test]
fn lg_toy_initial_elbo_matches_closed_form() {
    let exact = lg_toy_elbo(0.3, 1.0);
    // The design brief's number, and the gap KL(q ‖ p(z | x)) = log p(x) − ELBO.
    let log_px = -0.5 * (4.0 * PI).ln() - 0.25;
    assert!((exact - (-1.708939)).abs() < 1e-6, "closed form {exact}");
    assert!(
        (log_px - exact - 0.193427).abs() < 1e-6,
        "gap {}",
        log_px - exact
    );
    let tr = lg_toy_trainer(TrainConfig {
        holdout: 0.0,
        ..TrainConfig::default()
    });
    let r = timed("eval 50k draws", || tr.evaluate(None, 50_000, 7).unwrap());
    eprintln!(
        "lg_toy at init: ELBO {:.5} ± {:.5} (exact {exact:.6})",
        r.elbo, r.stderr
    );
    // The estimate must be informative enough to fail: stderr < 0.01.
    assert!(r.stderr < 0.01 && r.stderr > 0.0, "stderr {}", r.stderr);
    assert!(
        (r.elbo - exact).abs() < 4.0 * r.stderr,
        "ELBO {} ± {} vs exact {exact}",
        r.elbo,
        r.stderr
    );
    // The analytic KL term is exact: KL(N(0.3, 1) ‖ N(0, 1)) = 0.045, stderr 0.
    let kl = r.terms.iter().find(|t| t.kind == "KL").expect("a KL term");
    assert!((kl.mean - 0.045).abs() < 1e-5, "KL {}", kl.mean);
}

#[test]
fn lg_toy_trains_to_the_exact_posterior() {
    let steps = 1500;
    let mut tr = lg_toy_trainer(TrainConfig {
        batch: 64,
        lr: 1e-2,
        holdout: 0.0,
        cosine_total: Some(steps),
        seed: 3,
        ..TrainConfig::default()
    });
    timed("lg_toy 1500 steps", || {
        for _ in 0..steps {
            tr.step().unwrap();
        }
    });
    let m = param(&tr, "param.m")[0];
    let s = param(&tr, "param.s")[0];
    let var = softplus(s).powi(2);
    let r = tr.evaluate(None, 100_000, 11).unwrap();
    let log_px = -0.5 * (4.0 * PI).ln() - 0.25;
    eprintln!(
        "lg_toy trained: q = N({m:.4}, {var:.4}); ELBO {:.5} ± {:.5}; log p(x) = {log_px:.6}; closed-form ELBO at q {:.6}",
        r.elbo,
        r.stderr,
        lg_toy_elbo(m, softplus(s))
    );
    assert!((m - 0.5).abs() < 0.02, "q mean {m}");
    assert!((var - 0.5).abs() < 0.03, "q variance {var}");
    assert!(
        (r.elbo - (-1.5155)).abs() < 0.01,
        "ELBO {} ± {}",
        r.elbo,
        r.stderr
    );
    // And the closed form at the learned q is within 1e-3 of log p(x) (the bound is tight).
    assert!(log_px - lg_toy_elbo(m, softplus(s)) < 1e-3);
}

// ---------------------------------------------------------------------------------------
// 2. Linear-Gaussian SSM: z₁ ~ N(0,1), z_{t+1} = 0.5 z_t + N(0,1), x_t = z_t + N(0,1).
// ---------------------------------------------------------------------------------------

const LGSSM_X: [f64; 3] = [1.0, -0.5, 0.3];
const LGSSM_LOG_PX: f64 = -4.273957;

/// Exact log p(x_{1:T}) by the Kalman filter (prediction-error decomposition), in f64.
fn kalman_log_px(xs: &[f64]) -> f64 {
    let (mut m, mut p) = (0.0, 1.0); // predictive mean / variance of z_t
    let mut ll = 0.0;
    for &x in xs {
        let s = p + 1.0; // predictive variance of x_t
        ll += log_normal(x, m, s);
        let k = p / s;
        m += k * (x - m);
        p *= 1.0 - k;
        // predict z_{t+1} = 0.5 z_t + N(0, 1)
        m *= 0.5;
        p = 0.25 * p + 1.0;
    }
    ll
}

#[test]
fn kalman_reference_value() {
    let ll = kalman_log_px(&LGSSM_X);
    eprintln!("Kalman log p(x) = {ll:.7}");
    assert!((ll - LGSSM_LOG_PX).abs() < 1e-5, "{ll}");
}

/// The exact ELBO of a linear-Gaussian chain posterior for the LGSSM:
/// q: z_t = a_t z_{t−1} + m_t + σ_t ε_t, z_0 = 0. z is Gaussian with means
/// μ_t = a_t μ_{t−1} + m_t, variances V_t = a_t² V_{t−1} + σ_t², Cov(z_t, z_{t−1}) = a_t V_{t−1};
/// ELBO = E_q[log p(x, z)] + Σ_t ½ ln(2πe σ_t²).
fn lgssm_chain_elbo(xs: &[f64], a: &[f64], m: &[f64], sigma: &[f64]) -> f64 {
    let l2pi = (2.0 * PI).ln();
    let (mut mu_prev, mut v_prev) = (0.0, 0.0);
    let mut total = 0.0;
    for (t, &x) in xs.iter().enumerate() {
        let mu = a[t] * mu_prev + m[t];
        let v = a[t] * a[t] * v_prev + sigma[t] * sigma[t];
        let cov = a[t] * v_prev;
        // log p(z_t | z_{t−1}): N(0, 1) at t = 1, N(0.5 z_{t−1}, 1) after
        let e2 = if t == 0 {
            mu * mu + v
        } else {
            (mu - 0.5 * mu_prev).powi(2) + v - cov + 0.25 * v_prev
        };
        total += -0.5 * l2pi - 0.5 * e2;
        // log p(x_t | z_t) = log N(x_t; z_t, 1)
        total += -0.5 * l2pi - 0.5 * ((x - mu).powi(2) + v);
        // entropy of q(z_t | z_{t−1})
        total += 0.5 * (l2pi + 1.0 + (sigma[t] * sigma[t]).ln());
        mu_prev = mu;
        v_prev = v;
    }
    total
}

/// lgssm_filter's family: a_t = a (a_1 irrelevant, z_0 = 0), m_t = b x_t + c, σ_t = σ.
fn lgssm_filter_elbo(xs: &[f64], a: f64, b: f64, c: f64, sigma: f64) -> f64 {
    let m: Vec<f64> = xs.iter().map(|x| b * x + c).collect();
    lgssm_chain_elbo(xs, &[a; 3], &m, &[sigma; 3])
}

/// The closed-form ELBO at a trainer's current parameters (lgssm_smooth or lgssm_filter).
fn lgssm_elbo_at(tr: &Trainer) -> f64 {
    let g = |n: &str| param(tr, &format!("param.{n}"))[0];
    if tr.program.model.name == "lgssm_filter" {
        lgssm_filter_elbo(&LGSSM_X, g("a"), g("b"), g("c"), softplus(g("s")))
    } else {
        lgssm_chain_elbo(
            &LGSSM_X,
            &[0.0, g("a2"), g("a3")],
            &[g("m1"), g("b2"), g("b3")],
            &[softplus(g("s1")), softplus(g("s2")), softplus(g("s3"))],
        )
    }
}

fn lgssm_trainer(file: &str, steps: u64, seed: u64) -> Trainer {
    let p = program(file);
    let d = dataset(
        &p,
        "x",
        vec![1, 3],
        LGSSM_X.iter().map(|x| *x as f32).collect(),
    );
    Trainer::new(
        p,
        Some(d),
        TrainConfig {
            batch: 64,
            lr: 1e-2,
            holdout: 0.0,
            cosine_total: Some(steps),
            seed,
            ..TrainConfig::default()
        },
    )
    .expect("trainer")
}

/// Trains, checking at every `every` steps that the ELBO estimate is not above log p(x)
/// by more than 3 standard errors. Returns the final evaluation.
fn train_lgssm_checked(file: &str, steps: u64, every: u64, exact: f64) -> (EvalReport, f64) {
    let mut tr = lgssm_trainer(file, steps, 5);
    let mut seen = Vec::new();
    while tr.step < steps {
        tr.step().unwrap();
        if tr.step.is_multiple_of(every) || tr.step == 1 {
            let r = tr.evaluate(None, 4000, 100 + tr.step).unwrap();
            seen.push((tr.step, r.elbo, r.stderr));
            assert!(
                r.elbo <= exact + 3.0 * r.stderr,
                "{file} step {}: ELBO {} ± {} exceeds log p(x) = {exact}",
                tr.step,
                r.elbo,
                r.stderr
            );
        }
    }
    let r = tr.evaluate(None, 100_000, 99).unwrap();
    let cf = lgssm_elbo_at(&tr);
    // vic's estimate agrees with the closed form at the learned parameters.
    assert!(
        (r.elbo - cf).abs() < 4.0 * r.stderr,
        "{file}: estimate {} ± {} vs closed form {cf}",
        r.elbo,
        r.stderr
    );
    eprintln!("{file}: checkpoints (step, ELBO, stderr) {seen:.4?}");
    eprintln!(
        "{file}: final ELBO {:.5} ± {:.5}; log p(x) = {exact:.6}",
        r.elbo, r.stderr
    );
    eprintln!("{file}: closed-form ELBO at the learned parameters {cf:.5}");
    (r, cf)
}

#[test]
fn lgssm_smoothing_posterior_reaches_log_px() {
    let exact = kalman_log_px(&LGSSM_X);
    let (r, cf) = timed("lgssm_smooth", || {
        train_lgssm_checked("lgssm_smooth.vmodel", 8000, 1000, exact)
    });
    // The estimate is within 0.02 of log p(x) ...
    assert!(
        (r.elbo - exact).abs() < 0.02,
        "ELBO {} ± {}",
        r.elbo,
        r.stderr
    );
    // ... and, without Monte Carlo error, the learned q is the exact posterior: the closed-form
    // ELBO at the learned parameters is within 0.002 of log p(x) (the family contains p(z | x)).
    assert!(
        exact - cf < 0.002,
        "closed-form ELBO at learned q {cf} vs {exact}"
    );
}

#[test]
fn lgssm_filtering_posterior_stays_below_log_px() {
    let exact = kalman_log_px(&LGSSM_X);
    // Sanity of the closed form: vic's estimate at the initial parameters (a = b = c = 0, σ = 1).
    let init = lgssm_filter_elbo(&LGSSM_X, 0.0, 0.0, 0.0, 1.0);
    let r0 = lgssm_trainer("lgssm_filter.vmodel", 1, 0)
        .evaluate(None, 100_000, 3)
        .unwrap();
    assert!(
        (r0.elbo - init).abs() < 4.0 * r0.stderr,
        "closed form at init {init} vs {} ± {}",
        r0.elbo,
        r0.stderr
    );
    // The best the filtering family can do (closed form, maximised in f64) is strictly below
    // log p(x): measured gap 0.00093 nats, asserted > 0.0005. (Too small for a Monte Carlo
    // estimate to resolve at 3 standard errors without ~10⁷ draws, hence the closed form.)
    let best = maximize(
        |p: &[f64; 4]| lgssm_filter_elbo(&LGSSM_X, p[0], p[1], p[2], p[3].exp()),
        [0.0; 4],
        20_000,
    );
    let best_elbo = lgssm_filter_elbo(&LGSSM_X, best[0], best[1], best[2], best[3].exp());
    eprintln!(
        "lgssm_filter: closed form at init {init:.5} (vic {:.5} ± {:.5}); best filter ELBO {best_elbo:.5} at (a, b, c, σ) = ({:.4}, {:.4}, {:.4}, {:.4}); gap to log p(x) {:.5}",
        r0.elbo,
        r0.stderr,
        best[0],
        best[1],
        best[2],
        best[3].exp(),
        exact - best_elbo
    );
    assert!(
        exact - best_elbo > 0.0005,
        "the family's optimum {best_elbo} is not below {exact}"
    );
    let (r, cf) = timed("lgssm_filter", || {
        train_lgssm_checked("lgssm_filter.vmodel", 8000, 1000, exact)
    });
    // Trained: at or below the family's optimum (so strictly below log p(x)) ...
    assert!(
        cf <= best_elbo + 1e-6 && cf < exact,
        "closed form at learned q {cf}"
    );
    // ... and the estimate never significantly above it.
    assert!(
        r.elbo < best_elbo + 3.0 * r.stderr,
        "{} ± {}",
        r.elbo,
        r.stderr
    );
    // Training reaches the family's optimum: within 0.002 nats, without Monte Carlo error.
    assert!(
        best_elbo - cf < 0.002,
        "closed-form ELBO at learned q {cf} vs the family's best {best_elbo}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Gradient estimators against exact gradients.
// ---------------------------------------------------------------------------------------

/// The gradient of the training objective (summed over the batch) w.r.t. every parameter,
/// divided by the batch size, for `passes` independent forward passes. As `Trainer::step`
/// computes it.
fn grad_draws(
    p: &Program,
    store: &ParamStore,
    d: &Dataset,
    batch: usize,
    passes: usize,
    baseline: f32,
    seed: u64,
) -> Vec<BTreeMap<String, Vec<f64>>> {
    let b = data_batch(p, d, &vec![0; batch], 1);
    let mut r = rng::seeded(seed);
    (0..passes)
        .map(|_| {
            let traced = store.trace();
            let fwd = p.forward(&traced, &b, &mut r, 0, baseline).unwrap();
            drop(traced);
            let mut grads = backward(fwd.objective);
            store
                .grads(&mut grads)
                .into_iter()
                .map(|(k, g)| (k, g.iter().map(|x| f64::from(*x) / batch as f64).collect()))
                .collect()
        })
        .collect()
}

fn fresh_store(p: &Program) -> ParamStore {
    p.init_params(&Dev::default(), &mut rng::seeded(0)).unwrap()
}

/// Asserts that the Monte Carlo mean of `draws[name][i]` equals `exact[i]` within 4 standard
/// errors, and that the estimate is precise enough to tell `exact` from `wrong` (if given).
fn assert_grad(
    what: &str,
    draws: &[BTreeMap<String, Vec<f64>>],
    name: &str,
    exact: &[f64],
    wrong: Option<&[f64]>,
) {
    let stats: Vec<(f64, f64)> = (0..exact.len())
        .map(|i| {
            let v: Vec<f64> = draws.iter().map(|g| g[name][i]).collect();
            let (m, se) = mean_se(&v);
            eprintln!(
                "{what}: ∂/∂{name}[{i}] = {m:.5} ± {se:.5} (expected {:.5})",
                exact[i]
            );
            (m, se)
        })
        .collect();
    for (i, e) in exact.iter().enumerate() {
        let (m, se) = stats[i];
        assert!(
            (m - e).abs() < 4.0 * se + 1e-6,
            "{what} {name}[{i}]: {m} ± {se} vs {e}"
        );
        if let Some(w) = wrong {
            assert!(
                (w[i] - e).abs() > 8.0 * se,
                "{what}: not precise enough to tell {e} from {}",
                w[i]
            );
        }
    }
}

/// Bernoulli latent, score function: q(k) = Bernoulli(σ(l)), p(k) = Bernoulli(½),
/// p(x | k) = N(3k − 1, 1), x = 1. By enumeration,
/// ELBO(l) = Σ_k q(k)[log p(x | k) + log p(k) − log q(k)], and
/// dELBO/dl = σ(1−σ)·(A₁ − A₀ − l) with A_k = log p(x | k) + log p(k).
#[test]
fn score_function_gradient_matches_enumeration() {
    let src = r#"
model sf_toy {
  observed x : real
  latent   k : binary via score_function
  param l : real = 0.3
  p {
    k ~ Bernoulli(0)
    x ~ Normal(3 * k - 1, 1)
  }
  q {
    k ~ Bernoulli(l)
  }
}"#;
    let p = program_of(src, "sf_toy.vmodel");
    let d = dataset(&p, "x", vec![1], vec![1.0]);
    let store = fresh_store(&p);
    let l = 0.3f64;
    let s = sigmoid(l);
    let a = |k: f64| log_normal(1.0, 3.0 * k - 1.0, 1.0) + 0.5f64.ln();
    let elbo = s * a(1.0) + (1.0 - s) * a(0.0) - s * s.ln() - (1.0 - s) * (1.0 - s).ln();
    let exact = s * (1.0 - s) * (a(1.0) - a(0.0) - l);
    // Without the score-function term only the analytic KL would carry a gradient:
    // d(−KL)/dl = −σ(1−σ)·l = E_q-gradient of the entropy and prior parts alone.
    let without_sf = -s * (1.0 - s) * l;
    let draws = timed("score function grads", || {
        grad_draws(&p, &store, &d, 4096, 40, elbo as f32, 1)
    });
    assert_grad(
        "score function",
        &draws,
        "param.l",
        &[exact],
        Some(&[without_sf]),
    );
}

/// Categorical latent, straight-through: q(c) = Categorical(softmax(l)), p(c) uniform over 3,
/// p(x | c) = N(w·c, 1), x = 1. Straight-through is biased; its expectation is
/// E_q[∂f/∂c](c)ᵀ J with f(c) = log N(x; w·c, 1), J = diag(π) − ππᵀ, plus the exact gradient
/// of the analytic −KL(q ‖ uniform) = −Σ π log π − log 3. We check the estimator against that
/// expectation (by enumeration) and that it differs from the exact gradient.
#[test]
fn straight_through_gradient_matches_its_expectation() {
    let src = r#"
model st_toy {
  observed x : real
  latent   c : onehot[3] via straight_through
  const w = [-1, 0.5, 2]
  param l : real[3] = [0.2, -0.1, 0.4]
  p {
    c ~ Categorical(zeros(3))
    x ~ Normal(dot(w, c), 1)
  }
  q {
    c ~ Categorical(l)
  }
}"#;
    let p = program_of(src, "st_toy.vmodel");
    let d = dataset(&p, "x", vec![1], vec![1.0]);
    let store = fresh_store(&p);
    let (x, w, l) = (1.0f64, [-1.0, 0.5, 2.0], [0.2f64, -0.1, 0.4]);
    let z: f64 = l.iter().map(|v| v.exp()).sum();
    let pi: Vec<f64> = l.iter().map(|v| v.exp() / z).collect();
    let jac = |i: usize, j: usize| pi[i] * (f64::from(u8::from(i == j)) - pi[j]); // ∂π_i/∂l_j
                                                                                  // d(−KL)/dl_j = −Σ_i (log π_i + 1) ∂π_i/∂l_j
    let dkl: Vec<f64> = (0..3)
        .map(|j| -(0..3).map(|i| (pi[i].ln() + 1.0) * jac(i, j)).sum::<f64>())
        .collect();
    let f = |k: usize| log_normal(x, w[k], 1.0);
    // Straight-through expectation: Σ_k π_k Σ_i (∂f/∂c_i at e_k) ∂π_i/∂l_j, ∂f/∂c_i = (x − w·c) w_i.
    let st: Vec<f64> = (0..3)
        .map(|j| {
            (0..3)
                .map(|k| pi[k] * (0..3).map(|i| (x - w[k]) * w[i] * jac(i, j)).sum::<f64>())
                .sum::<f64>()
                + dkl[j]
        })
        .collect();
    // The exact gradient: Σ_k f(e_k) ∂π_k/∂l_j + d(−KL)/dl_j.
    let exact: Vec<f64> = (0..3)
        .map(|j| (0..3).map(|k| f(k) * jac(k, j)).sum::<f64>() + dkl[j])
        .collect();
    eprintln!("straight-through expectation {st:.5?}, exact gradient {exact:.5?}");
    let draws = timed("straight-through grads", || {
        grad_draws(&p, &store, &d, 4096, 20, 0.0, 2)
    });
    assert_grad("straight-through", &draws, "param.l", &st, None);
    // The bias is real and the estimate resolves it (on the largest component).
    let v: Vec<f64> = draws.iter().map(|g| g["param.l"][2]).collect();
    let (m, se) = mean_se(&v);
    assert!(
        (m - exact[2]).abs() > 8.0 * se,
        "{m} ± {se} vs exact {}",
        exact[2]
    );
}

/// Normal latent, reparameterised: the lg_toy gradient w.r.t. (m, s) against central finite
/// differences of the closed-form ELBO.
#[test]
fn reparam_gradient_matches_finite_differences() {
    let p = program("lg_toy.vmodel");
    let d = dataset(&p, "x", vec![1], vec![1.0]);
    let store = fresh_store(&p);
    let (m, s) = (0.3f64, 0.5413248546f64);
    let h = 1e-5;
    let e = |m: f64, s: f64| lg_toy_elbo(m, softplus(s));
    let dm = (e(m + h, s) - e(m - h, s)) / (2.0 * h);
    let ds = (e(m, s + h) - e(m, s - h)) / (2.0 * h);
    // Hand check of the finite differences: dELBO/dm = (1 − m) − m = 0.4;
    // dELBO/ds = (−σ − σ + 1/σ)·σ'(s) = −σ(1 − e^{−1}) = −0.632121 at σ = 1.
    assert!((dm - 0.4).abs() < 1e-6 && (ds + 0.632_120_6).abs() < 1e-6);
    let draws = timed("reparam grads", || {
        grad_draws(&p, &store, &d, 4096, 20, 0.0, 3)
    });
    assert_grad("reparam", &draws, "param.m", &[dm], Some(&[0.0]));
    assert_grad("reparam", &draws, "param.s", &[ds], Some(&[0.0]));
}

// ---------------------------------------------------------------------------------------
// 4. The digits VAE trains.
// ---------------------------------------------------------------------------------------

#[test]
fn vae_digits_improves_heldout_elbo() {
    let p = program("vae_digits.vmodel");
    let d = vic::data::load(models_dir().join("data/digits.npz"), &specs_of(&p), 1).unwrap();
    let steps = 300;
    let mut tr = Trainer::new(
        p,
        Some(d),
        TrainConfig {
            batch: 128,
            lr: 1e-3,
            holdout: 0.1,
            seed: 0,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let before = tr.evaluate(None, 1, 0).unwrap();
    timed("vae 300 steps", || {
        for _ in 0..steps {
            tr.step().unwrap();
        }
    });
    let after = tr.evaluate(None, 1, 0).unwrap();
    eprintln!(
        "vae_digits held-out ELBO per image: {:.2} ± {:.2} at init → {:.2} ± {:.2} after {steps} steps (n = {})",
        before.elbo, before.stderr, after.elbo, after.stderr, after.n
    );
    // Measured (seed 0, 180 held-out images, one draw each): −44.26 ± 0.06 → −25.81 ± 0.26.
    // Required: at least 15 nats better, and past −30.
    assert!(
        after.elbo > before.elbo + 15.0 && after.elbo > -30.0,
        "{} → {}",
        before.elbo,
        after.elbo
    );
    assert!(after.elbo.is_finite() && after.elbo < 0.0);
}

// ---------------------------------------------------------------------------------------
// 5. Maximum-entropy LQR.
// ---------------------------------------------------------------------------------------

type M2 = [[f64; 2]; 2];

/// The exact per-rollout ELBO of lqr.vmodel for the stationary policy u = K x + σ ε over
/// `horizon` steps: Σ_t −½ E[xᵀQx + uᵀRu] + T·H(N(0, σ²)), with Q = I, R = 1 and
/// Σ_{t+1} = (A + BK) Σ_t (A + BK)ᵀ + σ² BBᵀ + 0.01² I, Σ_1 = x0 x0ᵀ + 0.5² I.
fn lqr_objective(k: [f64; 2], sigma: f64, horizon: usize) -> f64 {
    let a: M2 = [[1.0, 0.5], [0.0, 1.0]];
    let b = [0.125, 0.5];
    let c: M2 = [
        [a[0][0] + b[0] * k[0], a[0][1] + b[0] * k[1]],
        [a[1][0] + b[1] * k[0], a[1][1] + b[1] * k[1]],
    ];
    let mut s: M2 = [[1.0 + 0.25, 0.0], [0.0, 0.25]];
    let mut total = 0.0;
    for _ in 0..horizon {
        let ksk =
            k[0] * (k[0] * s[0][0] + k[1] * s[1][0]) + k[1] * (k[0] * s[0][1] + k[1] * s[1][1]);
        total += -0.5 * (s[0][0] + s[1][1] + ksk + sigma * sigma);
        total += 0.5 * (2.0 * PI * std::f64::consts::E * sigma * sigma).ln();
        let mut n: M2 = [[0.0; 2]; 2];
        for i in 0..2 {
            for j in 0..2 {
                let mut v = 0.0;
                for p in 0..2 {
                    for q in 0..2 {
                        v += c[i][p] * s[p][q] * c[j][q];
                    }
                }
                n[i][j] = v + sigma * sigma * b[i] * b[j] + if i == j { 1e-4 } else { 0.0 };
            }
        }
        s = n;
    }
    total
}

/// Maximises `f` by gradient ascent with central differences and an adaptive step.
fn maximize<const N: usize>(
    f: impl Fn(&[f64; N]) -> f64,
    mut x: [f64; N],
    iters: usize,
) -> [f64; N] {
    let h = 1e-6;
    let mut lr = 0.01;
    let mut fx = f(&x);
    for _ in 0..iters {
        let mut g = [0.0; N];
        for i in 0..N {
            let (mut a, mut b) = (x, x);
            a[i] += h;
            b[i] -= h;
            g[i] = (f(&a) - f(&b)) / (2.0 * h);
        }
        let mut y = x;
        for i in 0..N {
            y[i] += lr * g[i];
        }
        let fy = f(&y);
        if fy >= fx {
            x = y;
            fx = fy;
            lr *= 1.1;
        } else {
            lr *= 0.5;
        }
    }
    x
}

/// The optimal stationary max-ent policy (K, σ) for lqr.vmodel over `horizon` steps.
fn lqr_optimum(horizon: usize) -> ([f64; 2], f64) {
    let x = maximize(
        |x: &[f64; 3]| lqr_objective([x[0], x[1]], x[2].exp(), horizon),
        [0.0; 3],
        20_000,
    );
    ([x[0], x[1]], x[2].exp())
}

#[test]
fn lqr_learns_the_optimal_finite_horizon_gain() {
    let p = program("lqr.vmodel");
    let horizon = 20;
    let steps: u64 = 2000;
    let lr = 5e-2;
    let mut tr = Trainer::new(
        p,
        None,
        TrainConfig {
            batch: 256,
            lr,
            cosine_total: Some(steps),
            seed: 0,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    assert_eq!(tr.horizon(), horizon);
    let kinds: Vec<&str> = tr
        .program
        .elbo
        .terms
        .iter()
        .map(|t| t.kind.name())
        .collect();
    let before = tr.evaluate(None, 8, 1).unwrap();
    timed("lqr training", || {
        for _ in 0..steps {
            let s = tr.step().unwrap();
            assert!(s.elbo.is_finite() && s.grad_norm.is_finite());
        }
    });
    let after = tr.evaluate(None, 8, 1).unwrap();
    let k = param(&tr, "param.K");
    let sigma = softplus(param(&tr, "param.s")[0]);
    let (k_opt, sigma_opt) = lqr_optimum(horizon);
    let exact_before = lqr_objective([0.0, 0.0], 1.0, horizon);
    let exact_opt = lqr_objective(k_opt, sigma_opt, horizon);
    eprintln!("lqr terms {kinds:?}");
    for (b, a) in before.terms.iter().zip(&after.terms) {
        eprintln!(
            "  term {} ({} of {}): {:.3} → {:.3}",
            b.term, b.kind, b.owner, b.mean, a.mean
        );
    }
    eprintln!(
        "lqr ELBO {:.3} ± {:.3} (exact {exact_before:.3}) → {:.3} ± {:.3} (exact optimum {exact_opt:.3})",
        before.elbo, before.stderr, after.elbo, after.stderr
    );
    eprintln!(
        "lqr learned K = {k:.4?}, σ = {sigma:.4}; optimal stationary (T = {horizon}) K = {k_opt:.4?}, σ = {sigma_opt:.4}; DARE −K* = [−0.6514, −1.3142], σ* = 0.6514"
    );
    // Exact objective at init, from the closed form (8 × 256 rollouts: stderr ≈ 1).
    assert!(
        (before.elbo - exact_before).abs() < 4.0 * before.stderr,
        "init ELBO"
    );
    // Directions: rewards up (less cost), policy entropy down (σ shrinks from 1 towards 0.65).
    let by_kind = |r: &EvalReport, kind: &str| -> f64 {
        r.terms
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.mean * f64::from(t.sign))
            .sum()
    };
    assert!(by_kind(&after, "reward") > by_kind(&before, "reward") + 10.0);
    let h_before = by_kind(&before, "entropy") + by_kind(&before, "log-ratio");
    let h_after = by_kind(&after, "entropy") + by_kind(&after, "log-ratio");
    assert!(h_after < h_before, "entropy {h_before} → {h_after}");
    // The header's DARE reference, recomputed (Riccati iteration to convergence): the
    // horizon-20 optimum below is a different number, since the finite-horizon gains fall to 0
    // at the end of the rollout.
    let (k_dare, sigma_dare) = dare_gain();
    eprintln!("DARE: K* = {k_dare:.5?}, √(α (R + BᵀPB)⁻¹) = {sigma_dare:.5}");
    assert!((k_dare[0] - 0.6514).abs() < 1e-4 && (k_dare[1] - 1.3142).abs() < 1e-4);
    assert!((sigma_dare - 0.42432f64.sqrt()).abs() < 1e-4);
    // The learned policy is the optimal stationary one for this horizon: K within 0.03
    // (measured: 0.01), σ within 0.03; the ELBO within 4 stderr + 0.5 of the exact optimum.
    // K does not depend on α but σ does: with the halved reward gradient exposed by
    // `reward_gradient_through_repeated_timed_reads`, σ converges to √2 × optimal (0.949).
    assert!(
        (k[0] - k_opt[0]).abs() < 0.03 && (k[1] - k_opt[1]).abs() < 0.03,
        "K {k:?} vs {k_opt:?}"
    );
    assert!((sigma - sigma_opt).abs() < 0.03, "σ {sigma} vs {sigma_opt}");
    assert!((after.elbo - exact_opt).abs() < 4.0 * after.stderr + 0.5);
}

/// K* = (R + BᵀPB)⁻¹ BᵀPA with P the fixed point of the Riccati recursion, and
/// √((R + BᵀPB)⁻¹) (α = 1).
fn dare_gain() -> ([f64; 2], f64) {
    let a: M2 = [[1.0, 0.5], [0.0, 1.0]];
    let b = [0.125, 0.5];
    let mut p: M2 = [[1.0, 0.0], [0.0, 1.0]];
    let mut k = [0.0; 2];
    let mut r = 1.0;
    for _ in 0..10_000 {
        let pb = [
            p[0][0] * b[0] + p[0][1] * b[1],
            p[1][0] * b[0] + p[1][1] * b[1],
        ];
        r = 1.0 + b[0] * pb[0] + b[1] * pb[1];
        // BᵀPA (row vector)
        let bpa = [
            pb[0] * a[0][0] + pb[1] * a[1][0],
            pb[0] * a[0][1] + pb[1] * a[1][1],
        ];
        k = [bpa[0] / r, bpa[1] / r];
        // P ← Q + AᵀPA − AᵀPB (R + BᵀPB)⁻¹ BᵀPA
        let mut n: M2 = [[0.0; 2]; 2];
        for i in 0..2 {
            for j in 0..2 {
                let mut apa = 0.0;
                for u in 0..2 {
                    for v in 0..2 {
                        apa += a[u][i] * p[u][v] * a[v][j];
                    }
                }
                n[i][j] = f64::from(u8::from(i == j)) + apa - bpa[i] * bpa[j] / r;
            }
        }
        p = n;
    }
    (k, (1.0 / r).sqrt())
}

/// Reparameterised gradients of lgssm_filter (a timed latent read at two lags by two batched
/// terms: x[t] ~ N(z[t], 1) and p(z[t] | z[t-1])) against central finite differences of the
/// closed-form ELBO, at the family's optimum region (a, b, c, σ) = (0.24, 0.42, 0.01, 0.69)
/// and at (0.5, 0.2, −0.3, 1.0). Exposes the same slice-gradient bug as
/// `reward_gradient_through_repeated_timed_reads` (rows of z's padded tensor read twice).
#[test]
fn lgssm_filter_gradient_matches_finite_differences() {
    let p = program("lgssm_filter.vmodel");
    let d = dataset(
        &p,
        "x",
        vec![1, 3],
        LGSSM_X.iter().map(|x| *x as f32).collect(),
    );
    for point in [[0.24f64, 0.42, 0.01, 0.69], [0.5, 0.2, -0.3, 1.0]] {
        let mut store = fresh_store(&p);
        let s_raw = point[3].exp_m1().ln();
        for (name, v) in [
            ("a", point[0]),
            ("b", point[1]),
            ("c", point[2]),
            ("s", s_raw),
        ] {
            store
                .get_mut(&format!("param.{name}"))
                .unwrap()
                .set_host(&[v as f32]);
        }
        let f = |q: [f64; 4]| lgssm_filter_elbo(&LGSSM_X, q[0], q[1], q[2], softplus(q[3]));
        let x0 = [point[0], point[1], point[2], s_raw];
        let h = 1e-5;
        let fd: Vec<f64> = (0..4)
            .map(|i| {
                let (mut a, mut b) = (x0, x0);
                a[i] += h;
                b[i] -= h;
                (f(a) - f(b)) / (2.0 * h)
            })
            .collect();
        let draws = grad_draws(&p, &store, &d, 4096, 20, 0.0, 6);
        for (i, name) in ["a", "b", "c", "s"].iter().enumerate() {
            assert_grad(
                &format!("lgssm_filter at {point:?}"),
                &draws,
                &format!("param.{name}"),
                &[fd[i]],
                None,
            );
        }
    }
}

/// The root cause of the halved gradients, at the smallest scale: two reads of the same rows
/// of one traced tensor through `vic::runtime::ops::rows` must each contribute to its gradient.
/// Upstream dfdx 0.13's CPU `slice` backward assigns (`view[i] = g`) instead of adding, so the
/// second slice's backward overwrote the first: d/dx Σ(rows(x, 0, 2) + rows(x, 0, 2)) came out 1,
/// not 2. Fixed in the vendored dfdx (vendor/dfdx/PATCHES.md).
#[test]
fn ops_rows_gradients_accumulate() {
    use vic::runtime::ops;
    let mut store = ParamStore::new(Dev::default());
    store
        .insert_host("w", &[3, 1], vec![1.0, 2.0, 3.0])
        .unwrap();
    let traced = store.trace();
    use vic::runtime::nets::params::Params;
    let w = traced.mat("w").unwrap();
    let (a, b) = vic::runtime::tape::fork(w);
    let y = ops::sum_all(ops::rows(a, 0, 2)) + ops::sum_all(ops::rows(b, 0, 2));
    drop(traced);
    let mut grads = backward(y);
    let g = &store.grads(&mut grads)["w"];
    assert_eq!(
        g,
        &vec![2.0, 2.0, 0.0],
        "d/dw of Σ rows(w,0,2) + Σ rows(w,0,2)"
    );
}

/// A latent used twice in one expression: p(x | z) = N(z·z, 1) with q = N(m, 1), x = 1.
/// Closed form: E_q[(1 − z²)²] = m⁴ + 4m² + 2, so
/// ELBO(m) = −½ ln 2π − ½ (m⁴ + 4m² + 2) − ½ m², dELBO/dm = −2m³ − 5m.
#[test]
fn reparam_gradient_through_a_repeated_latent() {
    for (expr, vec) in [("z * z", false), ("dot(z, z)", true)] {
        let src = format!(
            r#"
model sq {{
  observed x : real
  latent   z : {}
  param m : real = 0.3
  p {{
    z ~ Normal(0, 1)
    x ~ Normal({expr}, 1)
  }}
  q {{
    z ~ Normal(m, 1)
  }}
}}"#,
            if vec { "real[1]" } else { "real" }
        );
        let p = match vic::compile(&src, "sq.vmodel") {
            Ok(m) => Program::new(m.ir(), &m.elbo()).unwrap(),
            Err(e) => {
                eprintln!("{expr}: not accepted ({e:?}); skipped");
                continue;
            }
        };
        let d = dataset(&p, "x", vec![1], vec![1.0]);
        let store = fresh_store(&p);
        let m = 0.3f64;
        let exact = -2.0 * m.powi(3) - 5.0 * m;
        let draws = grad_draws(&p, &store, &d, 4096, 20, 0.0, 5);
        assert_grad(expr, &draws, "param.m", &[exact], None);
    }
}

/// Reparameterised gradients through the tied dynamics of lqr.vmodel (x sampled from p, the
/// policy's noise σε entering the next state): vic's gradient w.r.t. (K, s) against central
/// finite differences of the closed-form objective (`lqr_objective`), at a point away from the
/// optimum.
#[test]
fn lqr_gradient_matches_finite_differences() {
    let p = program("lqr.vmodel");
    let mut store = fresh_store(&p);
    let (k, s) = ([-0.6f64, -1.25], 0.95f64.exp_m1().ln()); // softplus(s) = 0.95
    store
        .get_mut("param.K")
        .unwrap()
        .set_host(&[k[0] as f32, k[1] as f32]);
    store.get_mut("param.s").unwrap().set_host(&[s as f32]);
    let sigma = softplus(s);
    let h = 1e-5;
    let f = |k: [f64; 2], s: f64| lqr_objective(k, softplus(s), 20);
    let dk = [
        (f([k[0] + h, k[1]], s) - f([k[0] - h, k[1]], s)) / (2.0 * h),
        (f([k[0], k[1] + h], s) - f([k[0], k[1] - h], s)) / (2.0 * h),
    ];
    let ds = (f(k, s + h) - f(k, s - h)) / (2.0 * h);
    eprintln!(
        "lqr closed form at K = {k:?}, σ = {sigma}: {:.4}; ∂/∂K = {dk:.4?}, ∂/∂s = {ds:.4}",
        f(k, s)
    );
    let batch = vic::train::control_batch(&p, 2048, 20);
    let mut r = rng::seeded(4);
    let draws: Vec<BTreeMap<String, Vec<f64>>> = timed("lqr grads", || {
        (0..20)
            .map(|_| {
                let traced = store.trace();
                let fwd = p.forward(&traced, &batch, &mut r, 0, 0.0).unwrap();
                drop(traced);
                let mut grads = backward(fwd.objective);
                store
                    .grads(&mut grads)
                    .into_iter()
                    .map(|(k, g)| (k, g.iter().map(|x| f64::from(*x) / 2048.0).collect()))
                    .collect()
            })
            .collect()
    });
    let sd: Vec<f64> = draws.iter().map(|g| g["param.s"][0]).collect();
    eprintln!(
        "lqr reparam: ∂/∂param.s = {:.4?} (expected {ds:.4})",
        mean_se(&sd)
    );
    assert_grad("lqr reparam", &draws, "param.K", &dk, None);
    assert_grad("lqr reparam", &draws, "param.s", &[ds], None);
}

// ---------------------------------------------------------------------------------------
// 6. Regression: a learned initial state (`init z[0] = <param vector>`, as Pyro's DMM z_0).
// ---------------------------------------------------------------------------------------

/// Bug in src/reference/exec.rs (`Ctx::padded` → `gru::stack_time`): the init value of a param
/// vector is a broadcast tensor (row stride 0) and dfdx's `stack` asserts equal strides, so the
/// first training step panics when a term reads `z[t-1]` over its time range.
#[test]
fn init_from_a_param_vector_trains() {
    let src = r#"
model learned_init {
  observed x[t] : real
  latent   z[t] : real[2]
  param z0 : real[2] = [0.1, -0.2]
  init z[0] = z0
  net f = linear(2 -> 1)
  p {
    z[t] ~ Normal(0.5 * z[t-1], 1)
    x[t] ~ Normal(f(z[t]), 1)
  }
  q {
    z[t] ~ Normal(0.5 * z[t-1], 0.5)
  }
}"#;
    let p = program_of(src, "learned_init.vmodel");
    let d = dataset(&p, "x", vec![1, 3], vec![1.0, -0.5, 0.3]);
    let mut tr = Trainer::new(
        p,
        Some(d),
        TrainConfig {
            batch: 4,
            holdout: 0.0,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let s = tr.step().expect("one step");
    assert!(s.elbo.is_finite());
}

/// The gradient of a reward that reads a timed variable twice (`u[t] * u[t]`, and a tied state
/// `x[t] * x[t]`), against the closed form. Bug (fixed by vendoring dfdx with the patch in
/// vendor/dfdx/PATCHES.md): dfdx 0.13's CPU `slice` backward *assigns* the
/// output gradient into the input's gradient instead of adding it, and vic's `ops::rows`
/// (src/runtime/ops.rs) slices the cached padded tensor of a variable (`Ctx::padded`,
/// src/reference/exec.rs) once per read, so two reads of the same rows keep only one gradient:
/// these come out at half the exact value. Same cause as lqr's σ converging to √2 × optimal.
#[test]
fn reward_gradient_through_repeated_timed_reads() {
    // horizon 3, q(u_t) = N(m, 1), m = 0.3.
    // u·u:  ELBO = Σ_t −½(m² + 1) + H            → dELBO/dm = −3m = −0.9
    // x·x with x₁ ~ N(0, 0.01²), x_{t+1} = x_t + u_t (+ N(0, 0.01²)):
    //       E x₂² ≈ m² + 1, E x₃² ≈ 4m² + 2      → dELBO/dm = −½(2m + 8m) = −5m = −1.5
    // x (linear, control): E Σ x_t = 3m          → dELBO/dm = 3
    let m = 0.3f64;
    for (name, reward, tied, exact) in [
        ("x[t] (linear, one read: the control)", "x[t]", true, 3.0),
        ("u[t] * u[t]", "-0.5 * u[t] * u[t]", false, -3.0 * m),
        ("x[t] * x[t]", "-0.5 * x[t] * x[t]", true, -5.0 * m),
    ] {
        let src = format!(
            r#"
model rep {{
  {}
  latent u[t] : real
  param m : real = {m}
  optimality O[t] : reward = {reward}, alpha = 1.0
  p {{
    {}
    u[t] ~ Flat
  }}
  q {{
    u[t] ~ Normal(1 * m, 1)
  }}
  objective {{
    horizon = 3
  }}
}}"#,
            if tied { "latent x[t] : real" } else { "" },
            if tied {
                "x[1] ~ Normal(0, 0.01)\n    x[t] ~ Normal(x[t-1] + u[t-1], 0.01)"
            } else {
                ""
            }
        );
        let p = program_of(&src, "rep.vmodel");
        let store = fresh_store(&p);
        let batch = vic::train::control_batch(&p, 4096, 3);
        let mut r = rng::seeded(4);
        let draws: Vec<BTreeMap<String, Vec<f64>>> = (0..10)
            .map(|_| {
                let traced = store.trace();
                let fwd = p.forward(&traced, &batch, &mut r, 0, 0.0).unwrap();
                drop(traced);
                let mut grads = backward(fwd.objective);
                store
                    .grads(&mut grads)
                    .into_iter()
                    .map(|(k, g)| (k, g.iter().map(|x| f64::from(*x) / 4096.0).collect()))
                    .collect()
            })
            .collect();
        assert_grad(name, &draws, "param.m", &[exact], Some(&[exact / 2.0]));
    }
}

/// A timed latent whose q location is a parameter read directly (`u[t] ~ Normal(m, 1)`):
/// training must not panic. Bug: the per-step q parameters recorded on the chain are the same
/// tensor at every step, and stacking them for the batched entropy term (src/reference/exec.rs,
/// `stack` → `gru::stack_time`) makes dfdx's `stack` backward see one tensor id twice
/// (`assertion left != right` in dfdx `Gradients::many_and_ref`). `Normal(1 * m, 1)` works.
#[test]
fn timed_latent_with_a_param_location_trains() {
    let src = r#"
model const_loc {
  latent u[t] : real
  param m : real = 0.3
  optimality O[t] : reward = -0.5 * u[t], alpha = 1.0
  p {
    u[t] ~ Flat
  }
  q {
    u[t] ~ Normal(m, 1)
  }
  objective {
    horizon = 3
  }
}"#;
    let p = program_of(src, "const_loc.vmodel");
    let mut tr = Trainer::new(
        p,
        None,
        TrainConfig {
            batch: 8,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let s = tr.step().expect("one step");
    assert!(s.elbo.is_finite());
}
