//! Every family's log-density, entropy and closed-form KL against numerical integration (or an
//! exact sum over a finite support) computed independently here in f64 — never against a Monte
//! Carlo average of vic's own log-density.
//!
//! Quadrature: composite Simpson in f64 over ±12 standard deviations (tail mass < 1e-32); its
//! own error is far below the tolerance (checked on the test's closed-form densities, 1e-9).
//! Tolerance for vic's f32 kernels: `|vic − reference| ≤ 1e-4·|reference| + 1e-6` (the
//! absolute part covers f32 rounding of values near 0).

use std::f64::consts::PI;

use dfdx::prelude::*;

use super::mean_se;
use crate::runtime::dist::{bernoulli, categorical, flat, normal, tanh_normal, uniform};
use crate::runtime::ops::from_host;
use crate::runtime::{Dev, T2};

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-6;

fn close(vic: f64, reference: f64, what: &str) {
    assert!(
        (vic - reference).abs() <= RTOL * reference.abs() + ATOL,
        "{what}: vic {vic}, reference {reference} (difference {:e})",
        vic - reference
    );
}

/// Composite Simpson nodes and weights on `[a, b]` with `n` (even) intervals.
fn simpson(a: f64, b: f64, n: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(n >= 2 && n.is_multiple_of(2));
    let h = (b - a) / n as f64;
    let xs = (0..=n).map(|i| a + h * i as f64).collect();
    let ws = (0..=n)
        .map(|i| {
            let c = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            c * h / 3.0
        })
        .collect();
    (xs, ws)
}

fn integrate(ws: &[f64], fs: impl IntoIterator<Item = f64>) -> f64 {
    ws.iter().zip(fs).map(|(w, f)| w * f).sum()
}

/// Nodes over `loc ± 12·scale`.
fn grid(loc: f64, scale: f64) -> (Vec<f64>, Vec<f64>) {
    simpson(loc - 12.0 * scale, loc + 12.0 * scale, 6000)
}

/// `(n, 1)` column of `vals`.
fn col(dev: &Dev, vals: &[f64]) -> T2 {
    from_host(dev, vals.iter().map(|&v| v as f32).collect(), vals.len(), 1)
}

/// `(n, 1)` column of `v`.
fn fill(dev: &Dev, v: f64, n: usize) -> T2 {
    col(dev, &vec![v; n])
}

fn host(x: T2) -> Vec<f64> {
    x.as_vec().into_iter().map(f64::from).collect()
}

fn ln_normal(x: f64, loc: f64, scale: f64) -> f64 {
    let z = (x - loc) / scale;
    -0.5 * z * z - scale.ln() - 0.5 * (2.0 * PI).ln()
}

/// `ln(1 − tanh²u)`, stable for large `|u|`.
fn ln_sech2(u: f64) -> f64 {
    let a = u.abs();
    2.0 * (2f64.ln() - a - (-2.0 * a).exp().ln_1p())
}

const NORMALS: [(f64, f64); 3] = [(0.0, 1.0), (1.5, 0.3), (-2.0, 3.0)];

#[test]
fn normal_density_entropy_kl() {
    let dev = Dev::default();
    for (m, s) in NORMALS {
        let (xs, ws) = grid(m, s);
        let n = xs.len();
        let p: Vec<f64> = xs.iter().map(|&x| ln_normal(x, m, s).exp()).collect();
        assert!(
            (integrate(&ws, p.iter().copied()) - 1.0).abs() < 1e-9,
            "the rule itself"
        );
        let lp = host(normal::log_prob(
            col(&dev, &xs),
            fill(&dev, m, n),
            fill(&dev, s, n),
        ));
        let what = format!("N({m}, {s})");
        close(
            integrate(&ws, lp.iter().map(|l| l.exp())),
            1.0,
            &format!("∫ {what}"),
        );
        let h_quad = -integrate(
            &ws,
            xs.iter()
                .map(|&x| ln_normal(x, m, s).exp() * ln_normal(x, m, s)),
        );
        let h_vic = host(normal::entropy(fill(&dev, s, 1)))[0];
        close(h_vic, h_quad, &format!("H[{what}]"));
        // vic's log-density values, not only their normalisation: E_p[−ln p_vic] = H
        close(
            -integrate(&ws, p.iter().zip(&lp).map(|(p, l)| p * l)),
            h_quad,
            &format!("E[−ln p_vic] of {what}"),
        );
    }
    for (i, &(qm, qs)) in NORMALS.iter().enumerate() {
        let (pm, ps) = NORMALS[(i + 1) % NORMALS.len()];
        let (xs, ws) = grid(qm, qs);
        let kl_quad = integrate(
            &ws,
            xs.iter().map(|&x| {
                ln_normal(x, qm, qs).exp() * (ln_normal(x, qm, qs) - ln_normal(x, pm, ps))
            }),
        );
        let t = |v| fill(&dev, v, 1);
        let kl_vic = host(normal::kl(t(qm), t(qs), t(pm), t(ps)))[0];
        close(
            kl_vic,
            kl_quad,
            &format!("KL(N({qm}, {qs}) ‖ N({pm}, {ps}))"),
        );
        // KL(q ‖ Flat) = ∫ q ln(q / 1) = −H[q]
        let kl_flat_quad = integrate(
            &ws,
            xs.iter()
                .map(|&x| ln_normal(x, qm, qs).exp() * ln_normal(x, qm, qs)),
        );
        let kl_flat_vic = host(flat::kl_from_entropy(normal::entropy(t(qs))))[0];
        close(
            kl_flat_vic,
            kl_flat_quad,
            &format!("KL(N({qm}, {qs}) ‖ Flat)"),
        );
    }
}

/// Parameters whose mass beyond `|u| = 7` is below 1e-6: f32 cannot represent `y = tanh(u)`
/// apart from ±1 much beyond that, so no f32 density can integrate to 1 there.
const TANH_NORMALS: [(f64, f64); 3] = [(0.0, 1.0), (0.7, 0.5), (-1.0, 1.2)];

/// `−∫ p(y) ln p(y) dy` of `y = tanh(u)`, `u ~ N(m, s)`, by quadrature over `u` (`y = tanh u`,
/// `dy = sech²u du`, `ln p(y) = ln N(u; m, s) − ln sech²u`).
fn tanh_normal_entropy(m: f64, s: f64) -> f64 {
    let (us, ws) = grid(m, s);
    -integrate(
        &ws,
        us.iter()
            .map(|&u| ln_normal(u, m, s).exp() * (ln_normal(u, m, s) - ln_sech2(u))),
    )
}

#[test]
fn tanh_normal_density_and_entropy() {
    let dev = Dev::default();
    // H = ½ln(2πe) + E[ln sech²u] = 1.41894 − 0.74914 = 0.66980 (also by an independent
    // Simpson rule in Python over ±14 with 2·10⁵ intervals; the bug report rounded it to 0.6705).
    let h01 = tanh_normal_entropy(0.0, 1.0);
    assert!((h01 - 0.669_804).abs() < 1e-6, "{h01}");
    for (m, s) in TANH_NORMALS {
        let what = format!("TanhNormal({m}, {s})");
        // ∫ p(y) dy over (−1, 1), substituting y = tanh(u): ∫ p(tanh u) sech²u du.
        let (us, ws) = grid(m, s);
        let n = us.len();
        let ys: Vec<f64> = us.iter().map(|u| u.tanh()).collect();
        let dy: Vec<f64> = us.iter().map(|&u| ln_sech2(u).exp()).collect();
        let lp_y = host(tanh_normal::log_prob(
            col(&dev, &ys),
            fill(&dev, m, n),
            fill(&dev, s, n),
        ));
        close(
            integrate(&ws, lp_y.iter().zip(&dy).map(|(l, d)| l.exp() * d)),
            1.0,
            &format!("∫ {what} dy, from y"),
        );
        // the pre-tanh form used on the sampling path is the density of y too (a second
        // Jacobian would make this E[cosh²u], not 1)
        let lp_pre = host(tanh_normal::log_prob_pre(
            col(&dev, &us),
            fill(&dev, m, n),
            fill(&dev, s, n),
        ));
        close(
            integrate(&ws, lp_pre.iter().zip(&dy).map(|(l, d)| l.exp() * d)),
            1.0,
            &format!("∫ {what} dy, from u"),
        );
        // entropy: E_p[−ln p_vic(y)] with p the test's density, against −∫ p ln p
        let h_quad = tanh_normal_entropy(m, s);
        let pu: Vec<f64> = us.iter().map(|&u| ln_normal(u, m, s).exp()).collect();
        close(
            -integrate(&ws, pu.iter().zip(&lp_pre).map(|(p, l)| p * l)),
            h_quad,
            &format!("H[{what}] from u"),
        );
        close(
            -integrate(&ws, pu.iter().zip(&lp_y).map(|(p, l)| p * l)),
            h_quad,
            &format!("H[{what}] from y"),
        );
    }
}

/// End to end: the entropy term of `q(u) = TanhNormal(0, 1)` under a Flat prior, through
/// `Program::forward` (the sampling path, which reuses the pre-tanh sample), against the
/// quadrature entropy 0.6698 within 5 Monte Carlo standard errors. The standard error must
/// also be small enough to tell it from the double-Jacobian value (about −0.08).
#[test]
fn tanh_normal_entropy_through_the_lowering() {
    use crate::lower::Program;
    use crate::runtime::rng::seeded;
    use crate::train::control_batch;
    let src = r#"
model tanh_entropy {
  latent u[t] : real
  optimality O[t] : reward = 0 * u[t], alpha = 1.0
  p {
    u[t] ~ Flat
  }
  q {
    u[t] ~ TanhNormal(0, 1)
  }
  objective {
    horizon = 1
  }
}"#;
    let m = crate::compile(src, "tanh_entropy.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = p.init_params(&Dev::default(), &mut seeded(0)).unwrap();
    let term = p
        .elbo
        .terms
        .iter()
        .position(|t| t.kind.name() == "entropy")
        .expect("an entropy term");
    let batch = control_batch(&p, 50_000, 1);
    let fwd = p
        .forward::<NoneTape, _>(&store, &batch, &mut seeded(7), 0, 0.0)
        .unwrap();
    let draws = host(fwd.terms[term].clone());
    let (mean, se) = mean_se(&draws);
    let exact = tanh_normal_entropy(0.0, 1.0);
    eprintln!("TanhNormal(0, 1) entropy: vic {mean:.4} ± {se:.4}, quadrature {exact:.4}");
    assert!(5.0 * se < 0.1, "too few samples: standard error {se}");
    assert!(
        (mean - exact).abs() <= 5.0 * se,
        "entropy term {mean} ± {se}, quadrature {exact}"
    );
}

#[test]
fn uniform_density_entropy_kl() {
    let dev = Dev::default();
    let t = |v| fill(&dev, v, 1);
    for (a, b) in [(-1.0, 1.0), (0.5, 4.0), (-0.2, -0.15)] {
        let what = format!("U({a}, {b})");
        let (xs, ws) = simpson(a, b, 200);
        let n = xs.len();
        let lp = host(uniform::log_prob(
            &col(&dev, &xs),
            fill(&dev, a, n),
            fill(&dev, b, n),
        ));
        close(
            integrate(&ws, lp.iter().map(|l| l.exp())),
            1.0,
            &format!("∫ {what}"),
        );
        let out = host(uniform::log_prob(
            &col(&dev, &[a - 0.01, b + 0.01]),
            fill(&dev, a, 2),
            fill(&dev, b, 2),
        ));
        assert!(
            out.iter().all(|l| l.exp() == 0.0),
            "{what}: density outside the support {out:?}"
        );
        let dens = 1.0 / (b - a);
        let h_quad = -integrate(&ws, xs.iter().map(|_| dens * dens.ln()));
        close(
            host(uniform::entropy(t(a), t(b)))[0],
            h_quad,
            &format!("H[{what}]"),
        );
    }
    for ((qa, qb), (pa, pb)) in [
        ((0.5, 1.5), (-1.0, 4.0)),
        ((-1.0, 1.0), (-1.0, 1.0)),
        ((0.0, 0.1), (-3.0, 0.1)),
    ] {
        let (xs, ws) = simpson(qa, qb, 200);
        let (q, p) = (1.0 / (qb - qa), 1.0 / (pb - pa));
        let kl_quad = integrate(&ws, xs.iter().map(|_| q * (q / p).ln()));
        let kl_vic = host(uniform::kl(t(qa), t(qb), t(pa), t(pb)).unwrap())[0];
        close(
            kl_vic,
            kl_quad,
            &format!("KL(U({qa}, {qb}) ‖ U({pa}, {pb}))"),
        );
    }
    // q puts mass where p has none: ∫ q ln(q/0) = ∞
    assert!(uniform::kl(t(0.0), t(2.0), t(-1.0), t(1.0)).is_err());
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn bernoulli_sums_over_the_support() {
    let dev = Dev::default();
    let logits = [-3.0, -0.5, 0.0, 1.2, 4.0];
    let plogits = [0.5, 2.0, -1.0, -1.2, 3.0];
    let n = logits.len();
    let lp0 = host(bernoulli::log_prob(fill(&dev, 0.0, n), col(&dev, &logits)));
    let lp1 = host(bernoulli::log_prob(fill(&dev, 1.0, n), col(&dev, &logits)));
    let h = host(bernoulli::entropy(col(&dev, &logits)));
    let kl = host(bernoulli::kl(col(&dev, &logits), col(&dev, &plogits)));
    for i in 0..n {
        let what = format!("Bernoulli(logit {})", logits[i]);
        let (q, p) = (sigmoid(logits[i]), sigmoid(plogits[i]));
        close(lp0[i].exp() + lp1[i].exp(), 1.0, &format!("Σ {what}"));
        close(lp1[i].exp(), q, &format!("P(1) of {what}"));
        close(
            h[i],
            -(q * q.ln() + (1.0 - q) * (1.0 - q).ln()),
            &format!("H[{what}]"),
        );
        let kl_sum = q * (q / p).ln() + (1.0 - q) * ((1.0 - q) / (1.0 - p)).ln();
        close(kl[i], kl_sum, &format!("KL({what} ‖ logit {})", plogits[i]));
    }
    // two independent columns: the four outcomes sum to 1
    let l2 = from_host(&dev, vec![0.3, -1.7], 1, 2);
    let total: f64 = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
        .iter()
        .map(|x| {
            host(bernoulli::log_prob(
                from_host(&dev, x.to_vec(), 1, 2),
                l2.clone(),
            ))[0]
                .exp()
        })
        .sum();
    close(total, 1.0, "Σ over {0,1}² of Bernoulli(0.3, −1.7)");
}

#[test]
fn categorical_sums_over_the_support() {
    let dev = Dev::default();
    // G = 2 groups of K = 3 classes
    let (g, k) = (2usize, 3usize);
    let ql = [0.2, -1.0, 2.5, 0.0, 0.7, -0.3];
    let pl = [1.0, 0.0, -0.5, -2.0, 0.4, 1.1];
    let softmax = |l: &[f64]| -> Vec<f64> {
        let z: f64 = l.iter().map(|x| x.exp()).sum();
        l.iter().map(|x| x.exp() / z).collect()
    };
    let joint = |l: &[f64]| -> Vec<f64> {
        let (a, b) = (softmax(&l[..k]), softmax(&l[k..]));
        (0..k * k).map(|c| a[c / k] * b[c % k]).collect()
    };
    let (q, p) = (joint(&ql), joint(&pl));
    let t = |l: &[f64]| from_host(&dev, l.iter().map(|&x| x as f32).collect(), 1, g * k);
    let mut total = 0.0;
    for c in 0..k * k {
        let mut onehot = vec![0.0; g * k];
        onehot[c / k] = 1.0;
        onehot[k + c % k] = 1.0;
        let lp = host(categorical::log_prob(t(&onehot), t(&ql), k).unwrap())[0];
        close(
            lp.exp(),
            q[c],
            &format!("P(class {}, class {})", c / k, c % k),
        );
        total += lp.exp();
    }
    close(total, 1.0, "Σ over the 9 outcomes");
    let h_sum = -q.iter().map(|q| q * q.ln()).sum::<f64>();
    close(
        host(categorical::entropy(t(&ql), k).unwrap())[0],
        h_sum,
        "H[Categorical]",
    );
    let kl_sum: f64 = q.iter().zip(&p).map(|(q, p)| q * (q / p).ln()).sum();
    close(
        host(categorical::kl(t(&ql), t(&pl), k).unwrap())[0],
        kl_sum,
        "KL(Categorical ‖ Categorical)",
    );
}

fn ln_laplace(x: f64, loc: f64, scale: f64) -> f64 {
    -(x - loc).abs() / scale - (2.0 * scale).ln()
}

/// Simpson nodes over `[lo, hi]`, one rule per piece between the kinks (the density's corner at
/// its location), so no rule straddles a corner.
fn pieces(lo: f64, hi: f64, kinks: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut cuts = vec![lo];
    let mut ks: Vec<f64> = kinks
        .iter()
        .copied()
        .filter(|k| *k > lo && *k < hi)
        .collect();
    ks.sort_by(f64::total_cmp);
    cuts.extend(ks);
    cuts.push(hi);
    let (mut xs, mut ws) = (Vec::new(), Vec::new());
    for w in cuts.windows(2) {
        let (x, wt) = simpson(w[0], w[1], 4000);
        xs.extend(x);
        ws.extend(wt);
    }
    (xs, ws)
}

const LAPLACES: [(f64, f64); 3] = [(0.0, 1.0), (0.5, 0.3), (-1.0, 2.0)];

/// Laplace: `∫ p = 1`, `H = −∫ p ln p`, `KL = ∫ q ln(q/p)` by quadrature over ±40 scales (tail
/// mass e⁻⁴⁰), and the reparameterised sample's mean and mean absolute deviation.
#[test]
fn laplace_density_entropy_kl_and_sampling() {
    use crate::runtime::dist::laplace;
    let dev = Dev::default();
    for (m, b) in LAPLACES {
        let (xs, ws) = pieces(m - 40.0 * b, m + 40.0 * b, &[m]);
        let n = xs.len();
        assert!(
            (integrate(&ws, xs.iter().map(|&x| ln_laplace(x, m, b).exp())) - 1.0).abs() < 1e-9,
            "the rule itself"
        );
        let lp = host(laplace::log_prob(
            col(&dev, &xs),
            fill(&dev, m, n),
            fill(&dev, b, n),
        ));
        let what = format!("Laplace({m}, {b})");
        close(
            integrate(&ws, lp.iter().map(|l| l.exp())),
            1.0,
            &format!("∫ {what}"),
        );
        let h_quad = -integrate(
            &ws,
            xs.iter()
                .map(|&x| ln_laplace(x, m, b).exp() * ln_laplace(x, m, b)),
        );
        close(
            host(laplace::entropy(fill(&dev, b, 1)))[0],
            h_quad,
            &format!("H[{what}]"),
        );
        let p: Vec<f64> = xs.iter().map(|&x| ln_laplace(x, m, b).exp()).collect();
        close(
            -integrate(&ws, p.iter().zip(&lp).map(|(p, l)| p * l)),
            h_quad,
            &format!("E[−ln p_vic] of {what}"),
        );
        // Sampling: E[z] = μ and E|z − μ| = b, within 5 standard errors.
        let eps = laplace::noise(&dev, &mut crate::runtime::rng::seeded(3), 100_000, 1);
        let z = host(laplace::rsample(
            fill(&dev, m, 100_000),
            fill(&dev, b, 100_000),
            eps,
        ));
        let (mean, se) = mean_se(&z);
        assert!((mean - m).abs() <= 5.0 * se, "{what}: mean {mean} ± {se}");
        let dev_abs: Vec<f64> = z.iter().map(|v| (v - m).abs()).collect();
        let (mad, se) = mean_se(&dev_abs);
        assert!((mad - b).abs() <= 5.0 * se, "{what}: E|z − μ| {mad} ± {se}");
    }
    for (i, &(qm, qb)) in LAPLACES.iter().enumerate() {
        for &(pm, pb) in &LAPLACES[i..] {
            let (xs, ws) = pieces(qm - 40.0 * qb, qm + 40.0 * qb, &[qm, pm]);
            let kl_quad = integrate(
                &ws,
                xs.iter().map(|&x| {
                    ln_laplace(x, qm, qb).exp() * (ln_laplace(x, qm, qb) - ln_laplace(x, pm, pb))
                }),
            );
            let t = |v| fill(&dev, v, 1);
            let kl_vic = host(laplace::kl(t(qm), t(qb), t(pm), t(pb)))[0];
            close(
                kl_vic,
                kl_quad,
                &format!("KL(Laplace({qm}, {qb}) ‖ Laplace({pm}, {pb}))"),
            );
        }
    }
}

/// A Laplace latent end to end: the spec row makes `Laplace ‖ Laplace` a closed-form KL term,
/// the lowering evaluates it with the family's kernel (against the KL computed here in f64),
/// and so does the fused runtime's kernel (`fused::families`).
#[test]
fn laplace_kl_term_through_the_lowering() {
    use crate::derive::{Compute, KlForm};
    use crate::lower::{Batch, Program};
    use crate::runtime::rng::seeded;
    let src = r#"
model laplace_toy {
  observed x : real
  latent   z : real
  p { z ~ Laplace(0, 1)
      x ~ Normal(z, 1) }
  q { z ~ Laplace(0.3, 0.5) }
}"#;
    let m = crate::compile(src, "laplace_toy.vmodel").expect("compiles");
    let elbo = m.elbo();
    let ti = elbo
        .terms
        .iter()
        .position(|t| t.compute == Compute::Kl(KlForm::LaplaceLaplace))
        .expect("a closed-form Laplace KL term");
    let p = Program::new(m.ir(), &elbo).expect("lowers");
    let dev = Dev::default();
    let store = p.init_params(&dev, &mut seeded(0)).unwrap();
    let x = m.ir().var_id("x").unwrap();
    let batch = Batch {
        b: 4,
        t: 1,
        data: std::collections::HashMap::from([(x, vec![0.5; 4])]),
        mask: None,
    };
    let fwd = p
        .forward::<NoneTape, _>(&store, &batch, &mut seeded(1), 0, 0.0)
        .unwrap();
    // KL = ln(bp/bq) + |μq − μp|/bp + (bq/bp)·exp(−|μq − μp|/bq) − 1
    let exact = (1.0f64 / 0.5).ln() + 0.3 + 0.5 * (-0.3f64 / 0.5).exp() - 1.0;
    for v in host(fwd.terms[ti].clone()) {
        close(v, exact, "KL(Laplace(0.3, 0.5) ‖ Laplace(0, 1)) term");
    }
    // The fused runtime's Laplace kernels give the same term.
    let mut e = crate::fused::Engine::new(&p, &store, 4, 1, 1).expect("fused Laplace kernels");
    let f = e.forward(&p, &batch, &mut seeded(1), 0);
    close(
        f.terms[ti],
        exact,
        "fused KL(Laplace(0.3, 0.5) ‖ Laplace(0, 1)) term",
    );
}
