//! Bernoulli(logits); values may be continuous in `[0, 1]` (then `log_prob` = −BCE).

use dfdx::prelude::*;
use rand::Rng as _;

use crate::runtime::ops::{from_host, row_sum, softplus, stop_gradient};
use crate::runtime::rng::Rng;
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::T2;

/// Per-element `x·l − softplus(l)` (= −BCE-with-logits).
pub fn log_prob_elem<T: RtTape>(x: T2<T>, logits: T2<T>) -> T2<T> {
    let (l1, l2) = fork(logits);
    x * l1 - softplus(l2)
}

/// Log-probability summed over cols → `(rows, 1)`.
pub fn log_prob<T: RtTape>(x: T2<T>, logits: T2<T>) -> T2<T> {
    row_sum(log_prob_elem(x, logits))
}

/// Per-element entropy `softplus(l) − σ(l)·l`.
pub fn entropy_elem<T: RtTape>(logits: T2<T>) -> T2<T> {
    let (l1, l2) = fork(logits);
    let (l2, l3) = fork(l2);
    softplus(l1) - l2.sigmoid() * l3
}

/// Entropy summed over cols → `(rows, 1)`.
pub fn entropy<T: RtTape>(logits: T2<T>) -> T2<T> {
    row_sum(entropy_elem(logits))
}

/// Per-element `KL(Bern(σ(a)) ‖ Bern(σ(b))) = σ(a)(a − b) − softplus(a) + softplus(b)`.
pub fn kl_elem<T: RtTape>(qlogits: T2<T>, plogits: T2<T>) -> T2<T> {
    let (a1, a2) = fork(qlogits);
    let (a2, a3) = fork(a2);
    let (b1, b2) = fork(plogits);
    a1.sigmoid() * (a2 - b1) - softplus(a3) + softplus(b2)
}

/// KL summed over cols → `(rows, 1)`.
pub fn kl<T: RtTape>(qlogits: T2<T>, plogits: T2<T>) -> T2<T> {
    row_sum(kl_elem(qlogits, plogits))
}

/// A 0/1 sample (no gradient).
pub fn sample<T: RtTape>(logits: &T2<T>, rng: &mut Rng) -> T2 {
    let (r, c) = *logits.shape();
    let p = logits.retaped::<NoneTape>().sigmoid().as_vec();
    let v = p
        .iter()
        .map(|&p| if rng.gen::<f32>() < p { 1.0 } else { 0.0 })
        .collect();
    from_host(logits.device(), v, r, c)
}

/// Straight-through sample: value = 0/1 sample, gradient = that of `σ(logits)`.
pub fn sample_st<T: RtTape>(logits: T2<T>, rng: &mut Rng) -> T2<T> {
    let s = sample(&logits, rng);
    let p = logits.sigmoid();
    let sg = stop_gradient(&p);
    p - sg + s
}
