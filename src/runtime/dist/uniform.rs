//! Uniform(low, high), elementwise over cols.

use dfdx::prelude::*;

use crate::runtime::ops::{from_host, row_sum};
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::{RtError, T2};

/// `ln p(x)` summed over cols → `(rows, 1)`: `−Σ ln(high − low)`, `−inf` where `x` is outside
/// `[low, high]` (never NaN). No gradient flows to `x` (it is zero inside the support).
pub fn log_prob<X, T: RtTape>(x: &T2<X>, low: T2<T>, high: T2<T>) -> T2<T> {
    let (r, c) = *low.shape();
    let (xv, lv, hv) = (x.as_vec(), low.as_vec(), high.as_vec());
    let mask = xv
        .iter()
        .zip(lv.iter().zip(hv.iter()))
        .map(|(&x, (&l, &h))| {
            if x >= l && x <= h {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let mask = from_host(low.device(), mask, r, c);
    row_sum((high - low).ln().negate() + mask)
}

/// Entropy `Σ ln(high − low)` → `(rows, 1)`.
pub fn entropy<T: RtTape>(low: T2<T>, high: T2<T>) -> T2<T> {
    row_sum((high - low).ln())
}

/// Reparameterised sample `low + (high − low)·u`, `u ~ U[0, 1)`.
pub fn rsample<T: RtTape>(low: T2<T>, high: T2<T>, u: T2) -> T2<T> {
    let (l1, l2) = fork(low);
    (high - l1) * u + l2
}

/// `KL(U(ql, qh) ‖ U(pl, ph)) = Σ ln((ph − pl)/(qh − ql))` → `(rows, 1)`; `Err(InfiniteKl)`
/// when some `[ql, qh] ⊄ [pl, ph]`.
pub fn kl<T: RtTape>(
    qlow: T2<T>,
    qhigh: T2<T>,
    plow: T2<T>,
    phigh: T2<T>,
) -> Result<T2<T>, RtError> {
    let (ql, qh, pl, ph) = (qlow.as_vec(), qhigh.as_vec(), plow.as_vec(), phigh.as_vec());
    let cols = qlow.shape().1;
    for i in 0..ql.len() {
        if ql[i] < pl[i] || qh[i] > ph[i] {
            return Err(RtError::InfiniteKl(format!(
                "uniform q = [{}, {}] is not inside p = [{}, {}] at row {}, col {}",
                ql[i],
                qh[i],
                pl[i],
                ph[i],
                i / cols,
                i % cols
            )));
        }
    }
    Ok(row_sum((phigh - plow).ln() - (qhigh - qlow).ln()))
}
