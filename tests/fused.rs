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
    let m = vic::compile(&src, file).expect("compiles");
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
        let (_, plain) = reference(&p0, &s0, &b0);
        let (_, modified) = reference(&p, &store, &batch);
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
        let mut e = Engine::new(&p, &store, batch.b, batch.t.max(1), 2).expect("fused builds");
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
        let mut checked = 0;
        for &(i, j, g) in coords.iter().take(6) {
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

// --- Discrete latents: categorical draws (straight-through, score function), exact
// enumeration, grouped one-hots and categorical likelihoods against the reference path.

/// An inline model and a batch of `b` rows of its (static) data, drawn from `gen(i, j)`
/// for row `i`, column `j` of each data variable.
fn setup_src(
    src: &str,
    b: usize,
    gen: impl Fn(&str, usize, usize) -> f32,
) -> (Program, ParamStore, Batch) {
    let m = vic::compile(src, "inline.vmodel").expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let store = p
        .init_params(&Dev::default(), &mut rng::seeded(11))
        .expect("params");
    let mut data = std::collections::HashMap::new();
    for (v, var) in p.model.vars.iter().enumerate() {
        if matches!(var.role, vic::ir::Role::Observed | vic::ir::Role::Input) {
            let size = var.ty.size();
            let host = (0..b * size)
                .map(|k| gen(&var.name, k / size, k % size))
                .collect();
            data.insert(v, host);
        }
    }
    let batch = Batch {
        b,
        t: 1,
        data,
        mask: None,
    };
    (p, store, batch)
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
    let (p, store, batch) = setup_src(ENUM_SRC, 10, pseudo);
    compare_on("enum_mix", &p, &store, &batch, 1, TOL);
    compare_on("enum_mix", &p, &store, &batch, 2, TOL);
}

#[test]
fn grouped_one_hot_enumeration_and_straight_through_match_reference() {
    let (p, store, batch) = setup_src(GROUPED_SRC, 9, pseudo);
    compare_on("grouped", &p, &store, &batch, 2, TOL);
}

#[test]
fn score_function_with_groups_and_categorical_likelihood_matches_reference() {
    let (p, store, batch) = setup_src(SF_SRC, 12, pseudo);
    compare_on("sf_groups", &p, &store, &batch, 1, TOL);
    compare_baseline("sf_groups", &p, &store, &batch, 0.0);
    compare_baseline("sf_groups", &p, &store, &batch, -2.25);
}

/// Exact enumeration has no sampling: the fused gradient against central differences of its
/// own loss, at every coordinate of the encoder (the enumeration weights' gradient).
#[test]
fn enumeration_gradient_matches_finite_differences() {
    let (p, store, batch) = setup_src(ENUM_SRC, 6, pseudo);
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
    let (p, store, batch) = setup_src(M2_SRC, 10, pseudo);
    compare_on("m2", &p, &store, &batch, 1, TOL);
    compare_on("m2", &p, &store, &batch, 2, TOL);
}
