//! The reference kernels of LogNormal, StudentT, Gamma, Beta and Poisson against scipy's
//! values (log-densities at points, entropies, and KLs by scipy's numerical integration),
//! snapshotted by `scripts/families_scipy.py` into `tests/fixtures/families_scipy.json` (no
//! scipy at test time); the samplers' moments against the closed-form mean and variance; and
//! gradients (including the implicit reparameterisation ones) against central differences.
//!
//! Tolerances: values `|vic − scipy| ≤ 2e-5·max(|scipy|, 1)` (f32 kernels); moments from
//! N = 200 000 draws within 5 standard errors of the mean and 3% of the variance (2% for the
//! bounded Beta); gradients as `grad_fd.rs` (step 5e-3, rtol 1e-2, atol 1e-3).

use super::special::fixture;
use super::{check_grads, mean_se, store_with};
use crate::runtime::dist::{beta, gamma, lognormal, normal, poisson, student_t};
use crate::runtime::nets::params::{Params, Traced};
use crate::runtime::ops::{from_host, softplus};
use crate::runtime::rng::{normal_noise, seeded, uniform_noise};
use crate::runtime::{Dev, Tp, T2};

fn num(v: &serde_json::Value) -> f32 {
    v.as_f64().unwrap() as f32
}

/// A `(1, 1)` tensor.
fn s(x: f32) -> T2 {
    from_host(&Dev::default(), vec![x], 1, 1)
}

fn one(t: T2) -> f64 {
    f64::from(t.as_vec()[0])
}

fn close(vic: f64, want: f64, what: &str) {
    assert!(
        (vic - want).abs() <= 2e-5 * want.abs().max(1.0),
        "{what}: vic {vic}, scipy {want} (difference {:e})",
        vic - want
    );
}

#[test]
fn log_densities_match_scipy() {
    for r in fixture("lognormal_logpdf") {
        let (l, sc, x) = (num(&r[0]), num(&r[1]), num(&r[2]));
        let v = one(lognormal::log_prob(s(x), s(l), s(sc)));
        close(
            v,
            r[3].as_f64().unwrap(),
            &format!("LogNormal({l}, {sc}) at {x}"),
        );
    }
    for r in fixture("gamma_logpdf") {
        let (a, b, x) = (num(&r[0]), num(&r[1]), num(&r[2]));
        let v = one(gamma::log_prob(s(x), s(a), s(b)));
        close(
            v,
            r[3].as_f64().unwrap(),
            &format!("Gamma({a}, {b}) at {x}"),
        );
    }
    for r in fixture("beta_logpdf") {
        let (a, b, x) = (num(&r[0]), num(&r[1]), num(&r[2]));
        let v = one(beta::log_prob(s(x), s(a), s(b)));
        close(v, r[3].as_f64().unwrap(), &format!("Beta({a}, {b}) at {x}"));
    }
    for r in fixture("student_t_logpdf") {
        let (n, l, sc, x) = (num(&r[0]), num(&r[1]), num(&r[2]), num(&r[3]));
        let v = one(student_t::log_prob(s(x), s(n), s(l), s(sc)));
        close(
            v,
            r[4].as_f64().unwrap(),
            &format!("StudentT({n}, {l}, {sc}) at {x}"),
        );
    }
    for r in fixture("poisson_logpmf") {
        let (rate, k) = (num(&r[0]), num(&r[1]));
        let v = one(poisson::log_prob(s(k), s(rate)));
        close(
            v,
            r[2].as_f64().unwrap(),
            &format!("Poisson({rate}) at {k}"),
        );
    }
}

#[test]
fn entropies_and_kls_match_scipy() {
    for r in fixture("lognormal_entropy") {
        let (l, sc) = (num(&r[0]), num(&r[1]));
        close(
            one(lognormal::entropy(s(l), s(sc))),
            r[2].as_f64().unwrap(),
            "H LogNormal",
        );
    }
    for r in fixture("gamma_entropy") {
        let (a, b) = (num(&r[0]), num(&r[1]));
        close(
            one(gamma::entropy(s(a), s(b))),
            r[2].as_f64().unwrap(),
            "H Gamma",
        );
    }
    for r in fixture("beta_entropy") {
        let (a, b) = (num(&r[0]), num(&r[1]));
        close(
            one(beta::entropy(s(a), s(b))),
            r[2].as_f64().unwrap(),
            "H Beta",
        );
    }
    for r in fixture("student_t_entropy") {
        let (n, sc) = (num(&r[0]), num(&r[1]));
        close(
            one(student_t::entropy(s(n), s(sc))),
            r[2].as_f64().unwrap(),
            "H StudentT",
        );
    }
    // KLs: scipy's quadrature of q·(log q − log p).
    for r in fixture("lognormal_kl") {
        let v: Vec<f32> = r[..4].iter().map(num).collect();
        // The LogNormal KL is the Normal KL of the logs (the family row's `NormalNormal`).
        let k = one(normal::kl(s(v[0]), s(v[1]), s(v[2]), s(v[3])));
        close(k, r[4].as_f64().unwrap(), "KL LogNormal");
    }
    for r in fixture("gamma_kl") {
        let v: Vec<f32> = r[..4].iter().map(num).collect();
        let k = one(gamma::kl(s(v[0]), s(v[1]), s(v[2]), s(v[3])));
        close(k, r[4].as_f64().unwrap(), &format!("KL Gamma {v:?}"));
    }
    for r in fixture("beta_kl") {
        let v: Vec<f32> = r[..4].iter().map(num).collect();
        let k = one(beta::kl(s(v[0]), s(v[1]), s(v[2]), s(v[3])));
        close(k, r[4].as_f64().unwrap(), &format!("KL Beta {v:?}"));
    }
}

/// Mean and variance of N draws against the closed forms.
fn moments(what: &str, xs: &[f64], mean: f64, var: f64, var_rtol: f64) {
    let (m, se) = mean_se(xs);
    assert!(
        (m - mean).abs() < 5.0 * se,
        "{what}: mean {m}, expected {mean} (se {se})"
    );
    let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() as f64 - 1.0);
    assert!(
        (v - var).abs() < var_rtol * var,
        "{what}: variance {v}, expected {var}"
    );
}

#[test]
fn samplers_have_the_closed_form_moments() {
    let n = 200_000;
    let dev = Dev::default();
    let full = |x: f32| from_host(&dev, vec![x; n], n, 1);
    let mut rng = seeded(3);
    let h = |t: T2| {
        t.as_vec()
            .iter()
            .map(|&x| f64::from(x))
            .collect::<Vec<f64>>()
    };
    // LogNormal(0.2, 0.5): mean e^{μ+σ²/2}, variance (e^{σ²} − 1)e^{2μ+σ²}.
    let z = h(lognormal::rsample(
        full(0.2),
        full(0.5),
        normal_noise(&dev, &mut rng, n, 1),
    ));
    let (m, s2) = (0.2f64, 0.25f64);
    moments(
        "LogNormal",
        &z,
        (m + s2 / 2.0).exp(),
        (s2.exp() - 1.0) * (2.0 * m + s2).exp(),
        0.03,
    );
    // Gamma(α, β): α/β, α/β².
    for &(a, b) in &[(0.4f32, 2.0f32), (3.0, 0.5)] {
        let z = h(gamma::rsample(
            full(a),
            full(b),
            uniform_noise(&dev, &mut rng, n, 1),
        ));
        let (a, b) = (f64::from(a), f64::from(b));
        moments("Gamma", &z, a / b, a / (b * b), 0.03);
    }
    // Beta(a, b): a/(a+b), ab/((a+b)²(a+b+1)).
    for &(a, b) in &[(0.5f32, 0.5f32), (2.0, 5.0)] {
        let z = h(beta::rsample(
            full(a),
            full(b),
            uniform_noise(&dev, &mut rng, n, 1),
        ));
        let (a, b) = (f64::from(a), f64::from(b));
        moments(
            "Beta",
            &z,
            a / (a + b),
            a * b / ((a + b).powi(2) * (a + b + 1.0)),
            0.02,
        );
    }
    // StudentT(ν = 6, 1, 2): μ, σ²ν/(ν − 2) (ν > 4 keeps the sample variance stable).
    let z = h(student_t::rsample(
        full(6.0),
        full(1.0),
        full(2.0),
        uniform_noise(&dev, &mut rng, n, 1),
    ));
    moments("StudentT", &z, 1.0, 4.0 * 6.0 / 4.0, 0.05);
}

const H: f32 = 5e-3;
const RTOL: f64 = 1e-2;
const ATOL: f64 = 1e-3;

fn pos(x: T2<Tp>) -> T2<Tp> {
    softplus(x) + 0.5
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = seeded(8);
    let st = store_with(
        &[
            ("x", 3, 2, 0.1, 0.9),
            ("a", 3, 2, -1.0, 1.5),
            ("b", 3, 2, -1.0, 1.5),
            ("c", 3, 2, -1.0, 1.5),
            ("d", 3, 2, -1.0, 1.5),
            ("l", 3, 2, -1.0, 1.0),
        ],
        &mut rng,
    );
    let m = |p: &Traced, n: &str| p.mat(n).unwrap();
    let dev = Dev::default();
    let u = uniform_noise(&dev, &mut seeded(9), 3, 2);
    let eps = normal_noise(&dev, &mut seeded(10), 3, 2);
    let x = |p: &Traced| m(p, "x");
    check_grads(
        &st,
        |p| gamma::log_prob(x(p), pos(m(p, "a")), pos(m(p, "b"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| gamma::entropy(pos(m(p, "a")), pos(m(p, "b"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| {
            gamma::kl(
                pos(m(p, "a")),
                pos(m(p, "b")),
                pos(m(p, "c")),
                pos(m(p, "d")),
            )
        },
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| gamma::rsample(pos(m(p, "a")), pos(m(p, "b")), u.clone()),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| beta::log_prob(x(p), pos(m(p, "a")), pos(m(p, "b"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| beta::entropy(pos(m(p, "a")), pos(m(p, "b"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| {
            beta::kl(
                pos(m(p, "a")),
                pos(m(p, "b")),
                pos(m(p, "c")),
                pos(m(p, "d")),
            )
        },
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| beta::rsample(pos(m(p, "a")), pos(m(p, "b")), u.clone()),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| student_t::log_prob(m(p, "l"), pos(m(p, "a")), m(p, "x"), pos(m(p, "b"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| student_t::entropy(pos(m(p, "a")), pos(m(p, "b"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| student_t::rsample(pos(m(p, "a")), m(p, "l"), pos(m(p, "b")), u.clone()),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| lognormal::log_prob(x(p), m(p, "l"), pos(m(p, "b"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| lognormal::entropy(m(p, "l"), pos(m(p, "b"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &st,
        |p| lognormal::rsample(m(p, "l"), pos(m(p, "b")), eps.clone()),
        H,
        RTOL,
        ATOL,
    );
    let counts = from_host(&dev, vec![0., 1., 2., 5., 3., 7.], 3, 2);
    check_grads(
        &st,
        |p| poisson::log_prob(p.input(counts.clone()), pos(m(p, "a"))),
        H,
        RTOL,
        ATOL,
    );
}

/// `(1, n)` tensor.
fn row(v: &[f64]) -> T2 {
    from_host(
        &Dev::default(),
        v.iter().map(|&x| x as f32).collect(),
        1,
        v.len(),
    )
}

fn nums(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn multivariate_normal_matches_scipy() {
    use crate::runtime::dist::mvn;
    for r in fixture("mvn_logpdf") {
        let (m, l, x) = (nums(&r[0]), nums(&r[1]), nums(&r[2]));
        let v = one(mvn::log_prob(row(&x), row(&m), row(&l)));
        close(v, r[3].as_f64().unwrap(), "MVN log-density");
    }
    for r in fixture("mvn_kl") {
        let (mq, lq, mp, lp) = (nums(&r[0]), nums(&r[1]), nums(&r[2]), nums(&r[3]));
        let v = one(mvn::kl(row(&mq), row(&lq), row(&mp), row(&lp)));
        close(v, r[4].as_f64().unwrap(), "MVN KL");
    }
    for r in fixture("mvn_entropy") {
        let v = one(mvn::entropy(row(&nums(&r[0]))));
        close(v, r[1].as_f64().unwrap(), "MVN entropy");
    }
    // Entries above the diagonal are ignored.
    let l = [1.0, 9.0, 0.0, 0.5, 0.8, 7.0, -0.3, 0.2, 1.5];
    let lt = [1.0, 0.0, 0.0, 0.5, 0.8, 0.0, -0.3, 0.2, 1.5];
    let (m, x) = ([0.1, -0.2, 0.3], [1.0, -2.0, 0.5]);
    let a = one(mvn::log_prob(row(&x), row(&m), row(&l)));
    let b = one(mvn::log_prob(row(&x), row(&m), row(&lt)));
    assert_eq!(a, b);
}

/// The sampler's mean and covariance `L Lᵀ` from N = 200 000 draws (within 0.02 absolute).
#[test]
fn multivariate_normal_sampler_has_covariance_l_lt() {
    use crate::runtime::dist::mvn;
    let n = 200_000;
    let dev = Dev::default();
    let l = [1.0f32, 0.0, 0.5, 0.8];
    let m = [0.3f32, -1.0];
    let loc = from_host(&dev, m.iter().copied().cycle().take(2 * n).collect(), n, 2);
    let lt = from_host(&dev, l.iter().copied().cycle().take(4 * n).collect(), n, 4);
    let z = mvn::rsample(loc, lt, normal_noise(&dev, &mut seeded(4), n, 2)).as_vec();
    let mean = |j: usize| {
        z.iter()
            .skip(j)
            .step_by(2)
            .map(|&x| f64::from(x))
            .sum::<f64>()
            / n as f64
    };
    let (m0, m1) = (mean(0), mean(1));
    let cov = |a: usize, b: usize, ma: f64, mb: f64| {
        (0..n)
            .map(|i| (f64::from(z[2 * i + a]) - ma) * (f64::from(z[2 * i + b]) - mb))
            .sum::<f64>()
            / (n as f64 - 1.0)
    };
    // L Lᵀ = [[1, 0.5], [0.5, 0.89]].
    for (got, want) in [
        (m0, 0.3),
        (m1, -1.0),
        (cov(0, 0, m0, m0), 1.0),
        (cov(0, 1, m0, m1), 0.5),
        (cov(1, 1, m1, m1), 0.89),
    ] {
        assert!(
            (got - want).abs() < 0.02,
            "MVN moment {got}, expected {want}"
        );
    }
}

#[test]
fn multivariate_normal_gradients_match_finite_differences() {
    use crate::runtime::dist::mvn;
    let mut rng = seeded(12);
    let mut st = store_with(
        &[
            ("x", 2, 3, -1.0, 1.0),
            ("mq", 2, 3, -1.0, 1.0),
            ("lq", 2, 9, -0.4, 0.4),
            ("mp", 2, 3, -1.0, 1.0),
            ("lp", 2, 9, -0.4, 0.4),
        ],
        &mut rng,
    );
    // Diagonals well away from 0.
    for name in ["lq", "lp"] {
        let mut v = st.mat(name).unwrap().as_vec();
        for r in 0..2 {
            for j in 0..3 {
                v[r * 9 + j * 3 + j] += 1.2;
            }
        }
        st.get_mut(name).unwrap().set_host(&v);
    }
    let m = |p: &Traced, n: &str| p.mat(n).unwrap();
    check_grads(
        &st,
        |p| mvn::log_prob(m(p, "x"), m(p, "mq"), m(p, "lq")),
        H,
        RTOL,
        ATOL,
    );
    check_grads(&st, |p| mvn::entropy(m(p, "lq")), H, RTOL, ATOL);
    check_grads(
        &st,
        |p| mvn::kl(m(p, "mq"), m(p, "lq"), m(p, "mp"), m(p, "lp")),
        H,
        RTOL,
        ATOL,
    );
    let eps = normal_noise(&Dev::default(), &mut seeded(13), 2, 3);
    check_grads(
        &st,
        |p| mvn::rsample(m(p, "mq"), m(p, "lq"), eps.clone()),
        H,
        RTOL,
        ATOL,
    );
}
