//! Closed-form KLs (runtime, f32) vs Monte Carlo `E_q[ln q − ln p]` with host f64 densities,
//! N = 200 000 samples per row: `|mc − cf| ≤ 5·SE + 1e-4·(1 + |cf|)` (5 standard errors plus
//! f32 rounding of the closed form).

use rand::Rng as _;
use rand_distr::StandardNormal;

use super::mean_se;
use crate::runtime::dist::{bernoulli, categorical, flat, normal, uniform};
use crate::runtime::ops::from_host;
use crate::runtime::rng::seeded;
use crate::runtime::{Dev, RtError};

const N: usize = 200_000;

fn close(mc: f64, se: f64, cf: f64, what: &str) {
    let tol = 5.0 * se + 1e-4 * (1.0 + cf.abs());
    assert!(
        (mc - cf).abs() <= tol,
        "{what}: MC {mc} ± {se}, closed form {cf}"
    );
}

fn ln_normal(x: f64, m: f64, s: f64) -> f64 {
    -0.5 * ((x - m) / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

fn ln_sigmoid(x: f64) -> f64 {
    -((-x).exp().ln_1p())
}

#[test]
fn kl_normal_normal_vs_mc() {
    let dev = Dev::default();
    let mut rng = seeded(20);
    let (rows, d) = (3, 2);
    let mut g =
        |lo: f32, hi: f32| -> Vec<f32> { (0..rows * d).map(|_| rng.gen_range(lo..hi)).collect() };
    let (ql, qs, pl, ps) = (g(-1.0, 1.0), g(0.3, 2.0), g(-1.0, 1.0), g(0.3, 2.0));
    let t = |v: &Vec<f32>| from_host(&dev, v.clone(), rows, d);
    let cf = normal::kl(t(&ql), t(&qs), t(&pl), t(&ps)).as_vec();
    let mut rng = seeded(21);
    for (r, &cf_r) in cf.iter().enumerate() {
        let xs: Vec<f64> = (0..N)
            .map(|_| {
                (0..d)
                    .map(|j| {
                        let i = r * d + j;
                        let e: f64 = rng.sample(StandardNormal);
                        let x = ql[i] as f64 + qs[i] as f64 * e;
                        ln_normal(x, ql[i] as f64, qs[i] as f64)
                            - ln_normal(x, pl[i] as f64, ps[i] as f64)
                    })
                    .sum()
            })
            .collect();
        let (m, se) = mean_se(&xs);
        close(m, se, cf_r as f64, "KL(Normal‖Normal)");
    }
}

#[test]
fn kl_normal_flat_is_minus_entropy_vs_mc() {
    let dev = Dev::default();
    let (ql, qs) = (vec![0.3f32, -1.0, 2.0], vec![0.5f32, 1.7, 0.9]);
    let h = normal::entropy(from_host(&dev, qs.clone(), 1, 3));
    let cf = flat::kl_from_entropy(h).as_vec()[0] as f64;
    let mut rng = seeded(22);
    let xs: Vec<f64> = (0..N)
        .map(|_| {
            (0..3)
                .map(|i| {
                    let e: f64 = rng.sample(StandardNormal);
                    let x = ql[i] as f64 + qs[i] as f64 * e;
                    ln_normal(x, ql[i] as f64, qs[i] as f64) // ln Flat = 0
                })
                .sum()
        })
        .collect();
    let (m, se) = mean_se(&xs);
    close(m, se, cf, "KL(Normal‖Flat)");
    assert_eq!(flat::log_prob(&dev, 4).as_vec(), vec![0.0; 4]);
}

#[test]
fn kl_bernoulli_vs_mc() {
    let dev = Dev::default();
    let (a, b) = (vec![-2.0f32, 0.5, 3.0, 0.0], vec![1.0f32, -0.5, 2.0, -4.0]);
    let cf = bernoulli::kl(
        from_host(&dev, a.clone(), 1, 4),
        from_host(&dev, b.clone(), 1, 4),
    )
    .as_vec()[0] as f64;
    let mut rng = seeded(23);
    let xs: Vec<f64> = (0..N)
        .map(|_| {
            (0..4)
                .map(|i| {
                    let (a, b) = (a[i] as f64, b[i] as f64);
                    let pa = 1.0 / (1.0 + (-a).exp());
                    let x = rng.gen::<f64>() < pa;
                    let (lq, lp) = if x {
                        (ln_sigmoid(a), ln_sigmoid(b))
                    } else {
                        (ln_sigmoid(-a), ln_sigmoid(-b))
                    };
                    lq - lp
                })
                .sum()
        })
        .collect();
    let (m, se) = mean_se(&xs);
    close(m, se, cf, "KL(Bernoulli‖Bernoulli)");
}

#[test]
fn kl_categorical_groups_vs_mc() {
    let dev = Dev::default();
    let (g, k) = (2, 3);
    let a = vec![0.5f32, -1.0, 2.0, 0.0, 0.3, -2.0];
    let b = vec![-1.0f32, 1.0, 0.0, 1.5, -0.5, 0.2];
    let cf = categorical::kl(
        from_host(&dev, a.clone(), 1, 6),
        from_host(&dev, b.clone(), 1, 6),
        k,
    )
    .unwrap()
    .as_vec()[0] as f64;
    let lsm = |v: &[f32]| -> Vec<f64> {
        let mx = v.iter().fold(f64::MIN, |m, &x| m.max(x as f64));
        let z: f64 = v.iter().map(|&x| (x as f64 - mx).exp()).sum();
        v.iter().map(|&x| x as f64 - mx - z.ln()).collect()
    };
    let (lq, lp): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (0..g)
        .map(|gi| (lsm(&a[gi * k..(gi + 1) * k]), lsm(&b[gi * k..(gi + 1) * k])))
        .unzip();
    let mut rng = seeded(24);
    let xs: Vec<f64> = (0..N)
        .map(|_| {
            (0..g)
                .map(|gi| {
                    let u: f64 = rng.gen();
                    let mut acc = 0.0;
                    let mut j = k - 1;
                    for (c, l) in lq[gi].iter().enumerate() {
                        acc += l.exp();
                        if u < acc {
                            j = c;
                            break;
                        }
                    }
                    lq[gi][j] - lp[gi][j]
                })
                .sum()
        })
        .collect();
    let (m, se) = mean_se(&xs);
    close(m, se, cf, "KL(Categorical‖Categorical)");
}

#[test]
fn kl_uniform_vs_mc_and_infinite_case() {
    let dev = Dev::default();
    let t = |v: Vec<f32>| from_host(&dev, v, 1, 2);
    let (ql, qh, pl, ph) = (
        vec![-0.5f32, 0.0],
        vec![0.5f32, 2.0],
        vec![-1.0f32, -1.0],
        vec![2.0f32, 3.0],
    );
    let cf = uniform::kl(t(ql.clone()), t(qh.clone()), t(pl.clone()), t(ph.clone()))
        .unwrap()
        .as_vec()[0] as f64;
    let mut rng = seeded(25);
    let xs: Vec<f64> = (0..N / 10)
        .map(|_| {
            (0..2)
                .map(|i| {
                    let x = ql[i] as f64 + (qh[i] - ql[i]) as f64 * rng.gen::<f64>();
                    let lq = -((qh[i] - ql[i]) as f64).ln();
                    let lp = if x >= pl[i] as f64 && x <= ph[i] as f64 {
                        -((ph[i] - pl[i]) as f64).ln()
                    } else {
                        f64::NEG_INFINITY
                    };
                    lq - lp
                })
                .sum()
        })
        .collect();
    let (m, se) = mean_se(&xs);
    close(m, se, cf, "KL(Uniform‖Uniform)");
    // q sticks out of p: +inf, reported as an error, never NaN
    let r = uniform::kl(
        t(vec![-2.0, 0.0]),
        t(qh.clone()),
        t(pl.clone()),
        t(ph.clone()),
    );
    assert!(matches!(r, Err(RtError::InfiniteKl(_))));
    let r = uniform::kl(t(ql), t(vec![0.5, 3.5]), t(pl), t(ph));
    assert!(matches!(r, Err(RtError::InfiniteKl(_))));
}
