//! TanhNormal: `y = tanh(u)`, `u ~ N(loc, scale)`.

use crate::runtime::ops::{row_sum, softplus};
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::T2;

use super::normal;

/// Clamp applied to `y` before `atanh` in [`log_prob`].
pub const Y_CLAMP: f32 = 1.0 - 1e-6;

/// Per-element `ln(1 − tanh(u)²) = 2(ln2 − u − softplus(−2u))`, stable for large `|u|`.
pub fn log_abs_det_jacobian<T: RtTape>(u: T2<T>) -> T2<T> {
    let (u1, u2) = fork(u);
    (u1.negate() - softplus(u2 * -2.0) + std::f32::consts::LN_2) * 2.0
}

/// Reparameterised sample; returns `(y, u)` with `y = tanh(u)`, `u = loc + scale·eps`.
/// With `OwnedTape` the tape goes with `y`.
pub fn rsample<T: RtTape>(loc: T2<T>, scale: T2<T>, eps: T2) -> (T2<T>, T2<T>) {
    let (u1, u2) = fork(normal::rsample(loc, scale, eps));
    (u1.tanh(), u2)
}

/// `ln p(y)` from the pre-tanh value `u` (the stable form) → `(rows, 1)`.
pub fn log_prob_pre<T: RtTape>(u: T2<T>, loc: T2<T>, scale: T2<T>) -> T2<T> {
    let (u1, u2) = fork(u);
    row_sum(normal::log_prob_elem(u1, loc, scale) - log_abs_det_jacobian(u2))
}

/// `ln p(y)` from `y ∈ (−1, 1)` via `u = atanh(clamp(y))` → `(rows, 1)`.
pub fn log_prob<T: RtTape>(y: T2<T>, loc: T2<T>, scale: T2<T>) -> T2<T> {
    let (y1, y2) = fork(y.clamp(-Y_CLAMP, Y_CLAMP));
    let u = ((y1 + 1.0).ln() - (y2.negate() + 1.0).ln()) * 0.5;
    log_prob_pre(u, loc, scale)
}
