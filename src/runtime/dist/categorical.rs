//! Categorical with `G` independent groups of `K` classes: logits and one-hot values are
//! `(rows, G·K)`, group `g` occupying cols `g·K .. (g+1)·K`.

use dfdx::prelude::*;
use rand::Rng as _;

use crate::runtime::ops::{from_host, row_sum, stop_gradient};
use crate::runtime::rng::Rng;
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::{Dev, RtError, T2};

fn check(x_cols: usize, k: usize) -> Result<usize, RtError> {
    if k == 0 || !x_cols.is_multiple_of(k) {
        return Err(RtError::Shape(format!(
            "categorical: {x_cols} cols is not a multiple of K = {k}"
        )));
    }
    Ok(x_cols / k)
}

/// Per-group log-softmax, `(rows, G·K)`.
pub fn log_probs<T: RtTape>(logits: T2<T>, k: usize) -> Result<T2<T>, RtError> {
    let (r, c) = *logits.shape();
    let g = check(c, k)?;
    Ok(logits
        .reshape_like(&(r * g, k))
        .log_softmax::<Axis<1>>()
        .reshape_like(&(r, c)))
}

/// Per-group softmax, `(rows, G·K)`.
pub fn probs<T: RtTape>(logits: T2<T>, k: usize) -> Result<T2<T>, RtError> {
    let (r, c) = *logits.shape();
    let g = check(c, k)?;
    Ok(logits
        .reshape_like(&(r * g, k))
        .softmax::<Axis<1>>()
        .reshape_like(&(r, c)))
}

/// `ln p(value)` for one-hot (or relaxed) `value`, summed over groups → `(rows, 1)`.
pub fn log_prob<T: RtTape>(value: T2<T>, logits: T2<T>, k: usize) -> Result<T2<T>, RtError> {
    Ok(row_sum(value * log_probs(logits, k)?))
}

/// Entropy summed over groups → `(rows, 1)`.
pub fn entropy<T: RtTape>(logits: T2<T>, k: usize) -> Result<T2<T>, RtError> {
    let (lp1, lp2) = fork(log_probs(logits, k)?);
    Ok(row_sum(lp1.exp() * lp2).negate())
}

/// `KL(q ‖ p)` summed over groups → `(rows, 1)`.
pub fn kl<T: RtTape>(qlogits: T2<T>, plogits: T2<T>, k: usize) -> Result<T2<T>, RtError> {
    let (lq1, lq2) = fork(log_probs(qlogits, k)?);
    let lp = log_probs(plogits, k)?;
    Ok(row_sum(lq1.exp() * (lq2 - lp)))
}

/// A one-hot sample `(rows, G·K)` (no gradient), by inverse CDF per group.
pub fn sample<T: RtTape>(logits: &T2<T>, k: usize, rng: &mut Rng) -> Result<T2, RtError> {
    let (r, c) = *logits.shape();
    check(c, k)?;
    let p = probs(logits.retaped::<NoneTape>(), k)?.as_vec();
    let mut out = vec![0.0f32; r * c];
    for (pg, og) in p.chunks(k).zip(out.chunks_mut(k)) {
        let u: f32 = rng.gen();
        let mut acc = 0.0f32;
        let mut pick = k - 1;
        for (j, &pj) in pg.iter().enumerate() {
            acc += pj;
            if u < acc {
                pick = j;
                break;
            }
        }
        og[pick] = 1.0;
    }
    Ok(from_host(logits.device(), out, r, c))
}

/// Straight-through one-hot sample: value = one-hot, gradient = that of the probabilities.
pub fn sample_st<T: RtTape>(logits: T2<T>, k: usize, rng: &mut Rng) -> Result<T2<T>, RtError> {
    let s = sample(&logits, k, rng)?;
    let p = probs(logits, k)?;
    let sg = stop_gradient(&p);
    Ok(p - sg + s)
}

/// All `K^G` one-hot values, each broadcast to `(rows, G·K)`, in lexicographic order (group
/// 0 most significant). Meant for small `K^G` (exact enumeration of discrete latents).
pub fn enumerate(dev: &Dev, g: usize, k: usize, rows: usize) -> Vec<T2> {
    let n = k.pow(g as u32);
    (0..n)
        .map(|mut idx| {
            let mut row = vec![0.0f32; g * k];
            for gi in (0..g).rev() {
                row[gi * k + idx % k] = 1.0;
                idx /= k;
            }
            let data = row.iter().copied().cycle().take(rows * g * k).collect();
            from_host(dev, data, rows, g * k)
        })
        .collect()
}
