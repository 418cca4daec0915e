//! Diagonal Normal(loc, scale).

use dfdx::prelude::*;

use crate::runtime::ops::{cols, row_sum, softplus, HALF_LN_2PI};
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::{RtError, T2};

/// Per-element `ln N(x; loc, scale)`.
pub fn log_prob_elem<T: RtTape>(x: T2<T>, loc: T2<T>, scale: T2<T>) -> T2<T> {
    let (s1, s2) = fork(scale);
    let z = (x - loc) / s1;
    z.square() * -0.5 - s2.ln() - HALF_LN_2PI
}

/// `ln N(x; loc, scale)` summed over cols → `(rows, 1)`.
pub fn log_prob<T: RtTape>(x: T2<T>, loc: T2<T>, scale: T2<T>) -> T2<T> {
    row_sum(log_prob_elem(x, loc, scale))
}

/// Reparameterised sample `loc + scale · eps`, `eps ~ N(0, 1)` (see [`crate::runtime::rng::normal_noise`]).
pub fn rsample<T: RtTape>(loc: T2<T>, scale: T2<T>, eps: T2) -> T2<T> {
    loc + scale * eps
}

/// Entropy `Σ_cols (½ + ½ln2π + ln scale)` → `(rows, 1)`.
pub fn entropy<T: RtTape>(scale: T2<T>) -> T2<T> {
    row_sum(scale.ln() + (0.5 + HALF_LN_2PI))
}

/// Per-element `KL(N(qloc, qscale) ‖ N(ploc, pscale))`.
pub fn kl_elem<T: RtTape>(qloc: T2<T>, qscale: T2<T>, ploc: T2<T>, pscale: T2<T>) -> T2<T> {
    let (ps1, ps2) = fork(pscale);
    let u = qscale / ps1; // σq/σp
    let (u1, u2) = fork(u);
    let d = (qloc - ploc) / ps2;
    (u1.square() + d.square()) * 0.5 - u2.ln() - 0.5
}

/// `KL(N(qloc, qscale) ‖ N(ploc, pscale))` summed over cols → `(rows, 1)`.
pub fn kl<T: RtTape>(qloc: T2<T>, qscale: T2<T>, ploc: T2<T>, pscale: T2<T>) -> T2<T> {
    row_sum(kl_elem(qloc, qscale, ploc, pscale))
}

/// How the second half of a network output becomes a scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleLink {
    /// `softplus(raw) + min_scale`.
    Softplus {
        /// Added to the softplus: the smallest scale the link can give.
        min_scale: f32,
    },
    /// `exp(raw)`.
    Exp,
}

/// Maps raw values to a positive scale.
pub fn scale_from_raw<T: RtTape>(raw: T2<T>, link: ScaleLink) -> T2<T> {
    match link {
        ScaleLink::Softplus { min_scale } => softplus(raw) + min_scale,
        ScaleLink::Exp => raw.exp(),
    }
}

/// Splits `(rows, 2D)` into `loc = h[:, :D]`, `scale = link(h[:, D:])`. With `OwnedTape`
/// the tape goes with `loc`.
pub fn split_loc_scale<T: RtTape>(h: T2<T>, link: ScaleLink) -> Result<(T2<T>, T2<T>), RtError> {
    let c = h.shape().1;
    if !c.is_multiple_of(2) {
        return Err(RtError::Shape(format!(
            "loc/scale split needs an even number of cols, got {c}"
        )));
    }
    let d = c / 2;
    let (a, b) = fork(h);
    Ok((cols(a, 0, d), scale_from_raw(cols(b, d, c), link)))
}
