//! The fused runtime against the reference path (`Program::forward` on dfdx) on the shipped
//! models: same parameters, same batch, same noise stream → the same ELBO per sequence, the
//! same terms and the same loss gradient for every parameter, up to float rounding; and one
//! gradient of the fused program against central finite differences of its own loss in f64
//! terms of the reference ELBO (the reference is the definition; the differences check the
//! backward kernels independently of it).

use std::path::{Path, PathBuf};

use vic::fused::Engine;
use vic::lower::{Batch, Program};
use vic::runtime::nets::params::ParamStore;
use vic::runtime::{backward, rng, Dev};
use vic::train::{control_batch, data_batch, specs_of};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn setup(file: &str, b: usize, horizon: usize) -> (Program, ParamStore, Batch) {
    setup_with(file, "", b, horizon)
}

/// A shipped model with `extra` appended before its closing brace (an objective block).
fn setup_with(file: &str, extra: &str, b: usize, horizon: usize) -> (Program, ParamStore, Batch) {
    let path = models_dir().join(file);
    let mut src = std::fs::read_to_string(&path).expect("model file");
    if extra == "-objective" {
        // The model without its objective block (plain ELBO gradients).
        let a = src.find("  objective {").expect("an objective block");
        let b = a + src[a..].find("\n  }\n").expect("its end") + 5;
        src.replace_range(a..b, "");
    } else if !extra.is_empty() {
        let end = src.rfind('}').expect("closing brace");
        src.insert_str(end, extra);
    }
    setup_src(&src, file, b, horizon)
}

/// A model given as source (its data path relative to `models/`).
fn setup_src(src: &str, file: &str, b: usize, horizon: usize) -> (Program, ParamStore, Batch) {
    let m = vic::compile(src, file).expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = p
        .init_params(&Dev::default(), &mut rng::seeded(11))
        .expect("params");
    let batch = match &p.model.data {
        Some(rel) => {
            let d = vic::data::load(
                models_dir().join(rel),
                &specs_of(&p),
                p.plan.max_lag as usize + 1,
            )
            .expect("shipped data loads");
            let idx: Vec<usize> = (0..b).map(|i| (i * 7) % d.n).collect();
            let mut batch = data_batch(&p, &d, &idx, 1);
            if batch.t > horizon {
                // Keep the test fast: the first `horizon` steps of each sequence.
                let t = horizon;
                for (v, host) in batch.data.iter_mut() {
                    if p.model.vars[*v].timed {
                        host.truncate(t * b * p.model.vars[*v].ty.size());
                    }
                }
                batch.mask = batch.mask.map(|mut mk| {
                    mk.truncate(t * b);
                    mk
                });
                batch.t = t;
            }
            batch
        }
        None => control_batch(&p, b, horizon),
    };
    (p, store, batch)
}

/// Reference ELBO per sequence and loss gradients (d(−objective)/dθ) by name.
fn reference(
    p: &Program,
    store: &ParamStore,
    batch: &Batch,
) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
    let traced = store.trace();
    let fwd = p
        .forward(&traced, batch, &mut rng::seeded(5), 0, 0.0)
        .expect("reference forward");
    let elbo = fwd.elbo.as_vec();
    drop(traced);
    let mut grads = backward(fwd.objective.negate());
    let g = store.grads(&mut grads);
    (elbo, g.into_iter().collect())
}

fn fused(p: &Program, store: &ParamStore, batch: &Batch, threads: usize) -> (Vec<f32>, Engine) {
    let mut e = Engine::new(p, store, batch.b, batch.t.max(1), threads).expect("fused builds");
    let fwd = e.forward(p, batch, &mut rng::seeded(5), 0);
    e.backward(batch);
    (fwd.elbo, e)
}

/// Max |a − b| over max |b| (with an absolute floor of `floor`).
fn rel_err(a: &[f32], b: &[f32], floor: f32) -> f32 {
    let scale = b.iter().fold(floor, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn compare(file: &str, b: usize, horizon: usize, threads: usize, tol: f32) {
    let (p, store, batch) = setup(file, b, horizon);
    compare_on(file, &p, &store, &batch, threads, tol);
}

fn compare_on(
    file: &str,
    p: &Program,
    store: &ParamStore,
    batch: &Batch,
    threads: usize,
    tol: f32,
) {
    let (p, store, batch) = (p.clone(), store.clone(), batch.clone());
    let (re, rg) = reference(&p, &store, &batch);
    let (fe, eng) = fused(&p, &store, &batch, threads);
    assert!(
        fe.iter().chain(&re).all(|x| x.is_finite()),
        "{file}: a non-finite ELBO (fused {:?} vs ref {:?})",
        &fe[..fe.len().min(4)],
        &re[..re.len().min(4)]
    );
    let e_err = rel_err(&fe, &re, 1.0);
    let mut worst = (0.0f32, String::new());
    let all_ref: Vec<f32> = rg.iter().flat_map(|(_, g)| g.iter().copied()).collect();
    let gscale = all_ref.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
    for (name, g) in &rg {
        let i = eng
            .names
            .iter()
            .position(|n| n == name)
            .expect("same parameters");
        let err = eng.grads[i]
            .iter()
            .zip(g)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
            / gscale;
        if err > worst.0 {
            worst = (err, name.clone());
        }
    }
    eprintln!(
        "{file}: b = {}, T = {}, workers = {}: ELBO rel err {e_err:.2e}, worst gradient rel err {:.2e} ({})",
        batch.b,
        batch.t,
        eng.workers(),
        worst.0,
        worst.1
    );
    assert!(
        e_err < tol,
        "{file}: ELBO differs: {e_err:e} (fused {:?} vs ref {:?})",
        &fe[..fe.len().min(4)],
        &re[..re.len().min(4)]
    );
    assert!(
        worst.0 < tol,
        "{file}: gradient of {} differs: {:e}",
        worst.1,
        worst.0
    );
}

// Tolerance: relative to the largest reference value, 1e-5 for values and gradients
// (f32 kernels; the fast exp/ln/tanh are within 2 ulp, sums run in another order).
const TOL: f32 = 1e-5;

#[test]
fn lg_toy_matches_reference() {
    compare("lg_toy.vmodel", 1, 1, 1, TOL);
}

#[test]
fn vae_matches_reference_on_two_workers() {
    compare("vae_digits.vmodel", 16, 1, 2, TOL);
}

#[test]
fn ssm_matches_reference() {
    compare("ssm.vmodel", 6, 12, 1, TOL);
    compare("ssm.vmodel", 6, 12, 2, TOL);
}

#[test]
fn rssm_matches_reference() {
    compare("rssm.vmodel", 4, 6, 2, TOL);
}

#[test]
fn sac_matches_reference() {
    compare("sac.vmodel", 8, 10, 2, TOL);
}

#[test]
fn other_models_match_or_fall_back() {
    for entry in std::fs::read_dir(models_dir()).expect("models dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("vmodel") {
            continue;
        }
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        let (p, store, batch) = setup(&file, 4, 5);
        // Known dynamics (`start = prior`): no ELBO to train (its actions are imagined, not
        // data); `vic agent` runs it, `tests/known.rs` checks it.
        if (p.model.behaviour.as_ref()).is_some_and(|b| b.start == vic::ir::ImagineStart::Prior) {
            continue;
        }
        match Engine::new(&p, &store, batch.b, batch.t.max(1), 1) {
            Err(why) => eprintln!("{file}: reference path ({})", why.0),
            Ok(_) => compare(&file, 4, 5, 1, TOL),
        }
    }
}

#[test]
fn objective_modifiers_match_reference() {
    for (what, extra) in [
        (
            "free nats per element",
            "objective {\n free_nats = 0.02, placement = per_element\n}\n",
        ),
        (
            "free nats per step",
            "objective {\n free_nats = 0.5, placement = per_step\n}\n",
        ),
        (
            "free nats after the mean, balance",
            "objective {\n kl_balance = 0.8\n free_nats = 3.0, placement = after_mean\n}\n",
        ),
        (
            "KL weight, scales",
            "objective {\n kl_weight = 0.3\n scale o = 2.5\n}\n",
        ),
    ] {
        let (p, store, batch) = setup_with("ssm.vmodel", extra, 6, 8);
        eprintln!("ssm with {what}:");
        compare_on("ssm.vmodel", &p, &store, &batch, 2, TOL);
        // The modifier must change the gradient here, or this compares nothing new.
        let (p0, s0, b0) = setup("ssm.vmodel", 6, 8);
        assert_changes_gradient(what, (&p0, &s0, &b0), (&p, &store, &batch));
    }
}

#[test]
fn masked_sequences_match_reference() {
    let (p, store, mut batch) = setup("ssm.vmodel", 6, 10);
    // Sequence i is observed for its first 10 − i steps.
    let mut mask = vec![0.0f32; batch.t * batch.b];
    for t in 0..batch.t {
        for i in 0..batch.b {
            mask[t * batch.b + i] = f32::from(u8::from(t + i < batch.t));
        }
    }
    batch.mask = Some(mask);
    compare_on("ssm.vmodel", &p, &store, &batch, 2, TOL);
}

/// Central differences of the fused program's own loss (−Σ ELBO, no modifiers in these
/// models) against its backward, at the coordinates with the largest gradients. The noise is
/// the same in every evaluation (same seed). Tolerance: 2% of the gradient plus 0.2% of the
/// largest one (f32 forward passes, h = 1e-2·max(1, |θ|)).
#[test]
fn gradients_match_finite_differences() {
    for (file, extra, b, t) in [
        ("vae_digits.vmodel", "", 8, 1),
        ("ssm.vmodel", "", 4, 6),
        ("rssm.vmodel", "-objective", 2, 4),
        ("lqr.vmodel", "-objective", 4, 5),
    ] {
        let (p, store, batch) = setup_with(file, extra, b, t);
        finite_differences(file, &p, &store, &batch, &[]);
    }
}

/// The new families' kernels (Laplace and Uniform log-densities, samplers, closed-form KLs
/// and entropies, log-ratios) against central differences of the fused loss.
#[test]
fn family_gradients_match_finite_differences() {
    let (p, store, batch) = setup_inline(FAMILIES, 4, 4);
    // Beside the largest gradients, the largest of each parameter that only the new kernels
    // reach: Uniform bounds (KL, sampler), Laplace q (log-ratio against a Normal p; entropy
    // under a Flat p), the Laplace `.split` head (sampler, closed-form KL).
    let also = [
        "param.lo",
        "param.hi",
        "param.mv",
        "param.sv",
        "param.mw",
        "net.enc.l1.b",
    ];
    finite_differences("families", &p, &store, &batch, &also);
}

fn finite_differences(file: &str, p: &Program, store: &ParamStore, batch: &Batch, also: &[&str]) {
    {
        let (p, batch) = (p.clone(), batch.clone());
        let mut e = Engine::new(&p, store, batch.b, batch.t.max(1), 2).expect("fused builds");
        let loss = |e: &mut Engine| -> f64 {
            let f = e.forward(&p, &batch, &mut rng::seeded(5), 0);
            -f.elbo.iter().map(|x| f64::from(*x)).sum::<f64>()
        };
        loss(&mut e);
        e.backward(&batch);
        let grads = e.grads.clone();
        let gmax = grads.iter().flatten().fold(0.0f32, |m, g| m.max(g.abs()));
        let mut coords: Vec<(usize, usize, f32)> = grads
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.iter().enumerate().map(move |(j, v)| (i, j, *v)))
            .collect();
        coords.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()));
        let mut picked: Vec<(usize, usize, f32)> = coords.iter().take(6).copied().collect();
        for name in also {
            let i = e.names.iter().position(|n| n == name).expect("a parameter");
            let top = coords
                .iter()
                .find(|c| c.0 == i)
                .copied()
                .expect("a coordinate");
            assert!(top.2 != 0.0, "{file}: {name} has no gradient");
            picked.push(top);
        }
        let mut checked = 0;
        for &(i, j, g) in &picked {
            let x0 = e.values[i][j];
            let h = 1e-2 * x0.abs().max(1.0);
            e.values[i][j] = x0 + h;
            let up = loss(&mut e);
            e.values[i][j] = x0 - h;
            let down = loss(&mut e);
            e.values[i][j] = x0;
            let fd = (up - down) / (2.0 * f64::from(h));
            let tol = 0.02 * f64::from(g.abs()) + 2e-3 * f64::from(gmax);
            eprintln!(
                "{file} {}[{j}]: backward {g:.5}, differences {fd:.5}",
                e.names[i]
            );
            assert!(
                (fd - f64::from(g)).abs() <= tol,
                "{file} {}[{j}]: {g} vs {fd}",
                e.names[i]
            );
            checked += 1;
        }
        assert!(checked >= 4.min(coords.len()));
    }
}

// ---- Nets over time, SiLU, tensor clamp bounds ----------------------------------------------

/// A small smoothing model over the pendulum observations: q reads `ARG` through the net
/// `NET` over time (declared `DECL`), hidden layers use `ACT`, and the emission location is
/// `LOC`.
fn seq_model(decl: &str, arg: &str, act: &str, loc: &str) -> String {
    format!(
        r#"model seq_test {{
  dim O = 3, Z = 4, R = 8
  data "data/pendulum_std.npz"
  observed o[t] : real[O]
  latent   z[t] : real[Z]
  param w : real[O] = 0.5
  init z[0] = 0
  net trans = mlp(Z -> 16 -> 2*Z, {act})
  net emit  = mlp(Z -> 16 -> O, {act})
  net seq   = {decl}
  net comb  = mlp(R + Z -> 16 -> 2*Z, {act})
  p {{
    z[t] ~ Normal.split(trans(z[t-1]))
    o[t] ~ Normal({loc}, 0.5)
  }}
  q {{
    z[t] ~ Normal.split(comb(seq({arg}), z[t-1]))
  }}
}}
"#
    )
}

/// The models of the tests below: (name, source).
fn seq_models() -> Vec<(&'static str, String)> {
    vec![
        (
            "reverse rnn",
            seq_model("rnn(O -> R, reverse)", "o[t:]", "relu", "emit(z[t])"),
        ),
        (
            "forward rnn",
            seq_model("rnn(O -> R)", "o[:t]", "tanh", "emit(z[t])"),
        ),
        (
            "reverse rnn over expressions",
            seq_model(
                "rnn(2*O -> R, reverse)",
                "0.1 * o[t:], w * tanh(o[t:]) + 1",
                "relu",
                "emit(z[t])",
            ),
        ),
        (
            "silu",
            seq_model("rnn(O -> R)", "o[:t]", "silu", "emit(z[t])"),
        ),
        (
            "tensor clamp bounds",
            seq_model(
                "rnn(O -> R, reverse)",
                "o[t:]",
                "elu",
                "clamp(emit(z[t]), -softplus(w), w * z[t].0 + 1)",
            ),
        ),
    ]
}

#[test]
fn dmm_matches_reference() {
    compare("dmm.vmodel", 6, 10, 1, TOL);
    compare("dmm.vmodel", 6, 10, 2, TOL);
    let (p, store, batch) = setup("dmm.vmodel", 6, 10);
    compare_tensors("dmm", &p, &store, &batch, "net.back.");
}

#[test]
fn seq_models_match_reference() {
    for (what, src) in seq_models() {
        let (p, store, batch) = setup_src(&src, what, 6, 8);
        Engine::new(&p, &store, batch.b, batch.t, 1)
            .unwrap_or_else(|u| panic!("{what}: runs fused, not on the reference path ({})", u.0));
        compare_on(what, &p, &store, &batch, 1, TOL);
        compare_on(what, &p, &store, &batch, 2, TOL);
        compare_tensors(what, &p, &store, &batch, "net.seq.");
    }
}

/// The gradients of the parameters named `prefix…` against the reference, each relative to
/// its own largest entry (the net over time's gradients are small beside the emission's).
fn compare_tensors(what: &str, p: &Program, store: &ParamStore, batch: &Batch, prefix: &str) {
    let (_, rg) = reference(p, store, batch);
    let (_, eng) = fused(p, store, batch, 2);
    let mut n = 0;
    for (name, g) in rg.iter().filter(|(n, _)| n.starts_with(prefix)) {
        let i = eng
            .names
            .iter()
            .position(|x| x == name)
            .expect("same parameters");
        let err = rel_err(&eng.grads[i], g, 1e-6);
        eprintln!("{what}: {name} gradient rel err {err:.2e}");
        assert!(err < TOL, "{what}: gradient of {name} differs: {err:e}");
        n += 1;
    }
    assert_eq!(n, 4, "{what}: the four GRU tensors of `{prefix}`");
}

/// Central differences of the fused loss (−Σ ELBO) against its backward at the largest
/// gradient coordinate of every parameter tensor (so the net over time's weights are checked
/// even where other nets' gradients are larger). Tolerance as above, per tensor.
fn fd_every_tensor(what: &str, p: &Program, store: &ParamStore, batch: &Batch) {
    let mut e = Engine::new(p, store, batch.b, batch.t.max(1), 2).expect("fused builds");
    let loss = |e: &mut Engine| -> f64 {
        let f = e.forward(p, batch, &mut rng::seeded(5), 0);
        -f.elbo.iter().map(|x| f64::from(*x)).sum::<f64>()
    };
    loss(&mut e);
    e.backward(batch);
    let grads = e.grads.clone();
    let mut checked = 0;
    for (i, g) in grads.iter().enumerate() {
        let gmax = g.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let Some(j) = g.iter().position(|v| v.abs() == gmax) else {
            continue;
        };
        let x0 = e.values[i][j];
        let mut central = |h: f32| {
            e.values[i][j] = x0 + h;
            let up = loss(&mut e);
            e.values[i][j] = x0 - h;
            let down = loss(&mut e);
            e.values[i][j] = x0;
            (up - down) / (2.0 * f64::from(h))
        };
        // Richardson's extrapolation of two steps cancels the h² term (the emission's scale
        // floor makes the loss strongly curved).
        let h = 1e-2 * x0.abs().max(1.0);
        let (f1, f2) = (central(h), central(h / 2.0));
        let fd = (4.0 * f2 - f1) / 3.0;
        let gj = f64::from(g[j]);
        eprintln!(
            "{what} {}[{j}]: backward {gj:.5}, differences {fd:.5}",
            e.names[i]
        );
        assert!(
            (fd - gj).abs() <= 0.02 * gj.abs() + 1e-2,
            "{what} {}[{j}]: {gj} vs {fd}",
            e.names[i]
        );
        checked += 1;
    }
    assert!(
        checked == grads.len(),
        "{what}: a parameter without gradient"
    );
}

#[test]
fn seq_gradients_match_finite_differences() {
    let (p, store, batch) = setup_with("dmm.vmodel", "-objective", 4, 6);
    fd_every_tensor("dmm", &p, &store, &batch);
    for (what, src) in seq_models() {
        let (p, store, batch) = setup_src(&src, what, 4, 6);
        fd_every_tensor(what, &p, &store, &batch);
    }
}

/// An inline model with a synthetic batch of `b` sequences of `t` steps: each observed or
/// input variable `v` filled, at flat index `i` of its host array, with `fill(v, var, i)`.
fn setup_synthetic(
    src: &str,
    b: usize,
    t: usize,
    fill: impl Fn(usize, &vic::ir::Var, usize) -> f32,
) -> (Program, ParamStore, Batch) {
    let m = vic::compile(src, "inline.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = p
        .init_params(&Dev::default(), &mut rng::seeded(11))
        .expect("params");
    let mut data = std::collections::HashMap::new();
    for (v, var) in p.model.vars.iter().enumerate() {
        if !matches!(var.role, vic::ir::Role::Observed | vic::ir::Role::Input) {
            continue;
        }
        let n = if var.timed { t * b } else { b } * var.ty.size();
        data.insert(v, (0..n).map(|i| fill(v, var, i)).collect());
    }
    let batch = Batch {
        b,
        t,
        data,
        mask: None,
    };
    (p, store, batch)
}

/// An inline model with a synthetic batch: every observed or input variable filled with a
/// smooth deterministic pattern in (−1, 1).
fn setup_inline(src: &str, b: usize, t: usize) -> (Program, ParamStore, Batch) {
    setup_synthetic(src, b, t, |v, _, i| {
        (0.37 * i as f32 + 0.11 * v as f32).sin() * 0.9
    })
}

/// Laplace as a latent (closed-form KL, sampled from its `.split` head) and as a likelihood;
/// Uniform as a latent (against a Normal p: a log-ratio) and as a likelihood with bounds that
/// depend on a latent; a Laplace q against a Normal p (log-ratio), a Laplace q under a Flat
/// prior (closed-form entropy), a Uniform q inside a Uniform p (closed-form KL).
const FAMILIES: &str = r#"
model families {
  dim H = 6
  observed x[t] : real[2]
  observed y[t] : real[2]
  latent   z[t] : real[2]
  latent   u[t] : real[2]
  latent   v : real[3]
  latent   w : real[2]
  latent   c : real[2]
  init z[0] = 0
  net enc = mlp(4 -> H -> 4, tanh)
  net dec = mlp(2 -> H -> 2, tanh)
  param mv : real[3] = [0.1, -0.2, 0.3]
  param sv : real[3] = [0.2, 0.1, -0.3]
  param mw : real[2] = [0.4, -0.1]
  param lo : real[2] = [-0.5, -0.3]
  param hi : real[2] = [0.4, 0.6]
  p {
    z[t] ~ Laplace(0.9 * z[t-1], 0.5)
    u[t] ~ Normal(z[t], 1)
    x[t] ~ Laplace(dec(z[t]) + c, 0.3)
    y[t] ~ Uniform(u[t] - 20, u[t] + 20)
    v ~ Normal(0, 1)
    w ~ Flat
    c ~ Uniform(-2, 2)
  }
  q {
    z[t] ~ Laplace.split(enc(x[t], z[t-1]), scale = softplus, min = 0.05)
    u[t] ~ Uniform(z[t] - 0.5, z[t] + 0.5)
    v ~ Laplace(mv, softplus(sv))
    w ~ Laplace(0.3, softplus(mw))
    c ~ Uniform(lo, hi)
  }
}
"#;

#[test]
fn families_match_reference() {
    let (p, store, batch) = setup_inline(FAMILIES, 6, 5);
    compare_on("families", &p, &store, &batch, 1, TOL);
    compare_on("families", &p, &store, &batch, 2, TOL);
}

#[test]
fn pendulum_control_matches_reference() {
    // TanhNormal policy against a Uniform(−1, 1) action prior: a Monte Carlo log-ratio.
    compare("pendulum_control.vmodel", 4, 12, 1, TOL);
    compare("pendulum_control.vmodel", 4, 12, 2, TOL);
}

#[test]
fn iwae_matches_reference() {
    let k = 4;
    for (file, src, b, t) in [
        ("ssm.vmodel", None, 3, 6),
        ("families", Some(FAMILIES), 3, 4),
        ("special", Some(SPECIAL), 3, 4),
        ("mvn", Some(MVN), 3, 4),
        ("pendulum_control.vmodel", None, 2, 8),
    ] {
        let (p, store, batch) = match src {
            None => setup_with(file, "", b, t),
            Some(_) if file == "special" => setup_special(b, t),
            Some(s) => setup_inline(s, b, t),
        };
        // The same model with `iwae = K` (derive turns every KL into a log-ratio).
        let mut m = p.model.clone();
        m.objective.iwae = k as u32;
        let elbo = vic::derive::derive(&m);
        let p = Program::new(&m, &elbo).expect("lowers with IWAE");
        // The trainer's layout: K copies of the batch, block-major.
        let mut tiled = batch.clone();
        tiled.b = batch.b * k;
        for (v, host) in tiled.data.iter_mut() {
            let size = p.model.vars[*v].ty.size();
            let steps = if p.model.vars[*v].timed { batch.t } else { 1 };
            host.clear();
            for s in 0..steps {
                for _ in 0..k {
                    let src = &batch.data[v][s * batch.b * size..(s + 1) * batch.b * size];
                    host.extend_from_slice(src);
                }
            }
        }
        let name = format!("{file} with iwae = {k}");
        compare_on(&name, &p, &store, &tiled, 1, TOL);
        compare_on(&name, &p, &store, &tiled, 2, TOL);
    }
}

#[test]
fn planet_matches_reference() {
    // Latent overshooting (D = 3) on PlaNet's RSSM, with per-step free nats.
    compare("planet.vmodel", 3, 7, 1, TOL);
    compare("planet.vmodel", 3, 7, 2, TOL);
    // Ragged sequences: the mask reaches the overshooting terms too.
    let (p, store, mut batch) = setup("planet.vmodel", 4, 8);
    let mut mask = vec![0.0f32; batch.t * batch.b];
    for t in 0..batch.t {
        for i in 0..batch.b {
            mask[t * batch.b + i] = f32::from(u8::from(t + 2 * i < batch.t));
        }
    }
    batch.mask = Some(mask);
    compare_on("planet.vmodel (masked)", &p, &store, &batch, 2, TOL);
    // Overshooting must change the gradient here, or this compares nothing new.
    let mut m = p.model.clone();
    m.objective.overshooting = 1;
    let plain = Program::new(&m, &vic::derive::derive(&m)).expect("lowers");
    let (_, g0) = reference(&plain, &store, &batch);
    let (_, g1) = reference(&p, &store, &batch);
    let diff = g0
        .iter()
        .zip(&g1)
        .map(|((_, a), (_, b))| rel_err(b, a, 1e-3))
        .fold(0.0f32, f32::max);
    assert!(
        diff > 1e-3,
        "overshooting did not change the gradient ({diff:e})"
    );
}

// --- Discrete latents: categorical draws (straight-through, score function), exact
// enumeration, grouped one-hots and categorical likelihoods against the reference path.

/// An inline model and a batch of `b` rows of its (static) data, drawn from `gen(i, j)`
/// for row `i`, column `j` of each data variable.
fn setup_gen(
    src: &str,
    b: usize,
    gen: impl Fn(&str, usize, usize) -> f32,
) -> (Program, ParamStore, Batch) {
    setup_synthetic(src, b, 1, |_, var, k| {
        let size = var.ty.size();
        gen(&var.name, k / size, k % size)
    })
}

/// Reference and fused with a score-function baseline.
fn compare_baseline(file: &str, p: &Program, store: &ParamStore, batch: &Batch, baseline: f32) {
    let traced = store.trace();
    let fwd = p
        .forward(&traced, batch, &mut rng::seeded(5), 0, baseline)
        .expect("reference forward");
    let re = fwd.elbo.as_vec();
    drop(traced);
    let mut grads = backward(fwd.objective.negate());
    let rg: Vec<(String, Vec<f32>)> = store.grads(&mut grads).into_iter().collect();
    let mut e = Engine::new(p, store, batch.b, 1, 2).expect("fused builds");
    e.set_baseline(baseline);
    let fe = e.forward(p, batch, &mut rng::seeded(5), 0).elbo;
    e.backward(batch);
    assert!(rel_err(&fe, &re, 1.0) < TOL, "{file}: ELBO differs");
    let gscale = rg
        .iter()
        .flat_map(|(_, g)| g.iter())
        .fold(1e-3f32, |m, x| m.max(x.abs()));
    for (name, g) in &rg {
        let i = e
            .names
            .iter()
            .position(|n| n == name)
            .expect("same parameters");
        let err = e.grads[i]
            .iter()
            .zip(g)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
            / gscale;
        eprintln!("{file} baseline {baseline}: {name} rel err {err:.2e}");
        assert!(err < TOL, "{file}: gradient of {name} differs: {err:e}");
    }
}

#[test]
fn discrete_vae_matches_reference() {
    compare("discrete_vae.vmodel", 8, 1, 1, TOL);
    compare("discrete_vae.vmodel", 12, 1, 2, TOL);
}

#[test]
fn cvae_imitation_matches_reference() {
    compare("cvae_imitation.vmodel", 16, 1, 2, TOL);
    let (p, store, batch) = setup("cvae_imitation.vmodel", 16, 1);
    compare_baseline("cvae_imitation.vmodel", &p, &store, &batch, -3.5);
}

const ENUM_SRC: &str = r#"
model enum_mix {
  dim X = 6, K = 3, H = 16
  input    s : real[X]
  observed x : real[X]
  latent   c : onehot[K] via enumerate
  net enc = mlp(X -> H -> K, tanh)
  net dec = mlp(K + X -> H -> 2*X, elu)
  p {
    c ~ Categorical(zeros(K))
    x ~ Normal.split(dec(c, s * 0.5))
  }
  q {
    c ~ Categorical(enc(x))
  }
}"#;

const GROUPED_SRC: &str = r#"
model grouped {
  dim X = 5, G = 3, C = 4, H = 16
  observed x : unit[X]
  latent   c : onehot[2, 2] via enumerate
  latent   z : onehot[G, C] via straight_through
  net enc_c = mlp(X -> H -> 4, relu)
  net enc_z = mlp(X + 4 -> H -> G*C, elu)
  net dec = mlp(4 + G*C -> H -> X, tanh)
  net pz = mlp(4 -> H -> G*C, relu)
  p {
    c ~ Categorical(zeros(4))
    z ~ Categorical(pz(c))
    x ~ Bernoulli(dec(c, z))
  }
  q {
    c ~ Categorical(enc_c(x))
    z ~ Categorical(enc_z(x, c))
  }
}"#;

const SF_SRC: &str = r#"
model sf_groups {
  dim X = 4, G = 2, C = 3, H = 8
  observed x : real[X]
  observed y : onehot[3]
  latent   z : onehot[G, C] via score_function
  net enc = mlp(X + 3 -> H -> G*C, relu)
  net dec = mlp(G*C -> H -> 2*X, relu)
  net cls = mlp(G*C -> H -> 3, relu)
  param pz : real[6] = [0.1, -0.2, 0.3, 0.0, 0.5, -0.4]
  p {
    z ~ Categorical(pz)
    x ~ Normal.split(dec(z), min = 0.05)
    y ~ Categorical(cls(z))
  }
  q {
    z ~ Categorical(enc(x, y))
  }
}"#;

fn pseudo(name: &str, i: usize, j: usize) -> f32 {
    let h = (i * 31 + j * 17 + name.len() * 7) as f32;
    match name {
        "y" => f32::from(u8::from(j == i % 3)),
        "x" => (h * 0.618).fract(),
        _ => (h * 0.377).fract() * 2.0 - 1.0,
    }
}

#[test]
fn enumeration_matches_reference() {
    let (p, store, batch) = setup_gen(ENUM_SRC, 10, pseudo);
    compare_on("enum_mix", &p, &store, &batch, 1, TOL);
    compare_on("enum_mix", &p, &store, &batch, 2, TOL);
}

#[test]
fn grouped_one_hot_enumeration_and_straight_through_match_reference() {
    let (p, store, batch) = setup_gen(GROUPED_SRC, 9, pseudo);
    compare_on("grouped", &p, &store, &batch, 2, TOL);
}

#[test]
fn score_function_with_groups_and_categorical_likelihood_matches_reference() {
    let (p, store, batch) = setup_gen(SF_SRC, 12, pseudo);
    compare_on("sf_groups", &p, &store, &batch, 1, TOL);
    compare_baseline("sf_groups", &p, &store, &batch, 0.0);
    compare_baseline("sf_groups", &p, &store, &batch, -2.25);
}

/// Exact enumeration has no sampling: the fused gradient against central differences of its
/// own loss, at every coordinate of the encoder (the enumeration weights' gradient).
#[test]
fn enumeration_gradient_matches_finite_differences() {
    let (p, store, batch) = setup_gen(ENUM_SRC, 6, pseudo);
    let mut e = Engine::new(&p, &store, batch.b, 1, 2).expect("fused builds");
    let loss = |e: &mut Engine| -> f64 {
        let f = e.forward(&p, &batch, &mut rng::seeded(5), 0);
        -f.elbo.iter().map(|x| f64::from(*x)).sum::<f64>()
    };
    loss(&mut e);
    e.backward(&batch);
    let grads = e.grads.clone();
    let gmax = grads.iter().flatten().fold(0.0f32, |m, g| m.max(g.abs()));
    let mut checked = 0;
    for (i, name) in e.names.clone().iter().enumerate() {
        let take = if name.starts_with("net.enc") {
            usize::MAX
        } else {
            4
        };
        for (j, &g) in grads[i].iter().enumerate().take(take) {
            let x0 = e.values[i][j];
            let h = 1e-2 * x0.abs().max(1.0);
            e.values[i][j] = x0 + h;
            let up = loss(&mut e);
            e.values[i][j] = x0 - h;
            let down = loss(&mut e);
            e.values[i][j] = x0;
            let fd = (up - down) / (2.0 * f64::from(h));
            let tol = 0.02 * f64::from(g.abs()) + 2e-3 * f64::from(gmax);
            assert!(
                (fd - f64::from(g)).abs() <= tol,
                "{name}[{j}]: backward {g} vs differences {fd}"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "checked {checked}");
}

/// Kingma et al.'s M2 without labels: an enumerated class beside a reparameterised Gaussian
/// latent whose noise is drawn for every block of the tiled batch.
const M2_SRC: &str = r#"
model m2 {
  dim X = 6, K = 4, Z = 3, H = 16
  observed x : unit[X]
  latent   c : onehot[K] via enumerate
  latent   z : real[Z]
  net enc_c = mlp(X -> H -> K, relu)
  net enc_z = mlp(X + K -> H -> 2*Z, tanh)
  net dec = mlp(K + Z -> H -> X, elu)
  p {
    c ~ Categorical(zeros(K))
    z ~ Normal(zeros(Z), 1)
    x ~ Bernoulli(dec(c, z))
  }
  q {
    c ~ Categorical(enc_c(x))
    z ~ Normal.split(enc_z(x, c))
  }
}"#;

#[test]
fn enumeration_beside_a_gaussian_latent_matches_reference() {
    let (p, store, batch) = setup_gen(M2_SRC, 10, pseudo);
    compare_on("m2", &p, &store, &batch, 1, TOL);
    compare_on("m2", &p, &store, &batch, 2, TOL);
}

// ---- Bernoulli (`binary`) latents -----------------------------------------------------------

/// A binary VAE (`b` drawn by `est`, hidden layers `act`) with a learned prior `pb` (the
/// closed-form Bernoulli ‖ Bernoulli KL reaches both sides' logits).
fn bern_src(est: &str, act: &str) -> String {
    format!(
        r#"
model bern {{
  dim X = 64, H = 32
  observed x : unit[X]
  latent   b : binary[8] via {est}
  net enc = mlp(X -> H -> 8, {act})
  net dec = mlp(8 -> H -> X, {act})
  param pb : real[8] = [0.3, -0.2, 0.1, 0.0, -0.5, 0.4, 0.2, -0.1]
  p {{ b ~ Bernoulli(pb)   x ~ Bernoulli(dec(b)) }}
  q {{ b ~ Bernoulli(enc(x)) }}
}}"#
    )
}

/// The task's example: a zero-logit prior.
const BERN_ZERO: &str = r#"
model bern {
  dim X = 64, H = 32
  observed x : unit[X]
  latent   b : binary[8] via straight_through
  net enc = mlp(X -> H -> 8, relu)
  net dec = mlp(8 -> H -> X, relu)
  p { b ~ Bernoulli(zeros(8))   x ~ Bernoulli(dec(b)) }
  q { b ~ Bernoulli(enc(x)) }
}"#;

/// A time-indexed binary latent with a transition prior (closed-form KL per step), drawn
/// straight-through, beside a reparameterised Normal.
const BERN_TIMED: &str = r#"
model bern_seq {
  dim H = 8
  observed x[t] : real[3]
  latent   b[t] : binary[4] via straight_through
  latent   z[t] : real[2]
  init b[0] = 0
  init z[0] = 0
  net enc = mlp(3 + 4 -> H -> 4, tanh)
  net tr = mlp(4 -> H -> 4, tanh)
  net qz = mlp(3 + 4 -> H -> 2, tanh)
  net dec = mlp(4 + 2 -> H -> 3, tanh)
  p {
    b[t] ~ Bernoulli(tr(b[t-1]))
    z[t] ~ Normal(0.5 * z[t-1], 1)
    x[t] ~ Normal(dec(b[t], z[t]), 0.5)
  }
  q {
    b[t] ~ Bernoulli(enc(x[t], b[t-1]))
    z[t] ~ Normal(qz(x[t], b[t]), 0.3)
  }
}"#;

#[test]
fn bernoulli_latent_is_fused() {
    for src in [
        BERN_ZERO.to_string(),
        bern_src("score_function", "relu"),
        BERN_TIMED.to_string(),
    ] {
        let m = vic::compile(&src, "inline.vmodel").expect("compiles");
        let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
        assert!(vic::fused::caps::support(&p).is_ok(), "{src}");
    }
}

#[test]
fn bernoulli_straight_through_matches_reference() {
    let (p, store, batch) = setup_gen(BERN_ZERO, 10, pseudo);
    compare_on("bern_zero", &p, &store, &batch, 1, TOL);
    compare_on("bern_zero", &p, &store, &batch, 2, TOL);
    let (p, store, batch) = setup_gen(&bern_src("straight_through", "relu"), 9, pseudo);
    compare_on("bern_st", &p, &store, &batch, 2, TOL);
}

#[test]
fn bernoulli_score_function_matches_reference() {
    let (p, store, batch) = setup_gen(&bern_src("score_function", "relu"), 12, pseudo);
    compare_on("bern_sf", &p, &store, &batch, 1, TOL);
    compare_on("bern_sf", &p, &store, &batch, 2, TOL);
    compare_baseline("bern_sf", &p, &store, &batch, 0.0);
    compare_baseline("bern_sf", &p, &store, &batch, -30.0);
}

#[test]
fn bernoulli_over_time_and_under_iwae_match_reference() {
    let (p, store, batch) = setup_inline(BERN_TIMED, 5, 4);
    compare_on("bern_seq", &p, &store, &batch, 1, TOL);
    compare_on("bern_seq", &p, &store, &batch, 2, TOL);
    // IWAE (K = 1 copies of the batch here: derive turns the KL into a Monte Carlo
    // log-ratio of Bernoulli densities).
    let (p, store, batch) = setup_gen(&bern_src("straight_through", "relu"), 8, pseudo);
    let mut m = p.model.clone();
    m.objective.iwae = 2;
    let elbo = vic::derive::derive(&m);
    let p = Program::new(&m, &elbo).expect("lowers with IWAE");
    assert!(vic::fused::caps::support(&p).is_ok());
    compare_on("bern_iwae", &p, &store, &batch, 2, TOL);
}

/// Given the noise, the draws depend on the encoder only, so the loss is a smooth function of
/// the decoder and the prior's logits: their fused gradients (likelihood, closed-form KL)
/// against central differences at every coordinate.
#[test]
fn bernoulli_gradients_match_finite_differences() {
    // tanh: no kink for a difference step to cross.
    let (p, store, batch) = setup_gen(&bern_src("straight_through", "tanh"), 6, pseudo);
    let mut e = Engine::new(&p, &store, batch.b, 1, 2).expect("fused builds");
    let loss = |e: &mut Engine| -> f64 {
        let f = e.forward(&p, &batch, &mut rng::seeded(5), 0);
        -f.elbo.iter().map(|x| f64::from(*x)).sum::<f64>()
    };
    loss(&mut e);
    e.backward(&batch);
    let grads = e.grads.clone();
    let gmax = grads.iter().flatten().fold(0.0f32, |m, g| m.max(g.abs()));
    let mut checked = 0;
    for (i, name) in e.names.clone().iter().enumerate() {
        if !(name.starts_with("net.dec") || name == "param.pb") {
            continue;
        }
        let take = if name == "param.pb" { usize::MAX } else { 24 };
        for (j, &g) in grads[i].iter().enumerate().take(take) {
            let x0 = e.values[i][j];
            let h = 1e-2 * x0.abs().max(1.0);
            e.values[i][j] = x0 + h;
            let up = loss(&mut e);
            e.values[i][j] = x0 - h;
            let down = loss(&mut e);
            e.values[i][j] = x0;
            let fd = (up - down) / (2.0 * f64::from(h));
            let tol = 0.02 * f64::from(g.abs()) + 2e-3 * f64::from(gmax);
            assert!(
                (fd - f64::from(g)).abs() <= tol,
                "{name}[{j}]: backward {g} vs differences {fd}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8 + 24 * 4, "checked {checked}");
}

/// Free nats (per element, per step, after the mean) and KL balancing on Bernoulli KLs, on a
/// static and a time-indexed binary latent.
#[test]
fn bernoulli_kl_modifiers_match_reference() {
    let with = |src: &str, extra: &str| {
        let mut s = src.to_string();
        let end = s.rfind('}').expect("closing brace");
        s.insert_str(end, extra);
        s
    };
    let st = bern_src("straight_through", "relu");
    for (what, extra) in [
        (
            "free nats per element",
            "objective {\n free_nats = 0.05, placement = per_element\n}\n",
        ),
        (
            "free nats per step",
            "objective {\n free_nats = 0.3, placement = per_step\n}\n",
        ),
        (
            "free nats after the mean, balance",
            "objective {\n kl_balance = 0.8\n free_nats = 0.5, placement = after_mean\n}\n",
        ),
        ("KL balancing", "objective {\n kl_balance = 0.7\n}\n"),
    ] {
        for (name, src, b, t) in [
            ("bern_st", st.as_str(), 9, 1),
            ("bern_seq", BERN_TIMED, 5, 4),
        ] {
            let (p, store, batch) = if t == 1 {
                setup_gen(&with(src, extra), b, pseudo)
            } else {
                setup_inline(&with(src, extra), b, t)
            };
            assert!(vic::fused::caps::support(&p).is_ok(), "{name} with {what}");
            eprintln!("{name} with {what}:");
            compare_on(name, &p, &store, &batch, 2, TOL);
            // The modifier must change the gradient here, or this compares nothing new.
            let (p0, s0, b0) = if t == 1 {
                setup_gen(src, b, pseudo)
            } else {
                setup_inline(src, b, t)
            };
            let what = format!("{name} with {what}");
            assert_changes_gradient(&what, (&p0, &s0, &b0), (&p, &store, &batch));
        }
    }
}

/// The closed-form Bernoulli entropy, which no checked model reaches (a Flat cannot generate
/// a `binary` variable, E070): the IR of `bern_st` with p's factor of `b` made Flat, so derive
/// pairs q with the improper prior (an entropy term), on both runtimes.
#[test]
fn bernoulli_entropy_matches_reference() {
    use vic::derive::Compute;
    use vic::family::{EntropyForm, Family};
    use vic::ir::{Block, DistArgs, FactorBody};
    let (p, store, batch) = setup_gen(&bern_src("straight_through", "relu"), 9, pseudo);
    let mut m = p.model.clone();
    let b = m.vars.iter().position(|v| v.name == "b").expect("b");
    let f = (m.factors.iter_mut())
        .find(|f| f.block == Block::P && f.var == b)
        .expect("p's factor of b");
    let FactorBody::Sample(d) = &mut f.body else {
        panic!("a draw")
    };
    d.family = Family::Flat;
    d.args = DistArgs::None;
    f.parents.clear();
    let elbo = vic::derive::derive(&m);
    assert!(elbo
        .terms
        .iter()
        .any(|t| t.compute == Compute::Entropy(EntropyForm::Bernoulli)));
    let p = Program::new(&m, &elbo).expect("lowers");
    assert!(vic::fused::caps::support(&p).is_ok());
    compare_on("bern_entropy", &p, &store, &batch, 1, TOL);
    compare_on("bern_entropy", &p, &store, &batch, 2, TOL);
}

/// LogNormal, StudentT, Gamma, Beta and Poisson (`fused::special`): each as a latent with a
/// closed-form KL against its own family where one exists (LogNormal ‖ LogNormal through the
/// Normal KL, Gamma ‖ Gamma, Beta ‖ Beta; StudentT ‖ StudentT is a log-ratio), under a Flat
/// prior (closed-form entropies), against a Normal p (log-ratio), sampled through their
/// inverse-CDF samplers (implicit gradients) and as likelihoods (Poisson of counts, Gamma of
/// positive data, Beta of data in (0, 1), StudentT).
const SPECIAL: &str = r#"
model special {
  dim H = 6
  observed x[t] : real[2]
  observed n[t] : real[2]
  observed y : real[2]
  observed w : real[2]
  latent   z[t] : real[2]
  latent   g : real[2]
  latent   b : real[2]
  latent   r : real[2]
  latent   e1 : real[2]
  latent   e2 : real[2]
  latent   e3 : real[2]
  latent   e4 : real[2]
  init z[0] = 1
  net enc = mlp(4 -> H -> 4, tanh)
  param ga : real[2] = [0.3, -0.2]
  param gb : real[2] = [0.1, 0.5]
  param nu : real[2] = [1.5, 0.4]
  p {
    z[t] ~ LogNormal(0.3 * log(z[t-1]), 0.5)
    x[t] ~ StudentT(4, log(z[t]) + r, 0.5)
    n[t] ~ Poisson(exp(0.2 * log(z[t])) + g)
    g ~ Gamma(2, 3)
    b ~ Beta(2, 2)
    r ~ StudentT(3, 0, 1)
    y ~ Gamma(g + 1, 2 + b)
    w ~ Beta(1 + g, 1.5 + b)
    e1 ~ Flat
    e2 ~ Flat
    e3 ~ Flat
    e4 ~ Normal(0.5, 1)
  }
  q {
    z[t] ~ LogNormal.split(enc(x[t], log(z[t-1])), scale = softplus, min = 0.05)
    g ~ Gamma(softplus(ga) + 0.5, softplus(gb) + 0.5)
    b ~ Beta(softplus(ga) + 1, softplus(gb) + 1)
    r ~ StudentT(softplus(nu) + 2, ga, softplus(gb))
    e1 ~ Gamma(softplus(gb) + 1, 2)
    e2 ~ StudentT(softplus(nu) + 1, ga, softplus(ga))
    e3 ~ Beta(softplus(nu), 2)
    e4 ~ LogNormal(ga, softplus(nu))
  }
}
"#;

fn setup_special(b: usize, t: usize) -> (Program, ParamStore, Batch) {
    setup_synthetic(SPECIAL, b, t, |v, var, i| {
        let s = (0.37 * i as f32 + 0.11 * v as f32).sin();
        match var.name.as_str() {
            "n" => ((i * 7) % 5) as f32,
            "y" => 0.6 + 0.5 * s,
            "w" => 0.5 + 0.4 * s,
            _ => 0.9 * s,
        }
    })
}

#[test]
fn special_families_match_reference() {
    let (p, store, batch) = setup_special(6, 5);
    assert!(
        vic::fused::caps::support(&p).is_ok(),
        "the fused runtime runs every family"
    );
    compare_on("special", &p, &store, &batch, 1, TOL);
    compare_on("special", &p, &store, &batch, 2, TOL);
}

/// The special families' fused kernels (implicit reparameterisation gradients of the Gamma,
/// Beta and StudentT samplers, digamma/trigamma derivatives of their entropies and KLs)
/// against central differences of the fused loss.
#[test]
fn special_family_gradients_match_finite_differences() {
    let (p, store, batch) = setup_special(4, 4);
    let also = ["param.ga", "param.gb", "param.nu", "net.enc.l1.b"];
    finite_differences("special", &p, &store, &batch, &also);
}

/// MultivariateNormal: correlated process noise in p (a constant `scale_tril`), q's
/// `scale_tril` a learned matrix parameter (read row-major) for the closed-form MVN KL, one
/// from a net head of D² values under a Flat prior (closed-form entropy), and an MVN q against
/// a Normal p (log-ratio); an MVN likelihood.
const MVN: &str = r#"
model mvn {
  const A = [[1, 0.1], [0, 1]]
  observed y[t] : real[2]
  observed o : real[3]
  latent   x[t] : real[2]
  latent   v : real[3]
  latent   w : real[2]
  init x[0] = 0
  net head = mlp(3 -> 6 -> 9, tanh)
  param L : real[2, 2] = [[0.3, 0], [0.1, 0.35]]
  param m : real[2] = [0.1, -0.2]
  p {
    x[t] ~ MultivariateNormal(A @ x[t-1], scale_tril = [[0.3, 0], [0.15, 0.2]])
    y[t] ~ Normal(x[t] + w, 0.5)
    v ~ Flat
    w ~ Normal(0, 1)
    o ~ MultivariateNormal(v, scale_tril = [[1, 0, 0], [0.2, 0.8, 0], [-0.1, 0.3, 0.9]])
  }
  q {
    x[t] ~ MultivariateNormal(A @ x[t-1] + 0.5 * y[t], scale_tril = L)
    v ~ MultivariateNormal(o, scale_tril = head(o) * 0.1 + [1, 0, 0, 0, 1, 0, 0, 0, 1])
    w ~ MultivariateNormal(m, scale_tril = L)
  }
}
"#;

#[test]
fn multivariate_normal_matches_reference() {
    let (p, store, batch) = setup_inline(MVN, 5, 4);
    assert!(vic::fused::caps::support(&p).is_ok());
    compare_on("mvn", &p, &store, &batch, 1, TOL);
    compare_on("mvn", &p, &store, &batch, 2, TOL);
}

#[test]
fn multivariate_normal_gradients_match_finite_differences() {
    let (p, store, batch) = setup_inline(MVN, 4, 4);
    finite_differences(
        "mvn",
        &p,
        &store,
        &batch,
        &["param.L", "param.m", "net.head.l1.b"],
    );
}

/// A smoothing window over data in q: `y[t+1]` and `y[t+2]` read ahead (zeros past the last
/// step), beside a filtering read of `z[t-1]`.
const WINDOW: &str = r#"
model window {
  dim H = 6
  observed y[t] : real[2]
  latent   z[t] : real[2]
  init z[0] = 0
  net enc = mlp(8 -> H -> 4, tanh)
  p {
    z[t] ~ Normal(0.9 * z[t-1], 0.5)
    y[t] ~ Normal(z[t], 0.3)
  }
  q {
    z[t] ~ Normal.split(enc(y[t], y[t+1], 0.5 * y[t+2], z[t-1]), min = 0.05)
  }
}
"#;

/// The same q with the look-ahead passed as inputs: `u[t] = y[t+1]`, `w[t] = y[t+2]`, zeros
/// past the end — the documented edge rule, written out by hand.
const WINDOW_AS_INPUTS: &str = r#"
model window {
  dim H = 6
  observed y[t] : real[2]
  input    u[t] : real[2]
  input    w[t] : real[2]
  latent   z[t] : real[2]
  init z[0] = 0
  net enc = mlp(8 -> H -> 4, tanh)
  p {
    z[t] ~ Normal(0.9 * z[t-1], 0.5)
    y[t] ~ Normal(z[t], 0.3)
  }
  q {
    z[t] ~ Normal.split(enc(y[t], u[t], 0.5 * w[t], z[t-1]), min = 0.05)
  }
}
"#;

#[test]
fn data_windows_in_q_match_reference_and_the_shifted_inputs() {
    let (b, t) = (4, 5);
    let (p, store, batch) = setup_inline(WINDOW, b, t);
    assert!(vic::fused::caps::support(&p).is_ok());
    compare_on("window", &p, &store, &batch, 1, TOL);
    compare_on("window", &p, &store, &batch, 2, TOL);
    // The edge rule: the same ELBO as the model fed the shifted data as inputs.
    let m2 = vic::compile(WINDOW_AS_INPUTS, "window2.vmodel").expect("compiles");
    let p2 = Program::new(m2.ir(), &m2.elbo()).expect("lowers");
    let y = p.model.vars.iter().position(|v| v.name == "y").unwrap();
    let yv = &batch.data[&y];
    let shifted = |k: usize| -> Vec<f32> {
        (0..t * b * 2)
            .map(|i| {
                let step = i / (b * 2);
                if step + k < t {
                    yv[i + k * b * 2]
                } else {
                    0.0
                }
            })
            .collect()
    };
    let id = |n: &str| p2.model.vars.iter().position(|v| v.name == n).unwrap();
    let mut data = std::collections::HashMap::new();
    data.insert(id("y"), yv.clone());
    data.insert(id("u"), shifted(1));
    data.insert(id("w"), shifted(2));
    let batch2 = Batch {
        b,
        t,
        data,
        mask: None,
    };
    let (e1, _) = reference(&p, &store, &batch);
    let (e2, _) = reference(&p2, &store, &batch2);
    assert!(
        rel_err(&e1, &e2, 1.0) < 1e-6,
        "window {e1:?} vs shifted inputs {e2:?}"
    );
}

/// A modifier under test changes the reference gradient (by more than 1e-3 relative in some
/// parameter), or the comparison with it checks nothing the plain model did not.
fn assert_changes_gradient(
    what: &str,
    (p0, s0, b0): (&Program, &ParamStore, &Batch),
    (p, s, b): (&Program, &ParamStore, &Batch),
) {
    let (_, plain) = reference(p0, s0, b0);
    let (_, modified) = reference(p, s, b);
    let diff = plain
        .iter()
        .zip(&modified)
        .map(|((_, a), (_, b))| rel_err(b, a, 1e-3))
        .fold(0.0f32, f32::max);
    assert!(
        diff > 1e-3,
        "{what}: the modifier did not change the gradient ({diff:e})"
    );
}
