//! Small tensor helpers missing from dfdx 0.13 (softplus, stop-gradient, row sums, …).

use dfdx::prelude::*;

use super::tape::{fork, RtTape};
use super::{Dev, T0, T1, T2};

/// ½·ln(2π).
pub const HALF_LN_2PI: f32 = 0.918_938_5;

/// Stable softplus `ln(1 + eˣ) = ½x + ½|x| + ln(1 + e^{−|x|})`, with a derivative that is
/// right everywhere, 0 included.
///
/// The value equals `relu(x) + ln(1 + e^{−|x|})` bit for bit (`½x + ½|x|` is `x` or `0`
/// exactly). Written with `relu`, the derivative at exactly 0 came out 0 (dfdx gives `relu`
/// and `abs` a zero derivative there), so a parameter initialised at 0 — the default — never
/// moved. Here the two `|x|` terms' derivatives (`½·sign x` and `−σ(−|x|)·sign x`) cancel at
/// 0, so dfdx's zero for `abs'(0)` gives the true ½.
pub fn softplus<T: RtTape>(x: T2<T>) -> T2<T> {
    let (a, b) = fork(x);
    let (b1, b2) = fork(b.abs());
    let tail = (b2.negate().exp() + 1.0).ln();
    a * 0.5 + b1 * 0.5 + tail
}

/// `ln σ(x) = −softplus(−x)`.
pub fn log_sigmoid<T: RtTape>(x: T2<T>) -> T2<T> {
    softplus(x.negate()).negate()
}

/// A copy of `x` that gradients do not flow through (new tensor id, no tape).
pub fn stop_gradient<T: RtTape>(x: &T2<T>) -> T2 {
    x.retaped::<NoneTape>() * 1.0
}

/// A copy of `x` with a new tensor id that gradients do flow through. Use it when both
/// operands of a binary op would otherwise be the same tensor (`x * fresh(x.clone())`).
pub fn fresh<T: RtTape>(x: T2<T>) -> T2<T> {
    x * 1.0
}

/// Sum over cols, kept 2-D: `(rows, cols) → (rows, 1)`.
pub fn row_sum<T: RtTape>(x: T2<T>) -> T2<T> {
    let rows = x.shape().0;
    x.sum::<(usize,), Axis<1>>().reshape_like(&(rows, 1))
}

/// Mean over all elements (a scalar loss).
pub fn mean_all<T: RtTape>(x: T2<T>) -> T0<T> {
    x.mean::<(), Axes2<0, 1>>()
}

/// Sum over all elements.
pub fn sum_all<T: RtTape>(x: T2<T>) -> T0<T> {
    x.sum::<(), Axes2<0, 1>>()
}

/// A contiguous copy of `x` with its own id (a broadcast's stride-0 layout survives unary
/// ops, so this adds a fresh zero buffer, whose layout the binary op reuses).
pub fn materialize<T: RtTape>(x: T2<T>) -> T2<T> {
    let (r, c) = *x.shape();
    let zeros: T2 = x.device().zeros_like(&(r, c));
    x + zeros
}

/// Columns `start..end` of `x`. Any number of slices, overlapping or not, may be taken from
/// one tensor: the vendored dfdx's `slice` backward accumulates (vendor/dfdx/PATCHES.md).
pub fn cols<T: RtTape>(x: T2<T>, start: usize, end: usize) -> T2<T> {
    x.slice((.., start..end))
}

/// Rows `start..end` of `x` (see [`cols`]).
pub fn rows<T: RtTape>(x: T2<T>, start: usize, end: usize) -> T2<T> {
    x.slice((start..end, ..))
}

/// `[a | b]` along cols.
pub fn cat_cols<T: RtTape>(a: T2<T>, b: T2<T>) -> T2<T> {
    (a, b).concat_along(Axis::<1>)
}

/// `[a ; b]` along rows.
pub fn cat_rows<T: RtTape>(a: T2<T>, b: T2<T>) -> T2<T> {
    (a, b).concat_along(Axis::<0>)
}

/// Repeats a `(cols,)` vector over `rows` rows.
pub fn broadcast_rows<T: RtTape>(b: T1<T>, rows: usize) -> T2<T> {
    let n = b.shape().0;
    b.broadcast_like::<_, Axis<0>>(&(rows, n))
}

/// Repeats a `(rows, 1)` column over `cols` columns.
pub fn broadcast_cols<T: RtTape>(c: T2<T>, cols: usize) -> T2<T> {
    let rows = c.shape().0;
    c.reshape_like(&(rows,))
        .broadcast_like::<_, Axis<1>>(&(rows, cols))
}

/// `x @ w + b` with `w: (in, out)`, `b: (out,)`.
pub fn affine<T: RtTape>(x: T2<T>, w: T2<T>, b: T1<T>) -> T2<T> {
    let rows = x.shape().0;
    x.matmul(w) + broadcast_rows(b, rows)
}

/// A constant `(rows, cols)` tensor from row-major host data.
pub fn from_host(dev: &Dev, data: Vec<f32>, rows: usize, cols: usize) -> T2 {
    dev.tensor_from_vec(data, (rows, cols))
}

/// A constant filled with `v`.
pub fn full(dev: &Dev, rows: usize, cols: usize, v: f32) -> T2 {
    from_host(dev, vec![v; rows * cols], rows, cols)
}

/// Row-major host copy of a value.
pub fn to_host<T>(x: &T2<T>) -> Vec<f32> {
    x.as_vec()
}
