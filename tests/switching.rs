//! Switching models (`derive::marginal`): a discrete chain summed out by the forward algorithm
//! that conditions a continuous latent drawn from q. The bound is
//! `𝔼_q(x)[log Σ_k p(k, y, x)] − 𝔼_q[log q(x)]`; with q a point mass (its scale 1e-5) it is the
//! f64 reference written here from the model text at q's mean: the forward algorithm over the
//! chain with emissions `log p(x[t] | x[t-1], k[t])` (and, in the per-regime variant,
//! `log p(y[t] | x[t], k[t])` and `log p(x[1] | k[1])`), itself checked against the sum over all K^T regime paths, plus
//! the observed log-likelihood, minus KL(q(x[1]) ‖ N(0, 1)) (or q(x[1])'s entropy when x[1]'s
//! prior reads the regime), plus q's entropy from step 2.
//! Both runtimes to 1e-4 relative (ragged sequences too), and their gradients against central
//! finite differences of the f64 bound.

mod common;

use std::collections::HashMap;

use common::runtimes::{self, lse, softplus};
use rand::Rng;
use vic::fused::Engine;
use vic::lower::{Batch, Program};
use vic::runtime::nets::params::ParamStore;
use vic::runtime::{backward, rng, Dev};

const H: usize = 2;
const D: usize = 2;
/// q's scale (`exp(qs)`: softplus of a very negative number loses digits in f32): a point
/// mass at its mean, up to rounding-level noise.
const QS: f64 = 1e-5;

/// With `regime_y`, the observation reads the regime too (`+ E @ k[t]`, per-regime offsets)
/// and so does the initial state (`x[1] ~ Normal(B @ k[1], 1)`, a base-case emission).
fn source(k: usize, regime_y: bool) -> String {
    let (y, x1) = if regime_y {
        ("C @ x[t] + E @ k[t]", "B @ k[1]")
    } else {
        ("C @ x[t]", "0")
    };
    format!(
        r#"model sw_test {{
  dim K = {k}, H = {H}, D = {D}
  observed y[t] : real[D]
  latent   k[t] : onehot[K] via enumerate
  latent   x[t] : real[H]
  init x[0] = 0
  param pi_logits : real[K] = 0
  param LP : real[K, K] = 0
  param A  : real[H, H] = 0
  param B  : real[H, K] = 0
  param sx : real[H] = 0
  param C  : real[D, H] = 0
  param E  : real[D, K] = 0
  param sy : real[D] = 0
  param QA : real[H, H] = 0
  param QB : real[H, D] = 0
  param qc : real[H] = 0
  param qs : real[H] = 0
  p {{
    k[1] ~ Categorical(pi_logits)
    k[t] ~ Categorical(LP @ k[t-1])
    x[1] ~ Normal({x1}, 1)
    x[t] ~ Normal(A @ x[t-1] + B @ k[t], softplus(sx))
    y[t] ~ Normal({y}, softplus(sy))
  }}
  q {{
    x[t] ~ Normal(QA @ x[t-1] + QB @ y[t] + qc, exp(qs))
  }}
}}"#
    )
}

fn log_normal(x: f64, mu: f64, s: f64) -> f64 {
    let z = (x - mu) / s;
    -0.5 * z * z - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// `M @ v` for a row-major `(rows, cols)` M.
fn matvec(m: &[f64], v: &[f64], rows: usize) -> Vec<f64> {
    let cols = v.len();
    (0..rows)
        .map(|r| (0..cols).map(|c| m[r * cols + c] * v[c]).sum())
        .collect()
}

/// The parameters in f64, by store name (row-major).
#[derive(Clone)]
struct Theta {
    k: usize,
    regime_y: bool,
    p: Vec<(&'static str, Vec<f64>)>,
}

impl Theta {
    fn get(&self, name: &str) -> &[f64] {
        &self.p.iter().find(|(n, _)| *n == name).expect(name).1
    }
    fn log_a(&self, i: usize, j: usize) -> f64 {
        let (k, lp) = (self.k, self.get("param.LP"));
        let col: Vec<f64> = (0..k).map(|r| lp[r * k + i]).collect();
        lp[j * k + i] - lse(&col)
    }
    fn log_pi(&self) -> Vec<f64> {
        let pi = self.get("param.pi_logits");
        let z = lse(pi);
        pi.iter().map(|v| v - z).collect()
    }
    /// q's means (the point mass) of one sequence.
    fn xs(&self, ys: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let (qa, qb, qc) = (
            self.get("param.QA"),
            self.get("param.QB"),
            self.get("param.qc"),
        );
        let mut prev = vec![0.0; H];
        let mut out = Vec::new();
        for y in ys {
            let (a, b) = (matvec(qa, &prev, H), matvec(qb, y, H));
            let x: Vec<f64> = (0..H).map(|h| a[h] + b[h] + qc[h]).collect();
            out.push(x.clone());
            prev = x;
        }
        out
    }
    /// The log-potential of regime j at step t (0-based) given the states.
    fn emit(&self, ys: &[Vec<f64>], xs: &[Vec<f64>], t: usize, j: usize) -> f64 {
        let k = self.k;
        let mut e = 0.0;
        if t == 0 && self.regime_y {
            let b = self.get("param.B");
            for h in 0..H {
                e += log_normal(xs[0][h], b[h * k + j], 1.0);
            }
        }
        if t > 0 {
            let (a, b, sx) = (
                self.get("param.A"),
                self.get("param.B"),
                self.get("param.sx"),
            );
            let m = matvec(a, &xs[t - 1], H);
            for h in 0..H {
                e += log_normal(xs[t][h], m[h] + b[h * k + j], softplus(sx[h]));
            }
        }
        if self.regime_y {
            e += self.obs(ys, xs, t, Some(j));
        }
        e
    }
    /// `log p(y[t] | x[t] (, k[t] = j))`.
    fn obs(&self, ys: &[Vec<f64>], xs: &[Vec<f64>], t: usize, j: Option<usize>) -> f64 {
        let (c, e, sy) = (
            self.get("param.C"),
            self.get("param.E"),
            self.get("param.sy"),
        );
        let m = matvec(c, &xs[t], D);
        (0..D)
            .map(|d| {
                let off = j.map_or(0.0, |j| e[d * self.k + j]);
                log_normal(ys[t][d], m[d] + off, softplus(sy[d]))
            })
            .sum()
    }
    fn forward(&self, ys: &[Vec<f64>], xs: &[Vec<f64>]) -> f64 {
        let k = self.k;
        let lpi = self.log_pi();
        let mut alpha: Vec<f64> = (0..k).map(|j| lpi[j] + self.emit(ys, xs, 0, j)).collect();
        for t in 1..ys.len() {
            alpha = (0..k)
                .map(|j| {
                    let v: Vec<f64> = (0..k).map(|i| alpha[i] + self.log_a(i, j)).collect();
                    lse(&v) + self.emit(ys, xs, t, j)
                })
                .collect();
        }
        lse(&alpha)
    }
    fn brute(&self, ys: &[Vec<f64>], xs: &[Vec<f64>]) -> f64 {
        let (k, t) = (self.k, ys.len());
        let lpi = self.log_pi();
        let all: Vec<f64> = (0..k.pow(t as u32))
            .map(|code| {
                let path: Vec<usize> = (0..t).map(|s| (code / k.pow(s as u32)) % k).collect();
                let mut l = lpi[path[0]] + self.emit(ys, xs, 0, path[0]);
                for s in 1..t {
                    l += self.log_a(path[s - 1], path[s]) + self.emit(ys, xs, s, path[s]);
                }
                l
            })
            .collect();
        lse(&all)
    }
    /// `(bound, chain term)` of one sequence (its observed steps).
    fn bound(&self, ys: &[Vec<f64>]) -> (f64, f64) {
        let xs = self.xs(ys);
        let sq: Vec<f64> = self.get("param.qs").iter().map(|v| v.exp()).collect();
        let chain = self.forward(ys, &xs);
        let ll: f64 = if self.regime_y {
            0.0
        } else {
            (0..ys.len()).map(|t| self.obs(ys, &xs, t, None)).sum()
        };
        // KL(q(x[1]) ‖ N(0, 1)), or with x[1] inside the chain, its entropy.
        let kl1: f64 = if self.regime_y {
            0.0
        } else {
            (0..H)
                .map(|h| -sq[h].ln() + 0.5 * (sq[h] * sq[h] + xs[0][h] * xs[0][h]) - 0.5)
                .sum()
        };
        let ent_step: f64 = sq
            .iter()
            .map(|s| 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln() + s.ln())
            .sum();
        let steps = if self.regime_y {
            ys.len()
        } else {
            ys.len() - 1
        };
        let ent = ent_step * steps as f64;
        (ll + chain - kl1 + ent, chain)
    }
}

struct Case {
    prog: Program,
    store: ParamStore,
    batch: Batch,
    theta: Theta,
    /// Per sequence, its observed steps.
    seqs: Vec<Vec<Vec<f64>>>,
}

fn case(k: usize, b: usize, t: usize, seed: u64, ragged: bool, regime_y: bool) -> Case {
    let m = vic::compile(&source(k, regime_y), "sw_test.vmodel").expect("compiles");
    let prog = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let mut store = prog
        .init_params(&Dev::default(), &mut rng::seeded(1))
        .expect("params");
    let mut r = rng::seeded(seed);
    let mut normal = |s: f64| -> f64 {
        let u: f64 = r.gen_range(1e-12..1.0);
        let v: f64 = r.gen_range(0.0..1.0);
        s * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let mut rnd = |n: usize, s: f64, c: f64| -> Vec<f64> {
        (0..n).map(|_| (c + normal(s)) as f32 as f64).collect()
    };
    let qs = QS.ln();
    let p = vec![
        ("param.pi_logits", rnd(k, 1.0, 0.0)),
        ("param.LP", rnd(k * k, 1.5, 0.0)),
        ("param.A", rnd(H * H, 0.4, 0.0)),
        ("param.B", rnd(H * k, 1.0, 0.0)),
        ("param.sx", rnd(H, 0.3, 0.0)),
        ("param.C", rnd(D * H, 0.7, 0.0)),
        ("param.E", rnd(D * k, 1.0, 0.0)),
        ("param.sy", rnd(D, 0.3, 0.0)),
        ("param.QA", rnd(H * H, 0.3, 0.0)),
        ("param.QB", rnd(H * D, 0.5, 0.0)),
        ("param.qc", rnd(H, 0.3, 0.0)),
        ("param.qs", vec![qs as f32 as f64; H]),
    ];
    let theta = Theta { k, regime_y, p };
    for (name, v) in &theta.p {
        let host: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        let (_, p) = store
            .iter_mut()
            .find(|(n, _)| n.as_str() == *name)
            .expect("param");
        p.set_host(&host);
    }
    let y_id = prog.model.var_id("y").expect("y");
    let mut host = vec![0.0f32; t * b * D];
    let mut mask = vec![1.0f32; t * b];
    let mut seqs = Vec::new();
    for s in 0..b {
        let len = if ragged { t - (s % 3).min(t - 2) } else { t };
        let mut ys = Vec::new();
        for step in 0..t {
            let y: Vec<f64> = (0..D).map(|_| (normal(1.5) as f32) as f64).collect();
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
    let batch = Batch {
        b,
        t,
        data: HashMap::from([(y_id, host)]),
        mask: ragged.then_some(mask),
    };
    Case {
        prog,
        store,
        batch,
        theta,
        seqs,
    }
}

/// The index of the chain's term.
fn chain_term(c: &Case) -> usize {
    c.prog
        .elbo
        .terms
        .iter()
        .position(|t| t.kind.name() == "marginal")
        .expect("a marginal term")
}

/// `(elbo per sequence, chain term per sequence, gradients)` on the reference runtime.
#[allow(clippy::type_complexity)]
fn reference(c: &Case) -> (Vec<f32>, Vec<f32>, HashMap<String, Vec<f32>>) {
    let mut r = runtimes::reference(&c.prog, &c.store, &c.batch);
    let chain = std::mem::take(&mut r.terms[chain_term(c)]);
    (r.elbo, chain, r.grads)
}

/// `(elbo per sequence, chain term's mean, gradients)` on the fused runtime.
fn fused(c: &Case, threads: usize) -> (Vec<f32>, f64, HashMap<String, Vec<f32>>) {
    let r = runtimes::fused(&c.prog, &c.store, &c.batch, threads);
    (r.elbo, r.terms[chain_term(c)], r.grads)
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    let rel = (got - want).abs() / want.abs().max(1.0);
    assert!(rel < tol, "{what}: {got} vs exact {want} (rel {rel:.2e})");
}

#[test]
fn the_test_forward_algorithm_is_the_sum_over_all_regime_paths() {
    for regime_y in [false, true] {
        let c = case(3, 4, 6, 7, false, regime_y);
        for ys in &c.seqs {
            let xs = c.theta.xs(ys);
            let (f, b) = (c.theta.forward(ys, &xs), c.theta.brute(ys, &xs));
            assert!((f - b).abs() < 1e-10 * b.abs().max(1.0), "{f} vs {b}");
        }
    }
}

#[test]
fn the_switching_bound_matches_the_exact_reference_on_both_runtimes() {
    for (k, b, t, seed, ragged, regime_y) in [
        (2, 5, 6, 1, false, false),
        (3, 6, 12, 2, true, false),
        (2, 4, 9, 3, false, true),
        (4, 7, 20, 4, true, true),
    ] {
        let c = case(k, b, t, seed, ragged, regime_y);
        let want: Vec<(f64, f64)> = c.seqs.iter().map(|ys| c.theta.bound(ys)).collect();
        let (re, rc, _) = reference(&c);
        assert_eq!(re.len(), want.len());
        for (i, (w, (e, ch))) in want.iter().zip(re.iter().zip(&rc)).enumerate() {
            let what = format!("K = {k}, regime_y {regime_y}, sequence {i}");
            close(
                &format!("{what}: reference bound"),
                f64::from(*e),
                w.0,
                1e-4,
            );
            close(
                &format!("{what}: reference chain term"),
                f64::from(*ch),
                w.1,
                1e-4,
            );
        }
        let chain_mean = want.iter().map(|w| w.1).sum::<f64>() / want.len() as f64;
        for threads in [1, 2] {
            let (fe, fc, _) = fused(&c, threads);
            assert_eq!(fe.len(), want.len());
            for (i, (w, e)) in want.iter().zip(&fe).enumerate() {
                let what = format!("K = {k}, regime_y {regime_y}, {threads} workers, sequence {i}");
                close(&format!("{what}: fused bound"), f64::from(*e), w.0, 1e-4);
            }
            close(
                &format!("K = {k}, {threads} workers: fused chain term (mean)"),
                fc,
                chain_mean,
                1e-4,
            );
        }
    }
}

#[test]
fn switching_gradients_match_finite_differences_of_the_exact_bound() {
    for (k, ragged, regime_y) in [(2, false, false), (3, true, true)] {
        let c = case(k, 5, 8, 20 + k as u64, ragged, regime_y);
        let (_, _, rg) = reference(&c);
        let (_, _, fg) = fused(&c, 2);
        let loss = |th: &Theta| -> f64 { c.seqs.iter().map(|ys| -th.bound(ys).0).sum() };
        let mut th = c.theta.clone();
        // qs is left out: at a point mass the loss is −ln σ + rounding, its gradient trivial.
        for pi in 0..th.p.len() - 1 {
            let name = th.p[pi].0;
            let n = th.p[pi].1.len();
            let mut fd = vec![0.0f64; n];
            for (i, slot) in fd.iter_mut().enumerate() {
                let h = 1e-5;
                let x0 = th.p[pi].1[i];
                th.p[pi].1[i] = x0 + h;
                let up = loss(&th);
                th.p[pi].1[i] = x0 - h;
                let down = loss(&th);
                th.p[pi].1[i] = x0;
                *slot = (up - down) / (2.0 * h);
            }
            if !regime_y && name == "param.E" {
                assert!(fd.iter().all(|g| *g == 0.0));
            }
            let scale = fd.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            for (who, g) in [("reference", &rg[name]), ("fused", &fg[name])] {
                let err = g
                    .iter()
                    .zip(&fd)
                    .fold(0.0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()))
                    / scale;
                assert!(
                    err < 1e-3,
                    "K = {k}: {who} gradient of {name} vs finite differences: rel {err:.2e}\n{g:?}\n{fd:?}"
                );
            }
        }
    }
}

/// The chain's posterior in a switching model (`Program::chain_posterior`, at q's draw of x,
/// here a point mass): marginals and the Viterbi path against all K^T regime paths.
#[test]
fn switching_chain_posterior_matches_the_sum_over_all_regime_paths() {
    for (k, regime_y, ragged) in [(2, false, false), (3, true, true)] {
        let (b, t) = (4, 6);
        let c = case(k, b, t, 50 + k as u64, ragged, regime_y);
        let post = c
            .prog
            .chain_posterior(&c.store, &c.batch, &mut rng::seeded(3))
            .expect("chain posterior")
            .remove(0);
        for (s, ys) in c.seqs.iter().enumerate() {
            let xs = c.theta.xs(ys);
            let len = ys.len();
            let lpi = c.theta.log_pi();
            let paths: Vec<(Vec<usize>, f64)> = (0..k.pow(len as u32))
                .map(|code| {
                    let p: Vec<usize> = (0..len).map(|u| (code / k.pow(u as u32)) % k).collect();
                    let mut l = lpi[p[0]] + c.theta.emit(ys, &xs, 0, p[0]);
                    for u in 1..len {
                        l += c.theta.log_a(p[u - 1], p[u]) + c.theta.emit(ys, &xs, u, p[u]);
                    }
                    (p, l)
                })
                .collect();
            let z = lse(&paths.iter().map(|p| p.1).collect::<Vec<_>>());
            // Steps past a ragged sequence's end carry the prior forward; compare the observed.
            for u in 0..len {
                for j in 0..k {
                    let want: f64 = paths
                        .iter()
                        .filter(|p| p.0[u] == j)
                        .map(|p| (p.1 - z).exp())
                        .sum();
                    let got = post.marginals[(s * t + u) * k + j];
                    assert!(
                        (got - want).abs() < 1e-4,
                        "K = {k}, sequence {s}, step {u}, regime {j}: {got} vs {want}"
                    );
                }
            }
            if len == t {
                let best = paths
                    .iter()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .expect("a path");
                assert_eq!(&post.viterbi[s * t..(s + 1) * t], best.0.as_slice());
            }
        }
    }
}

/// A switched latent whose prior reads only the regime (`x[t] ~ Normal(B @ k[t], s)` over
/// every step, the shape of an HMM's Normal emission): the fused runtime must carry the
/// gradient into x's draw (q's parameters), as the reference does; the per-state Normal
/// tables of an observed emission have no gradient for the variable.
#[test]
fn a_switched_latent_reading_only_the_regime_trains_q_on_both_runtimes() {
    let src = r#"model sw_iid {
  dim K = 2, H = 2, D = 2
  observed y[t] : real[D]
  latent   k[t] : onehot[K] via enumerate
  latent   x[t] : real[H]
  param LP : real[K, K] = normal(0, 1)
  param B  : real[H, K] = normal(0, 1)
  param sx : real[H] = 0
  param QB : real[H, D] = normal(0, 0.5)
  param qc : real[H] = normal(0, 0.5)
  p {
    k[1] ~ Categorical(zeros(K))
    k[t] ~ Categorical(LP @ k[t-1])
    x[t] ~ Normal(B @ k[t], softplus(sx))
    y[t] ~ Normal(x[t], 1)
  }
  q {
    x[t] ~ Normal(QB @ y[t] + qc, 0.1)
  }
}"#;
    let m = vic::compile(src, "sw_iid.vmodel").expect("compiles");
    let prog = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = prog
        .init_params(&Dev::default(), &mut rng::seeded(4))
        .expect("params");
    let (b, t) = (6, 7);
    let mut r = rng::seeded(8);
    let host: Vec<f32> = (0..t * b * D).map(|_| r.gen_range(-2.0..2.0f32)).collect();
    let batch = Batch {
        b,
        t,
        data: HashMap::from([(prog.model.var_id("y").expect("y"), host)]),
        mask: None,
    };
    let traced = store.trace();
    let fwd = prog
        .forward(&traced, &batch, &mut rng::seeded(5), 0, 0.0)
        .expect("reference forward");
    let re = fwd.elbo.as_vec();
    drop(traced);
    let mut grads = backward(fwd.objective.negate());
    let rg: HashMap<String, Vec<f32>> = store.grads(&mut grads).into_iter().collect();
    let mut e = Engine::new(&prog, &store, b, t, 2).expect("builds");
    let ff = e.forward(&prog, &batch, &mut rng::seeded(5), 0);
    e.backward(&batch);
    let fg: HashMap<String, Vec<f32>> = e
        .names
        .iter()
        .cloned()
        .zip(e.grads.iter().cloned())
        .collect();
    for (a, f) in re.iter().zip(&ff.elbo) {
        assert!((a - f).abs() < 1e-4 * a.abs().max(1.0), "{a} vs {f}");
    }
    for name in ["param.QB", "param.qc", "param.B", "param.sx", "param.LP"] {
        let (a, f) = (&rg[name], &fg[name]);
        let scale = a.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        assert!(a.iter().any(|x| *x != 0.0), "{name}: no gradient");
        let err = a
            .iter()
            .zip(f)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale;
        assert!(err < 1e-4, "{name}: reference {a:?} vs fused {f:?}");
    }
}
