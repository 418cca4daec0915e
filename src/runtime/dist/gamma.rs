//! Gamma(concentration α, rate β), elementwise over cols: density `β^α z^{α−1} e^{−βz} / Γ(α)`.
//! Sampling by inversion of the CDF from uniform noise, `z = P⁻¹(α, u)/β`, with the implicit
//! reparameterisation gradient in α (`runtime::special::gamma_sample`); the fused kernels
//! (`fused::families`) compute the same draw from the same noise.

use crate::runtime::ops::{from_host, row_sum, stop_gradient};
use crate::runtime::special;
use dfdx::prelude::*;

use crate::runtime::tape::{fork, RtTape};
use crate::runtime::T2;

use super::{digamma, ln_gamma};

/// `Σ α ln β + (α − 1) ln x − βx − ln Γ(α)` → `(rows, 1)`.
pub fn log_prob<T: RtTape>(x: T2<T>, conc: T2<T>, rate: T2<T>) -> T2<T> {
    let (a1, a2) = fork(conc);
    let (a2, a3) = fork(a2);
    let (b1, b2) = fork(rate);
    let (x1, x2) = fork(x);
    row_sum(a1 * b1.ln() + (a2 - 1.0) * x1.ln() - b2 * x2 - ln_gamma(a3))
}

/// A reparameterised draw from uniform noise `u`: `G/β`, `G = P⁻¹(α, u)`, whose gradient in
/// α is the implicit one.
pub fn rsample<T: RtTape>(conc: T2<T>, rate: T2<T>, u: T2) -> T2<T> {
    let (r, c) = *conc.shape();
    let (av, uv) = (conc.as_vec(), u.as_vec());
    let (g, dg): (Vec<f32>, Vec<f32>) = av
        .iter()
        .zip(&uv)
        .map(|(&a, &u)| {
            let (z, dz) = special::gamma_sample(f64::from(a), u);
            (z as f32, dz as f32)
        })
        .unzip();
    let dev = conc.device().clone();
    let sg = stop_gradient(&conc);
    let gt = (conc - sg) * from_host(&dev, dg, r, c) + from_host(&dev, g, r, c);
    gt / rate
}

/// Entropy `Σ α − ln β + ln Γ(α) + (1 − α)ψ(α)` → `(rows, 1)`.
pub fn entropy<T: RtTape>(conc: T2<T>, rate: T2<T>) -> T2<T> {
    let (a1, a2) = fork(conc);
    let (a2, a3) = fork(a2);
    let (a3, a4) = fork(a3);
    row_sum(a1 - rate.ln() + ln_gamma(a2) + (a3.negate() + 1.0) * digamma(a4))
}

/// `KL(Gamma(αq, βq) ‖ Gamma(αp, βp)) = Σ (αq − αp)ψ(αq) − ln Γ(αq) + ln Γ(αp)
/// + αp(ln βq − ln βp) + αq(βp − βq)/βq` → `(rows, 1)`.
pub fn kl<T: RtTape>(qc: T2<T>, qr: T2<T>, pc: T2<T>, pr: T2<T>) -> T2<T> {
    let (aq1, aq2) = fork(qc);
    let (aq2, aq3) = fork(aq2);
    let (aq3, aq4) = fork(aq3);
    let (ap1, ap2) = fork(pc);
    let (ap2, ap3) = fork(ap2);
    let (bq1, bq2) = fork(qr);
    let (bq2, bq3) = fork(bq2);
    let (bp1, bp2) = fork(pr);
    row_sum(
        (aq1 - ap1) * digamma(aq2) - ln_gamma(aq3)
            + ln_gamma(ap2)
            + ap3 * (bq1.ln() - bp1.ln())
            + aq4 * (bp2 - bq2) / bq3,
    )
}
