//! Discrete chains summed out of p (`derive::marginal`, the forward algorithm) against a
//! forward algorithm written here in f64 from the model text (itself checked against the
//! brute-force sum over all K^T paths): log p(y) per sequence on both runtimes to 1e-4
//! relative on random parameters (ragged sequences too), the gradients of both runtimes
//! against each other and against central finite differences of the f64 forward algorithm,
//! `vic elbo` showing the term, and `vic eval` reporting the evidence with method "forward".
//! The chain's posterior (`Program::chain_posterior`): marginals and the Viterbi path against
//! the sum over all K^T paths (K = 1 too) and a probability-space forward–backward written
//! here; `vic sample --posterior` writes them.

mod common;

use std::collections::HashMap;

use common::runtimes::{self, lse, softplus};
use rand::Rng;
use vic::fused::Engine;
use vic::lower::{Batch, Program};
use vic::runtime::nets::params::ParamStore;
use vic::runtime::{rng, Dev};

/// K states, D = 2; `LP @ k[t-1]` is column `k[t-1]` of LP (the logits of the next state), as
/// the W8 peers write it; MU and LSD are D × K (column j: state j's mean and scale logits).
/// With `split`, the same emission written as one head `Normal.split(concat(μ, ρ))` (scale
/// softplus(ρ)): the fused runtime evaluates it per state through the general ops instead of
/// the per-state tables of a Normal(loc, scale) that reads only k[t].
fn source(k: usize) -> String {
    source_with(k, false)
}

fn source_with(k: usize, split: bool) -> String {
    let emission = if split {
        "Normal.split(concat(MU @ k[t], LSD @ k[t]))"
    } else {
        "Normal(MU @ k[t], softplus(LSD @ k[t]))"
    };
    format!(
        r#"model hmm_test {{
  dim K = {k}, D = 2
  observed y[t] : real[D]
  latent   k[t] : onehot[K] via enumerate
  param pi_logits : real[K] = 0
  param LP  : real[K, K] = 0
  param MU  : real[D, K] = normal(0, 1)
  param LSD : real[D, K] = 0
  p {{
    k[1] ~ Categorical(pi_logits)
    k[t] ~ Categorical(LP @ k[t-1])
    y[t] ~ {emission}
  }}
}}"#
    )
}

/// The parameters in f64: pi (K), LP (K×K row-major), MU (D×K), LSD (D×K).
#[derive(Clone)]
struct Theta {
    k: usize,
    pi: Vec<f64>,
    lp: Vec<f64>,
    mu: Vec<f64>,
    lsd: Vec<f64>,
}

const D: usize = 2;

impl Theta {
    fn log_pi(&self) -> Vec<f64> {
        let z = lse(&self.pi);
        self.pi.iter().map(|v| v - z).collect()
    }
    /// log A[i][j] = log p(k[t] = j | k[t-1] = i) = LP[j][i] − logsumexp_j' LP[j'][i].
    fn log_a(&self, i: usize, j: usize) -> f64 {
        let k = self.k;
        let col: Vec<f64> = (0..k).map(|r| self.lp[r * k + i]).collect();
        self.lp[j * k + i] - lse(&col)
    }
    /// log N(y; MU[:, j], softplus(LSD[:, j])) summed over D.
    fn emit(&self, y: &[f64], j: usize) -> f64 {
        let k = self.k;
        (0..D)
            .map(|d| {
                let s = softplus(self.lsd[d * k + j]);
                let z = (y[d] - self.mu[d * k + j]) / s;
                -0.5 * z * z - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            })
            .sum()
    }
    /// The f64 forward algorithm of one sequence `ys[t]` (a step with `obs[t] = false` emits
    /// nothing).
    fn log_p(&self, ys: &[Vec<f64>], obs: &[bool]) -> f64 {
        let k = self.k;
        let e = |t: usize, j: usize| if obs[t] { self.emit(&ys[t], j) } else { 0.0 };
        let lpi = self.log_pi();
        let mut alpha: Vec<f64> = (0..k).map(|j| lpi[j] + e(0, j)).collect();
        for t in 1..ys.len() {
            alpha = (0..k)
                .map(|j| {
                    let terms: Vec<f64> = (0..k).map(|i| alpha[i] + self.log_a(i, j)).collect();
                    lse(&terms) + e(t, j)
                })
                .collect();
        }
        lse(&alpha)
    }
    /// The sum over all K^T paths (for small T).
    fn brute(&self, ys: &[Vec<f64>]) -> f64 {
        let (k, t) = (self.k, ys.len());
        let lpi = self.log_pi();
        let mut all = Vec::new();
        for code in 0..k.pow(t as u32) {
            let path: Vec<usize> = (0..t).map(|s| (code / k.pow(s as u32)) % k).collect();
            let mut l = lpi[path[0]] + self.emit(&ys[0], path[0]);
            for s in 1..t {
                l += self.log_a(path[s - 1], path[s]) + self.emit(&ys[s], path[s]);
            }
            all.push(l);
        }
        lse(&all)
    }
    fn flat_mut(&mut self) -> Vec<(&'static str, &mut Vec<f64>)> {
        vec![
            ("param.LP", &mut self.lp),
            ("param.LSD", &mut self.lsd),
            ("param.MU", &mut self.mu),
            ("param.pi_logits", &mut self.pi),
        ]
    }
}

struct Case {
    prog: Program,
    store: ParamStore,
    batch: Batch,
    theta: Theta,
    /// Per sequence, its steps and which are observed.
    seqs: Vec<(Vec<Vec<f64>>, Vec<bool>)>,
}

fn case(k: usize, b: usize, t: usize, seed: u64, ragged: bool) -> Case {
    case_with(k, b, t, seed, ragged, false)
}

fn case_with(k: usize, b: usize, t: usize, seed: u64, ragged: bool, split: bool) -> Case {
    let m = vic::compile(&source_with(k, split), "hmm_test.vmodel").expect("compiles");
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
    let f32s = |v: Vec<f64>| -> Vec<f64> { v.iter().map(|x| *x as f32 as f64).collect() };
    let theta = Theta {
        k,
        pi: f32s((0..k).map(|_| normal(1.0)).collect()),
        lp: f32s((0..k * k).map(|_| normal(2.0)).collect()),
        mu: f32s((0..D * k).map(|_| normal(2.0)).collect()),
        lsd: f32s((0..D * k).map(|_| normal(0.5)).collect()),
    };
    let mut th = theta.clone();
    for (name, v) in th.flat_mut() {
        let host: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        let (_, p) = store
            .iter_mut()
            .find(|(n, _)| n.as_str() == name)
            .expect("param");
        p.set_host(&host);
    }
    let y_id = prog.model.var_id("y").expect("y");
    let mut host = vec![0.0f32; t * b * D];
    let mut mask = vec![1.0f32; t * b];
    let mut seqs = Vec::new();
    for s in 0..b {
        let len = if ragged { t - (s % 3).min(t - 1) } else { t };
        let mut ys = Vec::new();
        let mut obs = Vec::new();
        for step in 0..t {
            let y: Vec<f64> = (0..D).map(|_| (normal(2.5) as f32) as f64).collect();
            for d in 0..D {
                host[(step * b + s) * D + d] = y[d] as f32;
            }
            let o = step < len;
            if !o {
                mask[step * b + s] = 0.0;
            }
            ys.push(y);
            obs.push(o);
        }
        seqs.push((ys, obs));
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

fn reference(c: &Case) -> (Vec<f32>, HashMap<String, Vec<f32>>) {
    let r = runtimes::reference(&c.prog, &c.store, &c.batch);
    (r.elbo, r.grads)
}

fn fused(c: &Case, threads: usize) -> (Vec<f32>, HashMap<String, Vec<f32>>) {
    let r = runtimes::fused(&c.prog, &c.store, &c.batch, threads);
    (r.elbo, r.grads)
}

fn exact(c: &Case) -> Vec<f64> {
    c.seqs
        .iter()
        .map(|(ys, obs)| c.theta.log_p(ys, obs))
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: sequences");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let rel = (f64::from(*g) - w).abs() / w.abs().max(1.0);
        assert!(
            rel < tol,
            "{what}: sequence {i}: {g} vs exact {w} (rel {rel:.2e})"
        );
    }
}

#[test]
fn the_test_forward_algorithm_is_the_sum_over_all_paths() {
    let c = case(3, 4, 5, 7, false);
    for (ys, obs) in &c.seqs {
        let (f, b) = (c.theta.log_p(ys, obs), c.theta.brute(ys));
        assert!((f - b).abs() < 1e-10 * b.abs().max(1.0), "{f} vs {b}");
    }
}

#[test]
fn log_evidence_matches_the_forward_algorithm_on_both_runtimes() {
    for (k, b, t, seed, ragged, split) in [
        (2, 5, 9, 1, false, false),
        (3, 8, 17, 2, false, false),
        (4, 6, 50, 3, true, false),
        (8, 7, 23, 4, true, false),
        (3, 6, 11, 5, false, true),
        (5, 7, 13, 6, true, true),
    ] {
        let c = case_with(k, b, t, seed, ragged, split);
        let want = exact(&c);
        let (re, _) = reference(&c);
        assert_close(&format!("reference K = {k}"), &re, &want, 1e-4);
        for threads in [1, 2] {
            let (fe, _) = fused(&c, threads);
            assert_close(
                &format!("fused K = {k}, {threads} workers"),
                &fe,
                &want,
                1e-4,
            );
        }
    }
}

#[test]
fn gradients_agree_between_runtimes_and_with_finite_differences() {
    for (k, ragged, split) in [(3, false, false), (4, true, false), (3, true, true)] {
        let c = case_with(k, 6, 12, 11 + k as u64, ragged, split);
        let (_, rg) = reference(&c);
        let (_, fg) = fused(&c, 2);
        // The loss is −Σ log p(y): central differences of the f64 forward algorithm.
        let loss = |th: &Theta| -> f64 {
            c.seqs
                .iter()
                .map(|(ys, obs)| -th.log_p(ys, obs))
                .sum::<f64>()
        };
        let mut th = c.theta.clone();
        let names: Vec<&str> = th.flat_mut().iter().map(|(n, _)| *n).collect();
        for (pi, name) in names.iter().enumerate() {
            let n = th.flat_mut()[pi].1.len();
            let mut fd = vec![0.0f64; n];
            for (i, slot) in fd.iter_mut().enumerate() {
                let h = 1e-5;
                let x0 = th.flat_mut()[pi].1[i];
                th.flat_mut()[pi].1[i] = x0 + h;
                let up = loss(&th);
                th.flat_mut()[pi].1[i] = x0 - h;
                let down = loss(&th);
                th.flat_mut()[pi].1[i] = x0;
                *slot = (up - down) / (2.0 * h);
            }
            let scale = fd.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            for (who, g) in [("reference", &rg[*name]), ("fused", &fg[*name])] {
                let err = g
                    .iter()
                    .zip(&fd)
                    .fold(0.0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()))
                    / scale;
                assert!(
                    err < 2e-4,
                    "K = {k}: {who} gradient of {name} vs finite differences: rel {err:.2e}\n{g:?}\n{fd:?}"
                );
            }
            let err = rg[*name]
                .iter()
                .zip(&fg[*name])
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
                / scale as f32;
            assert!(err < 1e-5, "K = {k}: {name}: runtimes differ by {err:.2e}");
        }
    }
}

#[test]
fn elbo_shows_the_chain_summed_out_and_the_bound_is_the_evidence() {
    let m = vic::compile(&source(4), "hmm_test.vmodel").expect("compiles");
    let elbo = m.elbo();
    assert_eq!(elbo.terms.len(), 1);
    assert_eq!(elbo.terms[0].kind.name(), "marginal");
    assert!(elbo.cancellations.is_empty());
    let text = vic::render::render(m.ir(), &elbo, vic::render::Format::Text, false);
    assert!(
        text.contains(
            "ELBO = log Σ_{k[1:T]} p(k[1]) Π_{t=2..T} p(k[t] | k[t-1]) Π_{t=1..T} p(y[t] | k[t])"
        ),
        "{text}"
    );
    assert!(text.contains("  = log p(y[1:T])"), "{text}");
    assert!(text.contains("forward algorithm"), "{text}");
    let steps = vic::render::render(m.ir(), &elbo, vic::render::Format::Text, true);
    assert!(
        steps.contains("Sum the discrete chain out (forward algorithm)"),
        "{steps}"
    );
    let json = vic::render::render(m.ir(), &elbo, vic::render::Format::Json, false);
    assert!(json.contains("\"kind\": \"marginal\""), "{json}");
    assert!(vic::derive::marginal::exact(m.ir()));
}

#[test]
fn vic_eval_reports_the_evidence_by_the_forward_algorithm() {
    let dir = common::tmp("hmm_eval");
    let model = common::shipped::models_dir().join("hmm.vmodel");
    let model = model.to_str().expect("utf-8 path");
    let out = dir.to_str().expect("utf-8 path");
    let o = common::vic(&[
        "run", model, "--steps", "3", "--batch", "16", "--out", out, "--color", "never",
    ]);
    assert!(o.status.success(), "{:?}", common::text(&o));
    let o = common::vic(&["eval", model, "--params", out, "--json", "--color", "never"]);
    let (so, se) = common::text(&o);
    assert!(o.status.success(), "{so}\n{se}");
    let v: serde_json::Value = serde_json::from_str(&so).expect("json");
    assert_eq!(v["log_evidence"]["method"], "forward", "{so}");
    let (le, elbo) = (
        v["log_evidence"]["value"].as_f64().expect("value"),
        v["elbo"].as_f64().expect("elbo"),
    );
    assert!((le - elbo).abs() < 1e-6 * le.abs(), "{so}");
}

impl Theta {
    /// Log-weights of every path (for small T): `(path, log p(path, y))`.
    fn paths(&self, ys: &[Vec<f64>], obs: &[bool]) -> Vec<(Vec<usize>, f64)> {
        let (k, t) = (self.k, ys.len());
        let e = |s: usize, j: usize| if obs[s] { self.emit(&ys[s], j) } else { 0.0 };
        let lpi = self.log_pi();
        (0..k.pow(t as u32))
            .map(|code| {
                let path: Vec<usize> = (0..t).map(|s| (code / k.pow(s as u32)) % k).collect();
                let mut l = lpi[path[0]] + e(0, path[0]);
                for s in 1..t {
                    l += self.log_a(path[s - 1], path[s]) + e(s, path[s]);
                }
                (path, l)
            })
            .collect()
    }
    /// Posterior marginals `[t][j]` by forward–backward in probability space with per-step
    /// normalisation (a different formulation from vic's log-space host recursion).
    fn marginals(&self, ys: &[Vec<f64>], obs: &[bool]) -> Vec<Vec<f64>> {
        let (k, tt) = (self.k, ys.len());
        let e = |s: usize, j: usize| if obs[s] { self.emit(&ys[s], j) } else { 0.0 };
        // Emissions scaled per step by their maximum (the scale cancels in the marginals).
        let em: Vec<Vec<f64>> = (0..tt)
            .map(|s| {
                let row: Vec<f64> = (0..k).map(|j| e(s, j)).collect();
                let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                row.iter().map(|v| (v - m).exp()).collect()
            })
            .collect();
        let a = |i: usize, j: usize| self.log_a(i, j).exp();
        let pi: Vec<f64> = self.log_pi().iter().map(|v| v.exp()).collect();
        let norm = |v: Vec<f64>| {
            let z: f64 = v.iter().sum();
            v.into_iter().map(|x| x / z).collect::<Vec<f64>>()
        };
        let mut alpha = vec![norm((0..k).map(|j| pi[j] * em[0][j]).collect())];
        for s in 1..tt {
            let prev = &alpha[s - 1];
            let next = (0..k)
                .map(|j| em[s][j] * (0..k).map(|i| prev[i] * a(i, j)).sum::<f64>())
                .collect();
            alpha.push(norm(next));
        }
        let mut beta = vec![vec![1.0; k]; tt];
        for s in (0..tt - 1).rev() {
            beta[s] = norm(
                (0..k)
                    .map(|i| {
                        (0..k)
                            .map(|j| a(i, j) * em[s + 1][j] * beta[s + 1][j])
                            .sum()
                    })
                    .collect(),
            );
        }
        (0..tt)
            .map(|s| norm((0..k).map(|j| alpha[s][j] * beta[s][j]).collect()))
            .collect()
    }
}

fn chain_posterior(c: &Case) -> vic::reference::ChainPosterior {
    let mut out = c
        .prog
        .chain_posterior(&c.store, &c.batch, &mut rng::seeded(3))
        .expect("chain posterior");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// Marginals and the Viterbi path against the sum over all K^T paths (small T): the marginal
/// of state j at t is the share of the paths through it, the Viterbi path the heaviest path.
#[test]
fn chain_posterior_matches_the_sum_over_all_paths() {
    for (k, b, t, seed, ragged) in [
        (2, 4, 7, 31, false),
        (3, 5, 6, 32, true),
        (1, 2, 4, 33, false),
    ] {
        let c = case(k, b, t, seed, ragged);
        let post = chain_posterior(&c);
        assert_eq!((post.name.as_str(), post.b, post.t, post.k), ("k", b, t, k));
        for (s, (ys, obs)) in c.seqs.iter().enumerate() {
            let paths = c.theta.paths(ys, obs);
            let z = lse(&paths.iter().map(|p| p.1).collect::<Vec<_>>());
            for step in 0..t {
                for j in 0..k {
                    let want: f64 = paths
                        .iter()
                        .filter(|p| p.0[step] == j)
                        .map(|p| (p.1 - z).exp())
                        .sum();
                    let got = post.marginals[(s * t + step) * k + j];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "K = {k}, sequence {s}, step {step}, state {j}: {got} vs {want}"
                    );
                }
            }
            let best = paths
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("a path");
            assert_eq!(
                &post.viterbi[s * t..(s + 1) * t],
                best.0.as_slice(),
                "K = {k}, sequence {s}: Viterbi vs the heaviest of {} paths",
                paths.len()
            );
        }
    }
}

/// Longer chains: the marginals against a probability-space forward–backward written here,
/// and the Viterbi path's weight equal to the best path's (no path beats it: checked by
/// every single-step change of it).
#[test]
fn chain_posterior_matches_forward_backward_on_long_chains() {
    for (k, b, t, seed, ragged) in [(4, 6, 40, 41, true), (8, 3, 25, 42, false)] {
        let c = case(k, b, t, seed, ragged);
        let post = chain_posterior(&c);
        for (s, (ys, obs)) in c.seqs.iter().enumerate() {
            let want = c.theta.marginals(ys, obs);
            for (step, row) in want.iter().enumerate() {
                for (j, w) in row.iter().enumerate() {
                    let got = post.marginals[(s * t + step) * k + j];
                    assert!(
                        (got - w).abs() < 1e-5,
                        "K = {k}, sequence {s}, step {step}, state {j}: {got} vs {w}"
                    );
                }
            }
            let path = &post.viterbi[s * t..(s + 1) * t];
            let weight = |p: &[usize]| {
                let e = |u: usize, j: usize| if obs[u] { c.theta.emit(&ys[u], j) } else { 0.0 };
                let mut l = c.theta.log_pi()[p[0]] + e(0, p[0]);
                for u in 1..t {
                    l += c.theta.log_a(p[u - 1], p[u]) + e(u, p[u]);
                }
                l
            };
            let w = weight(path);
            for step in 0..t {
                for j in 0..k {
                    let mut other = path.to_vec();
                    other[step] = j;
                    assert!(
                        weight(&other) <= w + 1e-9,
                        "K = {k}, sequence {s}: changing step {step} to {j} beats Viterbi"
                    );
                }
            }
        }
    }
}

/// `vic sample --posterior` writes the chain's marginals and Viterbi path beside the draws.
#[test]
fn vic_sample_posterior_writes_marginals_and_the_viterbi_path() {
    let dir = common::tmp("hmm_posterior");
    let model = common::shipped::models_dir().join("hmm.vmodel");
    let model = model.to_str().expect("utf-8 path");
    let run = dir.join("run");
    let run = run.to_str().expect("utf-8 path");
    let o = common::vic(&[
        "run", model, "--steps", "3", "--batch", "16", "--out", run, "--color", "never",
    ]);
    assert!(o.status.success(), "{:?}", common::text(&o));
    let npz = dir.join("post.npz");
    let o = common::vic(&[
        "sample",
        model,
        "--params",
        run,
        "--posterior",
        "--n",
        "3",
        "--draws",
        "2",
        "--out",
        npz.to_str().expect("utf-8 path"),
        "--color",
        "never",
    ]);
    let (so, se) = common::text(&o);
    assert!(o.status.success(), "{so}\n{se}");
    assert!(so.contains("k_marginals, k_viterbi"), "{so}");
    let mut z = ndarray_npy::NpzReader::new(std::fs::File::open(&npz).expect("npz")).expect("npz");
    let m: ndarray::ArrayD<f32> = z.by_name("k_marginals").expect("marginals");
    let v: ndarray::ArrayD<f32> = z.by_name("k_viterbi").expect("viterbi");
    assert_eq!(m.shape(), &[2, 3, 50, 4]);
    assert_eq!(v.shape(), &[2, 3, 50]);
    for row in m.as_slice().expect("contiguous").chunks(4) {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{row:?}");
    }
    assert!(v.iter().all(|x| (0.0..4.0).contains(x) && x.fract() == 0.0));
}

/// A categorical emission (`y[t] : onehot[M]`, `y[t] ~ Categorical(EL @ k[t])`, evaluated by
/// the general per-state path on the fused runtime) against the f64 forward algorithm.
#[test]
fn a_categorical_emission_matches_the_forward_algorithm_on_both_runtimes() {
    let (k, m, b, t) = (3usize, 4usize, 5usize, 9usize);
    let src = format!(
        r#"model hmm_cat {{
  dim K = {k}, M = {m}
  observed y[t] : onehot[M]
  latent   k[t] : onehot[K] via enumerate
  param pi_logits : real[K] = 0
  param LP : real[K, K] = 0
  param EL : real[M, K] = 0
  p {{
    k[1] ~ Categorical(pi_logits)
    k[t] ~ Categorical(LP @ k[t-1])
    y[t] ~ Categorical(EL @ k[t])
  }}
}}"#
    );
    let model = vic::compile(&src, "hmm_cat.vmodel").expect("compiles");
    let prog = Program::new(model.ir(), &model.elbo()).expect("lowers");
    let mut store = prog
        .init_params(&Dev::default(), &mut rng::seeded(1))
        .expect("params");
    let mut r = rng::seeded(9);
    let mut rnd = |n: usize, s: f64| -> Vec<f64> {
        (0..n)
            .map(|_| (s * r.gen_range(-1.0..1.0f64)) as f32 as f64)
            .collect()
    };
    let (pi, lp, el) = (rnd(k, 1.0), rnd(k * k, 2.0), rnd(m * k, 2.0));
    for (name, v) in [
        ("param.pi_logits", &pi),
        ("param.LP", &lp),
        ("param.EL", &el),
    ] {
        let host: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        let (_, p) = store
            .iter_mut()
            .find(|(n, _)| n.as_str() == name)
            .expect("param");
        p.set_host(&host);
    }
    let classes: Vec<Vec<usize>> = (0..b)
        .map(|_| (0..t).map(|_| r.gen_range(0..m)).collect())
        .collect();
    let mut host = vec![0.0f32; t * b * m];
    for (s, seq) in classes.iter().enumerate() {
        for (step, c) in seq.iter().enumerate() {
            host[(step * b + s) * m + c] = 1.0;
        }
    }
    let y_id = prog.model.var_id("y").expect("y");
    let batch = Batch {
        b,
        t,
        data: HashMap::from([(y_id, host)]),
        mask: None,
    };
    // f64: log softmax over the columns of the logits (column i of LP given state i,
    // column j of EL the emission logits of state j).
    let col_lsm = |mat: &[f64], rows: usize, cols: usize, c: usize, r: usize| -> f64 {
        let col: Vec<f64> = (0..rows).map(|x| mat[x * cols + c]).collect();
        mat[r * cols + c] - lse(&col)
    };
    let want: Vec<f64> = classes
        .iter()
        .map(|seq| {
            let z = lse(&pi);
            let mut alpha: Vec<f64> = (0..k)
                .map(|j| pi[j] - z + col_lsm(&el, m, k, j, seq[0]))
                .collect();
            for &y in &seq[1..] {
                alpha = (0..k)
                    .map(|j| {
                        let v: Vec<f64> = (0..k)
                            .map(|i| alpha[i] + col_lsm(&lp, k, k, i, j))
                            .collect();
                        lse(&v) + col_lsm(&el, m, k, j, y)
                    })
                    .collect();
            }
            lse(&alpha)
        })
        .collect();
    let traced = store.trace();
    let re = prog
        .forward(&traced, &batch, &mut rng::seeded(5), 0, 0.0)
        .expect("reference forward")
        .elbo
        .as_vec();
    drop(traced);
    assert_close("reference, categorical emission", &re, &want, 1e-4);
    let mut e = Engine::new(&prog, &store, b, t, 2).expect("builds");
    let fe = e.forward(&prog, &batch, &mut rng::seeded(5), 0).elbo;
    assert_close("fused, categorical emission", &fe, &want, 1e-4);
}

/// `vic eval` on the shipped HMM: its log-evidence on the whole data file is the mean over the
/// 1024 sequences of the f64 forward algorithm written here, at the parameters read back from
/// the checkpoint (not only the method's name).
#[test]
fn vic_eval_evidence_is_the_f64_forward_algorithm_at_the_checkpoint() {
    let dir = common::tmp("hmm_eval_value");
    let model = common::shipped::models_dir().join("hmm.vmodel");
    let data = common::shipped::models_dir().join("data/hmm.npz");
    let (model, data) = (
        model.to_str().expect("utf-8 path"),
        data.to_str().expect("utf-8 path"),
    );
    let out = dir.to_str().expect("utf-8 path");
    let o = common::vic(&[
        "run", model, "--steps", "5", "--batch", "16", "--lr", "0.05", "--out", out, "--color",
        "never",
    ]);
    assert!(o.status.success(), "{:?}", common::text(&o));
    let o = common::vic(&[
        "eval", model, "--params", out, "--data", data, "--json", "--color", "never",
    ]);
    let (so, se) = common::text(&o);
    assert!(o.status.success(), "{so}\n{se}");
    let v: serde_json::Value = serde_json::from_str(&so).expect("json");
    assert_eq!(v["log_evidence"]["method"], "forward", "{so}");
    let got = v["log_evidence"]["value"].as_f64().expect("value");
    // The parameters from the checkpoint.
    let bytes = std::fs::read(dir.join("checkpoint.safetensors")).expect("checkpoint");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let read = |name: &str| -> Vec<f64> {
        let t = st.tensor(&format!("param/param.{name}")).expect(name);
        t.data()
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect()
    };
    let theta = Theta {
        k: 4,
        pi: read("pi_logits"),
        lp: read("LP"),
        mu: read("MU"),
        lsd: read("LSD"),
    };
    assert_ne!(theta.mu, vec![0.0; 8]);
    let mut z = ndarray_npy::NpzReader::new(std::fs::File::open(data).expect("npz")).expect("npz");
    let y: ndarray::ArrayD<f32> = z.by_name("y").or_else(|_| z.by_name("y.npy")).expect("y");
    let (n, t) = (y.shape()[0], y.shape()[1]);
    let ys = y.as_slice().expect("contiguous");
    let want = (0..n)
        .map(|s| {
            let seq: Vec<Vec<f64>> = (0..t)
                .map(|u| (0..D).map(|d| f64::from(ys[(s * t + u) * D + d])).collect())
                .collect();
            theta.log_p(&seq, &vec![true; t])
        })
        .sum::<f64>()
        / n as f64;
    let rel = (got - want).abs() / want.abs();
    assert!(
        rel < 1e-4,
        "vic eval {got} vs f64 forward algorithm {want} (rel {rel:.2e})"
    );
}
