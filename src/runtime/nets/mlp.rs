//! Multi-layer perceptron on `ParamStore` parameters `{prefix}.l{i}.w: (in, out)`,
//! `{prefix}.l{i}.b: (out,)` for `i = 0 .. sizes.len() − 1`.

use dfdx::prelude::*;

use crate::runtime::ops::affine;
use crate::runtime::rng::Rng;
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::{RtError, T2};

use super::params::{ParamStore, Params};

pub use crate::forms::Activation;

/// Applies `act` elementwise.
pub fn activate<T: RtTape>(x: T2<T>, act: Activation) -> T2<T> {
    match act {
        Activation::Relu => x.relu(),
        Activation::Tanh => x.tanh(),
        // elu(x) = relu(x) + exp(min(x, 0)) − 1
        Activation::Elu => {
            let (a, b) = fork(x);
            a.relu() + (b.clamp(f32::MIN, 0.0).exp() - 1.0)
        }
        Activation::Silu => {
            let (a, b) = fork(x);
            a * b.sigmoid()
        }
        Activation::Identity => x,
    }
}

/// Registers an MLP with layer sizes `[in, h…, out]` (PyTorch init).
pub fn add_mlp(
    store: &mut ParamStore,
    prefix: &str,
    sizes: &[usize],
    rng: &mut Rng,
) -> Result<(), RtError> {
    if sizes.len() < 2 {
        return Err(RtError::Shape(format!(
            "mlp `{prefix}` needs at least [in, out], got {sizes:?}"
        )));
    }
    for (i, w) in sizes.windows(2).enumerate() {
        store.add_linear(&format!("{prefix}.l{i}"), w[0], w[1], rng)?;
    }
    Ok(())
}

/// Number of layers registered under `prefix`.
fn n_layers<T, P: Params<T>>(p: &P, prefix: &str) -> usize {
    (0..)
        .take_while(|i| p.mat(&format!("{prefix}.l{i}.w")).is_ok())
        .count()
}

/// `x: (rows, in) → (rows, out)`; `act` after every layer but the last.
pub fn mlp_forward<T: RtTape, P: Params<T>>(
    p: &P,
    prefix: &str,
    x: T2<T>,
    act: Activation,
) -> Result<T2<T>, RtError> {
    mlp_forward_layers(p, prefix, x, act, n_layers(p, prefix))
}

/// [`mlp_forward`] for a caller that knows the number of layers (no probing of the store).
pub fn mlp_forward_layers<T: RtTape, P: Params<T>>(
    p: &P,
    prefix: &str,
    x: T2<T>,
    act: Activation,
    n: usize,
) -> Result<T2<T>, RtError> {
    if n == 0 {
        return Err(RtError::MissingParam(format!("{prefix}.l0.w")));
    }
    let mut h = x;
    for i in 0..n {
        let w = p.mat(&format!("{prefix}.l{i}.w"))?;
        let b = p.vector(&format!("{prefix}.l{i}.b"))?;
        if h.shape().1 != w.shape().0 {
            return Err(RtError::Shape(format!(
                "mlp `{prefix}` layer {i}: input has {} cols, weight is {:?}",
                h.shape().1,
                w.shape()
            )));
        }
        h = affine(h, w, b);
        if i + 1 < n {
            h = activate(h, act);
        }
    }
    Ok(h)
}
