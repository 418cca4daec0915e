//! The special functions (`runtime::special`) against scipy's values, snapshotted by
//! `scripts/families_scipy.py` into `tests/fixtures/families_scipy.json` (no scipy at test
//! time), and the implicit reparameterisation gradients against finite differences of the
//! inverse CDFs.

use crate::runtime::special::*;

/// The snapshot's rows under `key`.
pub fn fixture(key: &str) -> Vec<Vec<serde_json::Value>> {
    let text = include_str!("../../../tests/fixtures/families_scipy.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    serde_json::from_value(v[key].clone()).unwrap_or_else(|_| panic!("fixture key {key}"))
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

fn close(got: f64, want: f64, rtol: f64, what: &str) {
    assert!(
        (got - want).abs() <= rtol * want.abs().max(1.0),
        "{what}: vic {got}, scipy {want}"
    );
}

#[test]
fn gamma_functions_match_scipy() {
    for r in fixture("lgamma") {
        close(ln_gamma(num(&r[0])), num(&r[1]), 1e-12, "ln Γ");
    }
    for r in fixture("digamma") {
        close(digamma(num(&r[0])), num(&r[1]), 1e-12, "ψ");
    }
    for r in fixture("trigamma") {
        close(trigamma(num(&r[0])), num(&r[1]), 1e-11, "ψ′");
    }
}

#[test]
fn incomplete_functions_and_inverses_match_scipy() {
    for r in fixture("gammainc") {
        let (a, x) = (num(&r[0]), num(&r[1]));
        close(gamma_p(a, x), num(&r[2]), 1e-12, &format!("P({a}, {x})"));
    }
    for r in fixture("gammaincinv") {
        let (a, p) = (num(&r[0]), num(&r[1]));
        let want = num(&r[2]);
        let got = gamma_p_inv(a, p);
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1e-300),
            "P⁻¹({a}, {p}): vic {got}, scipy {want}"
        );
    }
    for r in fixture("betainc") {
        let (a, b, x) = (num(&r[0]), num(&r[1]), num(&r[2]));
        close(
            beta_i(a, b, x),
            num(&r[3]),
            1e-12,
            &format!("I_{x}({a}, {b})"),
        );
    }
    for r in fixture("betaincinv") {
        let (a, b, p) = (num(&r[0]), num(&r[1]), num(&r[2]));
        let want = num(&r[3]);
        let got = beta_i_inv(a, b, p);
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1e-300),
            "I⁻¹({a}, {b}, {p}): vic {got}, scipy {want}"
        );
    }
}

/// `dz/dθ` of each sampler against a central difference of its inverse CDF at fixed noise.
#[test]
fn implicit_gradients_match_differences_of_the_inverse_cdf() {
    for &a in &[0.3, 1.0, 4.5, 40.0] {
        for &u in &[0.01f32, 0.3, 0.5, 0.97] {
            let (_, dz) = gamma_sample(a, u);
            let h = 1e-6 * a;
            let fd = (gamma_p_inv(a + h, u as f64) - gamma_p_inv(a - h, u as f64)) / (2.0 * h);
            close(dz, fd, 1e-5, &format!("Gamma dz/da at a = {a}, u = {u}"));
        }
    }
    for &(a, b) in &[(0.5, 0.5), (2.0, 5.0), (7.0, 1.5)] {
        for &u in &[0.02f32, 0.4, 0.9] {
            let (_, da, db) = beta_sample(a, b, u);
            let p = u as f64;
            let h = 1e-6;
            let fa = (beta_i_inv(a + h, b, p) - beta_i_inv(a - h, b, p)) / (2.0 * h);
            let fb = (beta_i_inv(a, b + h, p) - beta_i_inv(a, b - h, p)) / (2.0 * h);
            close(da, fa, 1e-5, &format!("Beta dz/da at ({a}, {b}), u = {u}"));
            close(db, fb, 1e-5, &format!("Beta dz/db at ({a}, {b}), u = {u}"));
        }
    }
    for &nu in &[1.0, 3.5, 30.0] {
        for &u in &[0.05f32, 0.4, 0.8] {
            let (t, dt) = student_t_sample(nu, u);
            close(student_t_cdf(nu, t), u as f64, 1e-9, "StudentT inverse");
            let h = 1e-5 * nu;
            let fd = (student_t_sample(nu + h, u).0 - student_t_sample(nu - h, u).0) / (2.0 * h);
            close(
                dt,
                fd,
                1e-4,
                &format!("StudentT dt/dν at ν = {nu}, u = {u}"),
            );
        }
    }
}

#[test]
fn student_t_entropy_derivative_matches_differences() {
    for &nu in &[0.7, 3.0, 50.0] {
        let (_, d) = student_t_entropy(nu);
        let h = 1e-5 * nu;
        let fd = (student_t_entropy(nu + h).0 - student_t_entropy(nu - h).0) / (2.0 * h);
        close(d, fd, 1e-6, &format!("dH/dν at {nu}"));
    }
}

/// Draws stay strictly inside the support in f32 at extreme parameters (clamped as torch
/// clamps to `finfo.tiny`), so their log-densities are finite.
#[test]
fn extreme_draws_stay_inside_the_support() {
    for &u in &[1e-7f32, 0.01, 0.5] {
        let (z, _) = gamma_sample(0.01, u);
        assert!(z as f32 > 0.0, "Gamma(0.01) draw {z} at u = {u}");
    }
    for &u in &[1e-7f32, 0.5, 0.9999999] {
        let (z, _, _) = beta_sample(0.05, 0.05, u);
        let z32 = z as f32;
        assert!(
            z32 > 0.0 && z32 < 1.0,
            "Beta(0.05, 0.05) draw {z} at u = {u}"
        );
    }
}

/// Below zero the recurrences would never end (x + 1 == x for a huge negative x): ψ and ψ′
/// take the reflection formulas, against their closed forms at −½ (ψ(−½) = 2 − γ − 2 ln 2,
/// ψ′(−½) = π²/2 + 4); poles, −∞ and NaN are NaN, and samplers with a shape outside (0, ∞)
/// draw NaN (the trainer reports it) instead of running on.
#[test]
fn non_positive_arguments_end_in_nan_or_reflection() {
    let euler = 0.577_215_664_901_532_9;
    close(digamma(-0.5), 2.0 - euler - 2.0 * 2f64.ln(), 1e-12, "ψ(−½)");
    let pi2 = std::f64::consts::PI.powi(2);
    close(trigamma(-0.5), pi2 / 2.0 + 4.0, 1e-11, "ψ′(−½)");
    for x in [0.0, -2.0, f64::NEG_INFINITY, f64::NAN, -1e300] {
        assert!(digamma(x).is_nan() && trigamma(x).is_nan(), "{x}");
    }
    assert!(digamma(-1e7 - 0.5).is_finite());
    assert!(gamma_sample(0.0, 0.3).0.is_nan());
    assert!(gamma_sample(-1.0, 0.3).0.is_nan());
    assert!(beta_sample(2.0, 0.0, 0.3).0.is_nan());
    assert!(student_t_sample(-1.0, 0.3).0.is_nan());
}
