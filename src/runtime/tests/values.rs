//! Values of densities/entropies vs host f64 formulas (relative 1e-5 + absolute 1e-5),
//! samplers' support, straight-through semantics.

use rand::Rng as _;

use crate::runtime::dist::{bernoulli, categorical, normal, tanh_normal, uniform};
use crate::runtime::nets::params::{ParamStore, Params};
use crate::runtime::ops::{from_host, stop_gradient, sum_all};
use crate::runtime::rng::seeded;
use crate::runtime::{backward, Dev};

fn approx(a: f32, b: f64, what: &str) {
    assert!(
        ((a as f64) - b).abs() <= 1e-5 + 1e-5 * b.abs(),
        "{what}: runtime {a}, reference {b}"
    );
}

#[test]
fn normal_values() {
    let dev = Dev::default();
    let (x, l, s) = (vec![0.3f32, -2.0], vec![1.0f32, 0.5], vec![0.7f32, 2.5]);
    let t = |v: &Vec<f32>| from_host(&dev, v.clone(), 1, 2);
    let lp = normal::log_prob(t(&x), t(&l), t(&s)).as_vec()[0];
    let refv: f64 = (0..2)
        .map(|i| {
            let z = (x[i] - l[i]) as f64 / s[i] as f64;
            -0.5 * z * z - (s[i] as f64).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
        })
        .sum();
    approx(lp, refv, "normal log_prob");
    let h = normal::entropy(t(&s)).as_vec()[0];
    let href: f64 = s
        .iter()
        .map(|&s| 0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln() + (s as f64).ln())
        .sum();
    approx(h, href, "normal entropy");
    // split with both links
    let hraw = from_host(&dev, vec![1.0, -2.0, 0.5, -0.5], 1, 4);
    let (loc, sc) = normal::split_loc_scale(hraw.clone(), normal::ScaleLink::Exp).unwrap();
    assert_eq!(loc.as_vec(), vec![1.0, -2.0]);
    approx(sc.as_vec()[1], (-0.5f64).exp(), "exp link");
    let (_, sc) = normal::split_loc_scale(
        hraw.clone(),
        normal::ScaleLink::Softplus { min_scale: 0.01 },
    )
    .unwrap();
    approx(
        sc.as_vec()[0],
        (1.0 + 0.5f64.exp()).ln() + 0.01,
        "softplus link",
    );
    let odd = from_host(&dev, vec![0.0; 3], 1, 3);
    assert!(normal::split_loc_scale(odd, normal::ScaleLink::Exp).is_err());
}

#[test]
fn bernoulli_values_continuous_targets() {
    let dev = Dev::default();
    let (x, l) = (vec![0.0f32, 1.0, 0.3, 1.0], vec![-2.0f32, 50.0, 0.7, -60.0]);
    let lp = bernoulli::log_prob(
        from_host(&dev, x.clone(), 1, 4),
        from_host(&dev, l.clone(), 1, 4),
    )
    .as_vec()[0];
    // −BCE: x ln σ(l) + (1 − x) ln σ(−l), with ln σ(l) = −ln(1 + e^{−l})
    let ls = |v: f64| -> f64 {
        if v > 0.0 {
            -(-v).exp().ln_1p()
        } else {
            v - v.exp().ln_1p()
        }
    };
    let r: f64 = (0..4)
        .map(|i| x[i] as f64 * ls(l[i] as f64) + (1.0 - x[i] as f64) * ls(-(l[i] as f64)))
        .sum();
    approx(lp, r, "bernoulli log_prob");
    assert!(lp.is_finite());
    let h = bernoulli::entropy(from_host(&dev, vec![0.0, 80.0], 1, 2)).as_vec()[0];
    approx(h, 2f64.ln(), "bernoulli entropy at logit 0 and saturated");
}

#[test]
fn categorical_values_sampling_enumeration() {
    let dev = Dev::default();
    let logits = from_host(&dev, vec![0.0, 1.0, 2.0, -1.0, -1.0, 3.0], 1, 6);
    let v = from_host(&dev, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0], 1, 6);
    let lp = categorical::log_prob(v, logits.clone(), 3)
        .unwrap()
        .as_vec()[0];
    let lse = |a: &[f64]| a.iter().map(|x| x.exp()).sum::<f64>().ln();
    let r = (2.0 - lse(&[0.0, 1.0, 2.0])) + (-1.0 - lse(&[-1.0, -1.0, 3.0]));
    approx(lp, r, "categorical log_prob");
    assert!(categorical::log_prob(
        from_host(&dev, vec![0.0; 5], 1, 5),
        from_host(&dev, vec![0.0; 5], 1, 5),
        3
    )
    .is_err());
    // samples are one-hot per group; frequencies match probabilities (5 SE)
    let mut rng = seeded(30);
    let n = 4000;
    let big = from_host(&dev, [0.0f32, 1.0, 2.0].repeat(n), n, 3);
    let s = categorical::sample(&big, 3, &mut rng).unwrap().as_vec();
    let mut counts = [0.0f64; 3];
    for row in s.chunks(3) {
        assert_eq!(row.iter().sum::<f32>(), 1.0);
        for j in 0..3 {
            counts[j] += row[j] as f64;
        }
    }
    let z = lse(&[0.0, 1.0, 2.0]);
    for (j, c) in counts.iter().enumerate() {
        let p = (j as f64 - z).exp();
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (c / n as f64 - p).abs() < 5.0 * se,
            "class {j}: {} vs {p}",
            c / n as f64
        );
    }
    let all = categorical::enumerate(&dev, 2, 3, 2);
    assert_eq!(all.len(), 9);
    assert_eq!(
        all[5].as_vec(),
        vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    );
}

#[test]
fn straight_through_value_and_gradient() {
    // value = hard sample, gradient = gradient of the probabilities
    let mut rng = seeded(31);
    let mut st = ParamStore::new(Dev::default());
    let l: Vec<f32> = (0..12).map(|_| rng.gen_range(-2.0..2.0)).collect();
    st.insert_host("l", &[2, 6], l).unwrap();
    let w = from_host(
        &Dev::default(),
        (0..12).map(|i| i as f32 * 0.1 - 0.5).collect(),
        2,
        6,
    );
    for family in 0..2 {
        let tr = st.trace();
        let x = tr.mat("l").unwrap();
        let (y, hard) = if family == 0 {
            let mut r = seeded(32);
            let hard = bernoulli::sample(&x, &mut seeded(32));
            (bernoulli::sample_st(x, &mut r), hard)
        } else {
            let mut r = seeded(33);
            let hard = categorical::sample(&x, 3, &mut seeded(33)).unwrap();
            (categorical::sample_st(x, 3, &mut r).unwrap(), hard)
        };
        assert_eq!(stop_gradient(&y).as_vec(), hard.as_vec());
        let g1 = st.grads(&mut backward(sum_all(y * w.clone())))["l"].clone();
        let tr = st.trace();
        let x = tr.mat("l").unwrap();
        let p = if family == 0 {
            x.sigmoid()
        } else {
            categorical::probs(x, 3).unwrap()
        };
        let g2 = st.grads(&mut backward(sum_all(p * w.clone())))["l"].clone();
        assert_eq!(g1, g2);
        assert!(g1.iter().any(|&g| g != 0.0));
    }
}

#[test]
fn uniform_support_and_tanh_jacobian() {
    let dev = Dev::default();
    let t = |v: Vec<f32>| from_host(&dev, v, 1, 2);
    let inside =
        uniform::log_prob(&t(vec![0.0, 0.5]), t(vec![-1.0, 0.0]), t(vec![1.0, 4.0])).as_vec()[0];
    approx(inside, -(2f64.ln() + 4f64.ln()), "uniform log_prob");
    let out =
        uniform::log_prob(&t(vec![2.0, 5.0]), t(vec![-1.0, 0.0]), t(vec![1.0, 4.0])).as_vec()[0];
    assert_eq!(out, f32::NEG_INFINITY);
    // stable ln(1 − tanh²u) at large |u| (naive form gives −inf at u = 20)
    let u = from_host(&dev, vec![0.5, 20.0, -20.0, 0.0], 1, 4);
    let j = tanh_normal::log_abs_det_jacobian(u).as_vec();
    approx(j[0], (1.0 - 0.5f64.tanh().powi(2)).ln(), "jacobian u=0.5");
    approx(
        j[1],
        2.0 * (2f64.ln() - 20.0 - (-40f64).exp().ln_1p()),
        "jacobian u=20",
    );
    approx(j[2], j[1] as f64, "jacobian symmetric");
    approx(j[3], 0.0, "jacobian u=0");
    // log_prob(y) equals log_prob_pre(atanh y)
    let (l, s) = (t(vec![0.1, -0.3]), t(vec![0.8, 1.2]));
    let u = vec![0.4f32, -1.1];
    let y: Vec<f32> = u.iter().map(|u| u.tanh()).collect();
    let a = tanh_normal::log_prob(t(y), l.clone(), s.clone()).as_vec()[0];
    let b = tanh_normal::log_prob_pre(t(u), l, s).as_vec()[0];
    assert!((a - b).abs() < 1e-4, "{a} vs {b}");
}

#[test]
fn gru_cell_matches_pytorch_equations() {
    // host f64 reference of torch.nn.GRUCell with our (in, 3H) layout, tol 1e-5
    use crate::runtime::nets::gru::{add_gru, gru_cell, rnn_scan};
    let (r, i_n, h_n) = (2, 3, 4);
    let mut rng = seeded(34);
    let mut st = ParamStore::new(Dev::default());
    add_gru(&mut st, "g", i_n, h_n, &mut rng).unwrap();
    let x: Vec<f32> = (0..r * i_n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let h: Vec<f32> = (0..r * h_n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let dev = Dev::default();
    let out = gru_cell(
        &st,
        "g",
        from_host(&dev, h.clone(), r, h_n),
        from_host(&dev, x.clone(), r, i_n),
    )
    .unwrap()
    .as_vec();
    let (wi, wh) = (
        st.get("g.w_i").unwrap().to_host(),
        st.get("g.w_h").unwrap().to_host(),
    );
    let (bi, bh) = (
        st.get("g.b_i").unwrap().to_host(),
        st.get("g.b_h").unwrap().to_host(),
    );
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    for b in 0..r {
        let gate = |j: usize| -> (f64, f64) {
            let gi = bi[j] as f64
                + (0..i_n)
                    .map(|k| x[b * i_n + k] as f64 * wi[k * 3 * h_n + j] as f64)
                    .sum::<f64>();
            let gh = bh[j] as f64
                + (0..h_n)
                    .map(|k| h[b * h_n + k] as f64 * wh[k * 3 * h_n + j] as f64)
                    .sum::<f64>();
            (gi, gh)
        };
        for u in 0..h_n {
            let (ri, rh) = gate(u);
            let (zi, zh) = gate(h_n + u);
            let (ni, nh) = gate(2 * h_n + u);
            let rr = sig(ri + rh);
            let z = sig(zi + zh);
            let n = (ni + rr * nh).tanh();
            let want = (1.0 - z) * n + z * h[b * h_n + u] as f64;
            approx(out[b * h_n + u], want, "gru cell");
        }
    }
    // scan: reverse over [x, x] from h equals two cells applied to the reversed sequence
    let xs = vec![
        from_host(&dev, x.clone(), r, i_n),
        from_host(&dev, vec![0.5; r * i_n], r, i_n),
    ];
    let hs = rnn_scan(&st, "g", from_host(&dev, h.clone(), r, h_n), xs, true).unwrap();
    let h1 = gru_cell(
        &st,
        "g",
        from_host(&dev, h, r, h_n),
        from_host(&dev, vec![0.5; r * i_n], r, i_n),
    )
    .unwrap();
    assert_eq!(hs[1].as_vec(), h1.as_vec());
    let h0 = gru_cell(&st, "g", h1, from_host(&dev, x, r, i_n)).unwrap();
    assert_eq!(hs[0].as_vec(), h0.as_vec());
}
