//! Beta(a, b), elementwise over cols (torch's `concentration1`, `concentration0`): density
//! `z^{a−1}(1 − z)^{b−1} / B(a, b)` on (0, 1). Sampling by inversion of the CDF from uniform
//! noise, `z = I⁻¹(a, b, u)`, with implicit reparameterisation gradients in a and b
//! (`runtime::special::beta_sample`), the same draw the fused kernels make.

use crate::runtime::ops::{from_host, row_sum, stop_gradient};
use crate::runtime::special;
use dfdx::prelude::*;

use crate::runtime::tape::{fork, RtTape};
use crate::runtime::T2;

use super::{digamma, ln_beta};

/// `Σ (a − 1) ln x + (b − 1) ln(1 − x) − ln B(a, b)` → `(rows, 1)`.
pub fn log_prob<T: RtTape>(x: T2<T>, a: T2<T>, b: T2<T>) -> T2<T> {
    let (a1, a2) = fork(a);
    let (b1, b2) = fork(b);
    let (x1, x2) = fork(x);
    row_sum((a1 - 1.0) * x1.ln() + (b1 - 1.0) * (x2.negate() + 1.0).ln() - ln_beta(a2, b2))
}

/// A reparameterised draw from uniform noise `u`: `I⁻¹(a, b, u)`, with implicit gradients.
pub fn rsample<T: RtTape>(a: T2<T>, b: T2<T>, u: T2) -> T2<T> {
    let (r, c) = *a.shape();
    let (av, bv, uv) = (a.as_vec(), b.as_vec(), u.as_vec());
    let mut z = Vec::with_capacity(r * c);
    let mut da = Vec::with_capacity(r * c);
    let mut db = Vec::with_capacity(r * c);
    for i in 0..r * c {
        let (v, ga, gb) = special::beta_sample(f64::from(av[i]), f64::from(bv[i]), uv[i]);
        z.push(v as f32);
        da.push(ga as f32);
        db.push(gb as f32);
    }
    let dev = a.device().clone();
    let (sa, sb) = (stop_gradient(&a), stop_gradient(&b));
    (a - sa) * from_host(&dev, da, r, c)
        + (b - sb) * from_host(&dev, db, r, c)
        + from_host(&dev, z, r, c)
}

/// Entropy `Σ ln B(a, b) − (a − 1)ψ(a) − (b − 1)ψ(b) + (a + b − 2)ψ(a + b)` → `(rows, 1)`.
pub fn entropy<T: RtTape>(a: T2<T>, b: T2<T>) -> T2<T> {
    let (a1, a2) = fork(a);
    let (a2, a3) = fork(a2);
    let (a3, a4) = fork(a3);
    let (a4, a5) = fork(a4);
    let (b1, b2) = fork(b);
    let (b2, b3) = fork(b2);
    let (b3, b4) = fork(b3);
    let (b4, b5) = fork(b4);
    row_sum(
        ln_beta(a1, b1) - (a2 - 1.0) * digamma(a3) - (b2 - 1.0) * digamma(b3)
            + (a4 + b4 - 2.0) * digamma(a5 + b5),
    )
}

/// `KL(Beta(aq, bq) ‖ Beta(ap, bp)) = Σ ln B(ap, bp) − ln B(aq, bq) + (aq − ap)ψ(aq)
/// + (bq − bp)ψ(bq) + (ap − aq + bp − bq)ψ(aq + bq)` → `(rows, 1)`.
pub fn kl<T: RtTape>(qa: T2<T>, qb: T2<T>, pa: T2<T>, pb: T2<T>) -> T2<T> {
    let (qa1, qa2) = fork(qa);
    let (qa2, qa3) = fork(qa2);
    let (qa3, qa4) = fork(qa3);
    let (qa4, qa5) = fork(qa4);
    let (qb1, qb2) = fork(qb);
    let (qb2, qb3) = fork(qb2);
    let (qb3, qb4) = fork(qb3);
    let (qb4, qb5) = fork(qb4);
    let (pa1, pa2) = fork(pa);
    let (pa2, pa3) = fork(pa2);
    let (pb1, pb2) = fork(pb);
    let (pb2, pb3) = fork(pb2);
    row_sum(
        ln_beta(pa1, pb1) - ln_beta(qa1, qb1)
            + (qa2 - pa2) * digamma(qa3)
            + (qb2 - pb2) * digamma(qb3)
            + (pa3 - qa4 + pb3 - qb4) * digamma(qa5 + qb5),
    )
}
