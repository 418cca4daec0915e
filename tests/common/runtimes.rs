//! One forward and backward pass of a lowered program on each runtime (the same seed, 5), and
//! the f64 helpers the exact references of the chain tests share (tests/hmm.rs, qchain.rs,
//! switching.rs).

use std::collections::HashMap;

use vic::fused::Engine;
use vic::lower::{Batch, Program};
use vic::runtime::nets::params::ParamStore;
use vic::runtime::{backward, rng};

/// What one pass gives: the ELBO per sequence, each term (per sequence on the reference
/// runtime, its mean on the fused one) and the gradients of the negated objective by name.
pub struct Pass<T> {
    pub elbo: Vec<f32>,
    pub terms: Vec<T>,
    pub grads: HashMap<String, Vec<f32>>,
}

/// The dfdx reference runtime.
pub fn reference(prog: &Program, store: &ParamStore, batch: &Batch) -> Pass<Vec<f32>> {
    let traced = store.trace();
    let fwd = prog
        .forward(&traced, batch, &mut rng::seeded(5), 0, 0.0)
        .expect("reference forward");
    let elbo = fwd.elbo.as_vec();
    let terms = fwd.terms.iter().map(|t| t.as_vec()).collect();
    drop(traced);
    let mut grads = backward(fwd.objective.negate());
    Pass {
        elbo,
        terms,
        grads: store.grads(&mut grads).into_iter().collect(),
    }
}

/// The fused CPU runtime with `threads` workers.
pub fn fused(prog: &Program, store: &ParamStore, batch: &Batch, threads: usize) -> Pass<f64> {
    let mut e = Engine::new(prog, store, batch.b, batch.t, threads).expect("builds");
    let fwd = e.forward(prog, batch, &mut rng::seeded(5), 0);
    e.backward(batch);
    Pass {
        elbo: fwd.elbo,
        terms: fwd.terms,
        grads: e
            .names
            .iter()
            .cloned()
            .zip(e.grads.iter().cloned())
            .collect(),
    }
}

/// log Σ exp, stable.
pub fn lse(x: &[f64]) -> f64 {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// ln(1 + eˣ), as the runtimes compute it above 20.
pub fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}
