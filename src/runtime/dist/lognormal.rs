//! LogNormal(loc, scale), elementwise over cols: `z = exp(u)`, `u ~ N(loc, scale)`. The
//! closed-form KL of two LogNormals is the Normal KL of their logs (`normal::kl`: the family
//! row names `KlForm::NormalNormal`).

use crate::runtime::ops::{row_sum, HALF_LN_2PI};
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::T2;

use super::normal;

/// `ln p(x) = ln N(ln x; loc, scale) − ln x`, summed over cols → `(rows, 1)`.
pub fn log_prob<T: RtTape>(x: T2<T>, loc: T2<T>, scale: T2<T>) -> T2<T> {
    let (l1, l2) = fork(x.ln());
    row_sum(normal::log_prob_elem(l1, loc, scale) - l2)
}

/// Reparameterised sample `exp(loc + scale·ε)`, `ε ~ N(0, 1)`.
pub fn rsample<T: RtTape>(loc: T2<T>, scale: T2<T>, eps: T2) -> T2<T> {
    normal::rsample(loc, scale, eps).exp()
}

/// Entropy `Σ loc + ½ + ½ln2π + ln scale` → `(rows, 1)`.
pub fn entropy<T: RtTape>(loc: T2<T>, scale: T2<T>) -> T2<T> {
    row_sum(loc + scale.ln() + (0.5 + HALF_LN_2PI))
}
