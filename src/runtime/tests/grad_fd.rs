//! Gradients vs central finite differences (f32, step 5e-3, rtol 1e-2, atol 1e-3 unless
//! stated).

use super::{check_grads, store_with};
use crate::runtime::dist::{bernoulli, categorical, normal, tanh_normal, uniform};
use crate::runtime::nets::gru::{add_gru, gru_cell, rnn_scan};
use crate::runtime::nets::mlp::{add_mlp, mlp_forward, Activation};
use crate::runtime::nets::params::Params;
use crate::runtime::ops::{from_host, log_sigmoid, softplus};
use crate::runtime::rng::{normal_noise, seeded, uniform_noise};
use crate::runtime::Dev;

const H: f32 = 5e-3;
const RTOL: f64 = 1e-2;
const ATOL: f64 = 1e-3;

fn pos(x: crate::runtime::T2<crate::runtime::Tp>) -> crate::runtime::T2<crate::runtime::Tp> {
    softplus(x) + 0.2
}

#[test]
fn softplus_grad() {
    let mut rng = seeded(1);
    let mut s = store_with(&[("x", 3, 4, -4.0, 4.0)], &mut rng);
    // include large magnitudes: the stable form must not overflow
    s.get_mut("x").unwrap().set_host(&[
        -30.0, 30.0, -4.0, 4.0, 0.3, -0.3, 2.0, -2.0, 1.0, -1.0, 0.05, 12.0,
    ]);
    check_grads(&s, |p| softplus(p.mat("x").unwrap()), H, RTOL, ATOL);
    let v = softplus(s.mat("x").unwrap().clone()).as_vec();
    // without log1p the value is accurate to ~1e-7 absolute (ln(1 + 9e-14) rounds to 0)
    assert!((v[0] - 9.357623e-14).abs() < 1e-7 && (v[1] - 30.0).abs() < 1e-5);
}

/// softplus and log σ are smooth: at exactly 0 (the default initial value of a parameter)
/// their derivatives are σ(0) = ½ and σ(−0) = ½, against central differences and the closed
/// form. Built from `relu` and `abs`, dfdx gave both a zero derivative there, and a parameter
/// initialised at 0 inside `softplus` never trained.
#[test]
fn softplus_and_log_sigmoid_grad_at_zero() {
    let mut rng = seeded(1);
    let mut s = store_with(&[("x", 1, 5, -1.0, 1.0)], &mut rng);
    s.get_mut("x")
        .unwrap()
        .set_host(&[0.0, -0.0, 1e-6, -1e-6, 0.5]);
    check_grads(&s, |p| softplus(p.mat("x").unwrap()), H, RTOL, 1e-4);
    check_grads(&s, |p| log_sigmoid(p.mat("x").unwrap()), H, RTOL, 1e-4);
    for (f, want) in [(0usize, 0.5f32), (1, 0.5)] {
        let tr = s.trace();
        let y = if f == 0 {
            softplus(tr.mat("x").unwrap())
        } else {
            log_sigmoid(tr.mat("x").unwrap())
        };
        let mut grads = crate::runtime::backward(crate::runtime::ops::sum_all(y));
        let g = s.grads(&mut grads);
        let gx = &g["x"];
        assert!(
            (gx[0] - want).abs() < 1e-6 && (gx[1] - want).abs() < 1e-6,
            "d/dx at 0: {gx:?}, want {want}"
        );
    }
}

/// Smallest |pre-activation| over the hidden layers of `net` on input `x`.
fn min_abs_preact(s: &crate::runtime::nets::params::ParamStore, act: Activation) -> f32 {
    use crate::runtime::nets::mlp::activate;
    use crate::runtime::ops::affine;
    let mut h = s.mat("x").unwrap().clone();
    let mut m = f32::MAX;
    for i in 0..2 {
        let w = s.mat(&format!("net.l{i}.w")).unwrap().clone();
        let b = s.vector(&format!("net.l{i}.b")).unwrap().clone();
        let pre = affine(h, w, b);
        m = pre.as_vec().iter().fold(m, |m, v| m.min(v.abs()));
        h = activate(pre, act);
    }
    m
}

#[test]
fn mlp_grad_all_activations() {
    for act in [
        Activation::Relu,
        Activation::Tanh,
        Activation::Elu,
        Activation::Silu,
        Activation::None,
    ] {
        // relu/elu have a kink at 0: use the first seed whose pre-activations all stay more
        // than 4h away from it (central differences straddling a kink are meaningless)
        let s = (2..40)
            .map(|seed| {
                let mut rng = seeded(seed);
                let mut s = store_with(&[("x", 4, 3, -1.0, 1.0)], &mut rng);
                add_mlp(&mut s, "net", &[3, 5, 4, 2], &mut rng).unwrap();
                s
            })
            .find(|s| min_abs_preact(s, act) > 4.0 * H)
            .expect("a kink-free seed");
        check_grads(
            &s,
            |p| mlp_forward(p, "net", p.mat("x").unwrap(), act).unwrap(),
            H,
            RTOL,
            ATOL,
        );
    }
}

#[test]
fn gru_cell_grad() {
    let mut rng = seeded(3);
    let mut s = store_with(&[("x", 3, 2, -1.0, 1.0), ("h", 3, 4, -1.0, 1.0)], &mut rng);
    add_gru(&mut s, "g", 2, 4, &mut rng).unwrap();
    check_grads(
        &s,
        |p| gru_cell(p, "g", p.mat("h").unwrap(), p.mat("x").unwrap()).unwrap(),
        H,
        RTOL,
        ATOL,
    );
}

#[test]
fn rnn_scan_grad_both_directions() {
    for reverse in [false, true] {
        let mut rng = seeded(4);
        let mut s = store_with(
            &[
                ("x0", 2, 2, -1.0, 1.0),
                ("x1", 2, 2, -1.0, 1.0),
                ("x2", 2, 2, -1.0, 1.0),
            ],
            &mut rng,
        );
        add_gru(&mut s, "g", 2, 3, &mut rng).unwrap();
        check_grads(
            &s,
            |p| {
                let xs = vec![
                    p.mat("x0").unwrap(),
                    p.mat("x1").unwrap(),
                    p.mat("x2").unwrap(),
                ];
                let h0 = p.input(from_host(p.device(), vec![0.0; 6], 2, 3));
                let hs = rnn_scan(p, "g", h0, xs, reverse).unwrap();
                crate::runtime::nets::gru::stack_time(hs).unwrap()
            },
            H,
            RTOL,
            ATOL,
        );
    }
}

#[test]
fn normal_grads() {
    let mut rng = seeded(5);
    let s = store_with(
        &[
            ("x", 3, 2, -2.0, 2.0),
            ("ql", 3, 2, -1.0, 1.0),
            ("qs", 3, 2, -1.0, 1.0),
            ("pl", 3, 2, -1.0, 1.0),
            ("ps", 3, 2, -1.0, 1.0),
        ],
        &mut rng,
    );
    let m = |p: &crate::runtime::nets::params::Traced, n: &str| p.mat(n).unwrap();
    check_grads(
        &s,
        |p| normal::log_prob(m(p, "x"), m(p, "ql"), pos(m(p, "qs"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(&s, |p| normal::entropy(pos(m(p, "qs"))), H, RTOL, ATOL);
    check_grads(
        &s,
        |p| normal::kl(m(p, "ql"), pos(m(p, "qs")), m(p, "pl"), pos(m(p, "ps"))),
        H,
        RTOL,
        ATOL,
    );
    let eps = normal_noise(&Dev::default(), &mut seeded(6), 3, 2);
    check_grads(
        &s,
        |p| normal::rsample(m(p, "ql"), pos(m(p, "qs")), eps.clone()),
        H,
        RTOL,
        ATOL,
    );
    // rsample path into a log-density (the ELBO pattern: z used twice)
    check_grads(
        &s,
        |p| {
            let z = normal::rsample(m(p, "ql"), pos(m(p, "qs")), eps.clone());
            normal::log_prob(z.clone(), m(p, "pl"), pos(m(p, "ps")))
                - normal::log_prob(z, m(p, "ql"), pos(m(p, "qs")))
        },
        H,
        RTOL,
        ATOL,
    );
}

#[test]
fn split_loc_scale_grads() {
    let mut rng = seeded(7);
    let s = store_with(&[("h", 3, 4, -1.5, 1.5), ("x", 3, 2, -1.0, 1.0)], &mut rng);
    for link in [
        normal::ScaleLink::Softplus { min_scale: 0.1 },
        normal::ScaleLink::Exp,
    ] {
        check_grads(
            &s,
            |p| {
                let (loc, scale) = normal::split_loc_scale(p.mat("h").unwrap(), link).unwrap();
                normal::log_prob(p.mat("x").unwrap(), loc, scale)
            },
            H,
            RTOL,
            ATOL,
        );
    }
}

#[test]
fn bernoulli_grads() {
    let mut rng = seeded(8);
    let s = store_with(
        &[
            ("x", 3, 3, 0.0, 1.0),
            ("a", 3, 3, -3.0, 3.0),
            ("b", 3, 3, -3.0, 3.0),
        ],
        &mut rng,
    );
    check_grads(
        &s,
        |p| bernoulli::log_prob(p.mat("x").unwrap(), p.mat("a").unwrap()),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &s,
        |p| bernoulli::entropy(p.mat("a").unwrap()),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &s,
        |p| bernoulli::kl(p.mat("a").unwrap(), p.mat("b").unwrap()),
        H,
        RTOL,
        ATOL,
    );
}

#[test]
fn categorical_grads() {
    let mut rng = seeded(9);
    let s = store_with(
        &[
            ("a", 2, 6, -2.0, 2.0),
            ("b", 2, 6, -2.0, 2.0),
            ("v", 2, 6, 0.0, 1.0),
        ],
        &mut rng,
    );
    let k = 3;
    check_grads(
        &s,
        |p| categorical::log_prob(p.mat("v").unwrap(), p.mat("a").unwrap(), k).unwrap(),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &s,
        |p| categorical::entropy(p.mat("a").unwrap(), k).unwrap(),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &s,
        |p| categorical::kl(p.mat("a").unwrap(), p.mat("b").unwrap(), k).unwrap(),
        H,
        RTOL,
        ATOL,
    );
}

#[test]
fn uniform_grads() {
    let mut rng = seeded(10);
    let mut s = store_with(
        &[("lo", 2, 2, -2.0, -1.0), ("hi", 2, 2, 1.0, 2.0)],
        &mut rng,
    );
    let mut s2 = store_with(
        &[("plo", 2, 2, -4.0, -3.0), ("phi", 2, 2, 3.0, 4.0)],
        &mut rng,
    );
    for (n, p) in s2.iter_mut() {
        s.insert_host(n, &p.shape(), p.to_host()).unwrap();
    }
    let x = from_host(&Dev::default(), vec![0.0, 0.5, -0.5, 0.9], 2, 2);
    check_grads(
        &s,
        |p| uniform::log_prob(&x, p.mat("lo").unwrap(), p.mat("hi").unwrap()),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &s,
        |p| uniform::entropy(p.mat("lo").unwrap(), p.mat("hi").unwrap()),
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &s,
        |p| {
            uniform::kl(
                p.mat("lo").unwrap(),
                p.mat("hi").unwrap(),
                p.mat("plo").unwrap(),
                p.mat("phi").unwrap(),
            )
            .unwrap()
        },
        H,
        RTOL,
        ATOL,
    );
    let u = uniform_noise(&Dev::default(), &mut seeded(11), 2, 2);
    check_grads(
        &s,
        |p| uniform::rsample(p.mat("lo").unwrap(), p.mat("hi").unwrap(), u.clone()),
        H,
        RTOL,
        ATOL,
    );
    let _ = &mut s2;
}

#[test]
fn tanh_normal_grads() {
    let mut rng = seeded(12);
    let s = store_with(
        &[
            ("l", 3, 2, -1.0, 1.0),
            ("s", 3, 2, -1.0, 1.0),
            ("y", 3, 2, -0.9, 0.9),
            ("u", 3, 2, -3.0, 3.0),
        ],
        &mut rng,
    );
    let eps = normal_noise(&Dev::default(), &mut seeded(13), 3, 2);
    check_grads(
        &s,
        |p| tanh_normal::rsample(p.mat("l").unwrap(), pos(p.mat("s").unwrap()), eps.clone()).0,
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &s,
        |p| {
            tanh_normal::log_prob_pre(
                p.mat("u").unwrap(),
                p.mat("l").unwrap(),
                pos(p.mat("s").unwrap()),
            )
        },
        H,
        RTOL,
        ATOL,
    );
    check_grads(
        &s,
        |p| {
            tanh_normal::log_prob(
                p.mat("y").unwrap(),
                p.mat("l").unwrap(),
                pos(p.mat("s").unwrap()),
            )
        },
        H,
        RTOL,
        ATOL,
    );
}

#[test]
fn laplace_grads() {
    use crate::runtime::dist::laplace;
    let mut rng = seeded(8);
    let s = store_with(
        &[
            ("x", 3, 2, -2.0, 2.0),
            ("ql", 3, 2, -1.0, 1.0),
            ("qs", 3, 2, -1.0, 1.0),
            ("pl", 3, 2, -1.0, 1.0),
            ("ps", 3, 2, -1.0, 1.0),
        ],
        &mut rng,
    );
    let host = |n: &str| s.mat(n).unwrap().as_vec();
    // |x − μ| and |μq − μp| have kinks at 0: finite differences need them away from it.
    let gap = |a: &str, b: &str| {
        host(a)
            .iter()
            .zip(host(b))
            .fold(f32::MAX, |m, (x, y)| m.min((x - y).abs()))
    };
    assert!(gap("x", "ql") > 10.0 * H && gap("ql", "pl") > 10.0 * H);
    let m = |p: &crate::runtime::nets::params::Traced, n: &str| p.mat(n).unwrap();
    check_grads(
        &s,
        |p| laplace::log_prob(m(p, "x"), m(p, "ql"), pos(m(p, "qs"))),
        H,
        RTOL,
        ATOL,
    );
    check_grads(&s, |p| laplace::entropy(pos(m(p, "qs"))), H, RTOL, ATOL);
    check_grads(
        &s,
        |p| laplace::kl(m(p, "ql"), pos(m(p, "qs")), m(p, "pl"), pos(m(p, "ps"))),
        H,
        RTOL,
        ATOL,
    );
    let eps = laplace::noise(&Dev::default(), &mut seeded(9), 3, 2);
    check_grads(
        &s,
        |p| laplace::rsample(m(p, "ql"), pos(m(p, "qs")), eps.clone()),
        H,
        RTOL,
        ATOL,
    );
}
