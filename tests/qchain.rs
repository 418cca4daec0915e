//! Exact enumeration over a q chain (`derive::marginal::QChain`): a one-hot chain `via
//! enumerate` whose q is itself a first-order chain of Categoricals reading data. The bound
//! `𝔼_q[log p(k, y) − log q(k)]` is summed over q's chain with q's forward marginals; here it
//! is checked against the brute-force sum over all K^T paths written in the test (ragged
//! sequences: over the observed steps only), and its gradients against central finite
//! differences of that sum, on both runtimes (the fused one's `QChainOp` has a hand-written
//! backward).

mod common;

use std::collections::HashMap;

use common::runtimes::{self, lse};
use rand::Rng;

use vic::lower::{Batch, Program};
use vic::runtime::{rng, Dev};

const D: usize = 2;

fn source(k: usize) -> String {
    format!(
        r#"model qhmm {{
  dim K = {k}, D = {D}
  observed y[t] : real[D]
  latent   k[t] : onehot[K] via enumerate
  param pi_logits : real[K] = 0
  param LP : real[K, K] = 0
  param MU : real[D, K] = 0
  param QI : real[K, D] = 0
  param QT : real[K, K] = 0
  param QY : real[K, D] = 0
  p {{
    k[1] ~ Categorical(pi_logits)
    k[t] ~ Categorical(LP @ k[t-1])
    y[t] ~ Normal(MU @ k[t], 1)
  }}
  q {{
    k[1] ~ Categorical(QI @ y[1])
    k[t] ~ Categorical(QT @ k[t-1] + QY @ y[t])
  }}
}}"#
    )
}

const NAMES: [&str; 6] = [
    "param.pi_logits",
    "param.LP",
    "param.MU",
    "param.QI",
    "param.QT",
    "param.QY",
];

fn log_softmax(x: &[f64]) -> Vec<f64> {
    let z = lse(x);
    x.iter().map(|v| v - z).collect()
}

/// The parameters in f64, in `NAMES` order, row-major.
#[derive(Clone)]
struct Theta {
    k: usize,
    p: Vec<Vec<f64>>,
}

impl Theta {
    fn col(&self, which: usize, rows: usize, cols: usize, c: usize) -> Vec<f64> {
        (0..rows).map(|r| self.p[which][r * cols + c]).collect()
    }
    /// `M @ y` for a `(K, D)` matrix.
    fn mat_y(&self, which: usize, y: &[f64]) -> Vec<f64> {
        (0..self.k)
            .map(|r| (0..D).map(|d| self.p[which][r * D + d] * y[d]).sum())
            .collect()
    }
    /// `Σ_path q(path) (log p(path, y) − log q(path))` over all K^T paths.
    fn brute(&self, ys: &[Vec<f64>]) -> f64 {
        let (k, t) = (self.k, ys.len());
        let lpi = log_softmax(&self.p[0]);
        let la = |i: usize, j: usize| log_softmax(&self.col(1, k, k, i))[j];
        let emit = |s: usize, j: usize| -> f64 {
            (0..D)
                .map(|d| {
                    let z = ys[s][d] - self.p[2][d * k + j];
                    -0.5 * z * z - 0.5 * (2.0 * std::f64::consts::PI).ln()
                })
                .sum()
        };
        let lq1 = log_softmax(&self.mat_y(3, &ys[0]));
        let lq = |s: usize, i: usize, j: usize| -> f64 {
            let qy = self.mat_y(5, &ys[s]);
            let l: Vec<f64> = (0..k).map(|r| self.p[4][r * k + i] + qy[r]).collect();
            log_softmax(&l)[j]
        };
        let mut total = 0.0;
        for code in 0..k.pow(t as u32) {
            let path: Vec<usize> = (0..t).map(|s| (code / k.pow(s as u32)) % k).collect();
            let mut lp = lpi[path[0]] + emit(0, path[0]);
            let mut lqv = lq1[path[0]];
            for s in 1..t {
                lp += la(path[s - 1], path[s]) + emit(s, path[s]);
                lqv += lq(s, path[s - 1], path[s]);
            }
            total += lqv.exp() * (lp - lqv);
        }
        total
    }
}

struct Case {
    prog: Program,
    store: vic::runtime::nets::params::ParamStore,
    batch: Batch,
    theta: Theta,
    seqs: Vec<Vec<Vec<f64>>>,
}

fn case(k: usize, b: usize, t: usize, seed: u64, ragged: bool) -> Case {
    let m = vic::compile(&source(k), "qhmm.vmodel").expect("compiles");
    let prog = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let mut store = prog
        .init_params(&Dev::default(), &mut rng::seeded(1))
        .expect("params");
    let mut r = rng::seeded(seed);
    let sizes = [k, k * k, D * k, k * D, k * k, k * D];
    let p: Vec<Vec<f64>> = sizes
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| r.gen_range(-1.5..1.5f64) as f32 as f64)
                .collect()
        })
        .collect();
    for (name, v) in NAMES.iter().zip(&p) {
        let host: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        let (_, param) = store
            .iter_mut()
            .find(|(n, _)| n.as_str() == *name)
            .expect("param");
        param.set_host(&host);
    }
    let y_id = prog.model.var_id("y").expect("y");
    let mut host = vec![0.0f32; t * b * D];
    let mut mask = vec![1.0f32; t * b];
    let mut seqs = Vec::new();
    for s in 0..b {
        let len = if ragged { t - (s % 3).min(t - 2) } else { t };
        let mut ys = Vec::new();
        for step in 0..t {
            let y: Vec<f64> = (0..D)
                .map(|_| r.gen_range(-2.0..2.0f64) as f32 as f64)
                .collect();
            for d in 0..D {
                host[(step * b + s) * D + d] = y[d] as f32;
            }
            if step < len {
                ys.push(y);
            } else {
                mask[step * b + s] = 0.0;
            }
        }
        seqs.push(ys);
    }
    Case {
        prog,
        store,
        batch: Batch {
            b,
            t,
            data: HashMap::from([(y_id, host)]),
            mask: ragged.then_some(mask),
        },
        theta: Theta { k, p },
        seqs,
    }
}

fn reference(c: &Case) -> (Vec<f32>, HashMap<String, Vec<f32>>) {
    let r = runtimes::reference(&c.prog, &c.store, &c.batch);
    (r.elbo, r.grads)
}

fn fused(c: &Case, threads: usize) -> (Vec<f32>, HashMap<String, Vec<f32>>) {
    let r = runtimes::fused(&c.prog, &c.store, &c.batch, threads);
    (r.elbo, r.grads)
}

#[test]
fn the_q_chain_bound_is_the_sum_over_all_paths() {
    for (k, b, t, seed, ragged) in [(2, 4, 6, 1, false), (3, 5, 5, 2, true), (4, 3, 4, 3, false)] {
        let c = case(k, b, t, seed, ragged);
        let (re, _) = reference(&c);
        for (who, elbo) in [
            ("reference", re),
            ("fused", fused(&c, 1).0),
            ("fused ×2", fused(&c, 2).0),
        ] {
            assert_eq!(elbo.len(), b);
            for (s, ys) in c.seqs.iter().enumerate() {
                let want = c.theta.brute(ys);
                let got = f64::from(elbo[s]);
                let rel = (got - want).abs() / want.abs().max(1.0);
                assert!(
                    rel < 1e-4,
                    "{who}, K = {k}, sequence {s}: {got} vs all paths {want} (rel {rel:.2e})"
                );
            }
        }
    }
}

#[test]
fn q_chain_gradients_match_finite_differences_of_the_sum_over_all_paths() {
    let c = case(3, 4, 5, 7, true);
    let (_, rg) = reference(&c);
    let (_, fg) = fused(&c, 2);
    let loss = |th: &Theta| -> f64 { c.seqs.iter().map(|ys| -th.brute(ys)).sum() };
    let mut th = c.theta.clone();
    for (pi, name) in NAMES.iter().enumerate() {
        let fd: Vec<f64> = (0..th.p[pi].len())
            .map(|i| {
                let (h, x0) = (1e-5, th.p[pi][i]);
                th.p[pi][i] = x0 + h;
                let up = loss(&th);
                th.p[pi][i] = x0 - h;
                let down = loss(&th);
                th.p[pi][i] = x0;
                (up - down) / (2.0 * h)
            })
            .collect();
        let scale = fd.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for (who, g) in [("reference", &rg), ("fused", &fg)] {
            let err = g[*name]
                .iter()
                .zip(&fd)
                .fold(0.0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()))
                / scale;
            assert!(
                err < 2e-4,
                "{who}: {name}: gradient vs finite differences rel {err:.2e}\n{:?}\n{fd:?}",
                g[*name]
            );
        }
    }
}

/// The bound is not the evidence (q is a chain, not the posterior): `vic elbo` shows the
/// expectation over q and `≤`; the fused runtime runs it.
#[test]
fn elbo_shows_the_q_chain_and_the_fused_runtime_declares_it() {
    let m = vic::compile(&source(3), "qhmm.vmodel").expect("compiles");
    let elbo = m.elbo();
    assert_eq!(elbo.terms.len(), 1);
    assert_eq!(elbo.terms[0].kind.name(), "marginal");
    assert!(!vic::derive::marginal::exact(m.ir()));
    let text = vic::render::render(m.ir(), &elbo, vic::render::Format::Text, false);
    assert!(
        text.contains("− log q(k[1] | y[1]) − Σ_{t=2..T} log q(k[t] | k[t-1], y[t]) ]"),
        "{text}"
    );
    assert!(text.contains("≤ log p(y[1:T])"), "{text}");
    let prog = Program::new(m.ir(), &elbo).expect("lowers");
    assert!(vic::fused::caps::support(&prog).is_ok());
}
