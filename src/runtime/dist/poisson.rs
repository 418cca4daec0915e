//! Poisson(rate λ), elementwise over cols: a likelihood of observed counts only (the checker
//! refuses it on a latent). `ln p(k) = k ln λ − λ − ln Γ(k + 1)`; at a non-integer `k` this
//! is the continuous extension through Γ (the data are not rounded).

use dfdx::prelude::*;

use crate::runtime::ops::{from_host, row_sum};
use crate::runtime::special;
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::T2;

use super::ln_gamma;

/// `Σ k ln λ − λ − ln Γ(k + 1)` → `(rows, 1)`.
pub fn log_prob<T: RtTape>(k: T2<T>, rate: T2<T>) -> T2<T> {
    let (k1, k2) = fork(k);
    let (r1, r2) = fork(rate);
    row_sum(k1 * r1.ln() - r2 - ln_gamma(k2 + 1.0))
}

/// A draw of counts by inversion of the CDF from uniform noise `u` (no gradient; the
/// posterior predictive's draw of an observed Poisson, the same one the fused kernel makes).
pub fn sample<T: RtTape>(rate: &T2<T>, u: T2) -> T2 {
    let (r, c) = (u.shape().0, u.shape().1);
    let v = (rate.as_vec().iter().zip(u.as_vec()))
        .map(|(&l, u)| special::poisson_quantile(f64::from(l), u) as f32)
        .collect();
    from_host(rate.device(), v, r, c)
}
