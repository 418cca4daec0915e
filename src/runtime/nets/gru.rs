//! GRU cell (PyTorch's formulation) and a scan over time.
//!
//! Parameters under `prefix`: `w_i: (in, 3H)`, `w_h: (H, 3H)`, `b_i: (3H,)`, `b_h: (3H,)`,
//! gate blocks in PyTorch order `[r | z | n]`:
//! `r = σ(x W_ir + b_ir + h W_hr + b_hr)`, `z = σ(x W_iz + b_iz + h W_hz + b_hz)`,
//! `n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`.

use dfdx::prelude::*;

use crate::runtime::ops::{affine, cols, rows};
use crate::runtime::rng::Rng;
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::{RtError, T2};

use super::params::{ParamStore, Params};

/// Registers a GRU `input → hidden` (PyTorch init `U(±1/√hidden)`).
pub fn add_gru(
    store: &mut ParamStore,
    prefix: &str,
    input: usize,
    hidden: usize,
    rng: &mut Rng,
) -> Result<(), RtError> {
    let b = 1.0 / (hidden as f32).sqrt();
    store.insert_uniform(&format!("{prefix}.w_i"), &[input, 3 * hidden], b, rng)?;
    store.insert_uniform(&format!("{prefix}.w_h"), &[hidden, 3 * hidden], b, rng)?;
    store.insert_uniform(&format!("{prefix}.b_i"), &[3 * hidden], b, rng)?;
    store.insert_uniform(&format!("{prefix}.b_h"), &[3 * hidden], b, rng)
}

/// One step: `h_prev: (rows, H)`, `x: (rows, in)` → `h: (rows, H)`.
pub fn gru_cell<T: RtTape, P: Params<T>>(
    p: &P,
    prefix: &str,
    h_prev: T2<T>,
    x: T2<T>,
) -> Result<T2<T>, RtError> {
    let w_i = p.mat(&format!("{prefix}.w_i"))?;
    let w_h = p.mat(&format!("{prefix}.w_h"))?;
    let b_i = p.vector(&format!("{prefix}.b_i"))?;
    let b_h = p.vector(&format!("{prefix}.b_h"))?;
    let hd = h_prev.shape().1;
    if w_h.shape() != &(hd, 3 * hd) || x.shape().1 != w_i.shape().0 || w_i.shape().1 != 3 * hd {
        return Err(RtError::Shape(format!(
            "gru `{prefix}`: h {:?}, x {:?}, w_i {:?}, w_h {:?}",
            h_prev.shape(),
            x.shape(),
            w_i.shape(),
            w_h.shape()
        )));
    }
    let (h1, h2) = fork(h_prev);
    let gi = affine(x, w_i, b_i);
    let gh = affine(h1, w_h, b_h);
    let (gi1, gi) = fork(gi);
    let (gi2, gi3) = fork(gi);
    let (gh1, gh) = fork(gh);
    let (gh2, gh3) = fork(gh);
    let r = (cols(gi1, 0, hd) + cols(gh1, 0, hd)).sigmoid();
    let z = (cols(gi2, hd, 2 * hd) + cols(gh2, hd, 2 * hd)).sigmoid();
    let n = (cols(gi3, 2 * hd, 3 * hd) + r * cols(gh3, 2 * hd, 3 * hd)).tanh();
    // h' = n + z ⊙ (h − n)
    let (n1, n2) = fork(n);
    Ok(z * (h2 - n1) + n2)
}

/// Runs the GRU over `xs` (one `(rows, in)` tensor per time step) from `h0: (rows, H)`.
/// Returns one hidden state per step, aligned with `xs`: forward, `out[t]` has seen
/// `xs[0..=t]`; reverse, `out[t]` has seen `xs[t..]`.
pub fn rnn_scan<T: RtTape, P: Params<T>>(
    p: &P,
    prefix: &str,
    h0: T2<T>,
    xs: Vec<T2<T>>,
    reverse: bool,
) -> Result<Vec<T2<T>>, RtError> {
    let n = xs.len();
    let mut out: Vec<Option<T2<T>>> = (0..n).map(|_| None).collect();
    let mut h = h0;
    let order: Vec<usize> = if reverse {
        (0..n).rev().collect()
    } else {
        (0..n).collect()
    };
    let mut xs: Vec<Option<T2<T>>> = xs.into_iter().map(Some).collect();
    for t in order {
        let x = xs[t].take().expect("each step visited once");
        let (h_keep, h_next) = fork(gru_cell(p, prefix, h, x)?);
        out[t] = Some(h_keep);
        h = h_next;
    }
    Ok(out.into_iter().map(|h| h.expect("filled")).collect())
}

/// Splits a time-major `(T·rows, cols)` tensor (row `t·rows + b`) into `T` tensors `(rows, cols)`.
pub fn split_time<T: RtTape>(x: T2<T>, steps: usize) -> Result<Vec<T2<T>>, RtError> {
    let total = x.shape().0;
    if steps == 0 || !total.is_multiple_of(steps) {
        return Err(RtError::Shape(format!(
            "{total} rows do not split into {steps} steps"
        )));
    }
    let r = total / steps;
    let mut rest = x;
    let mut out = Vec::with_capacity(steps);
    for t in 0..steps {
        let (a, b) = fork(rest);
        out.push(rows(a, t * r, (t + 1) * r));
        rest = b;
    }
    Ok(out)
}

/// Stacks `T` tensors `(rows, cols)` time-major into `(T·rows, cols)`.
pub fn stack_time<T: RtTape>(xs: Vec<T2<T>>) -> Result<T2<T>, RtError> {
    let Some(first) = xs.first() else {
        return Err(RtError::Shape("stack_time of no steps".into()));
    };
    let (r, c) = *first.shape();
    let steps = xs.len();
    Ok(xs.stack().reshape_like(&(steps * r, c)))
}
