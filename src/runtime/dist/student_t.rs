//! StudentT(df ν, loc μ, scale σ), elementwise over cols. Sampling by inversion of the CDF
//! from uniform noise, `z = μ + σ·F⁻¹_ν(u)`, with the implicit reparameterisation gradient in
//! ν (`runtime::special::student_t_sample`; the gradients in μ and σ are the
//! location-scale ones); the closed-form entropy's ν part is computed on the host with its
//! derivative (`special::student_t_entropy`).

use std::f32::consts::PI;

use crate::runtime::ops::{from_host, row_sum, stop_gradient};
use crate::runtime::special;
use dfdx::prelude::*;

use crate::runtime::tape::{fork, RtTape};
use crate::runtime::T2;

use super::{host_map, ln_gamma};

/// `Σ ln Γ((ν+1)/2) − ln Γ(ν/2) − ½ ln(νπ) − ln σ − (ν+1)/2 · ln(1 + ((x − μ)/σ)²/ν)`
/// → `(rows, 1)`.
pub fn log_prob<T: RtTape>(x: T2<T>, df: T2<T>, loc: T2<T>, scale: T2<T>) -> T2<T> {
    let (n1, n2) = fork(df);
    let (n2, n3) = fork(n2);
    let (n3, n4) = fork(n3);
    let (n4, n5) = fork(n4);
    let (s1, s2) = fork(scale);
    let z2 = ((x - loc) / s1).square();
    row_sum(
        ln_gamma((n1 + 1.0) * 0.5)
            - ln_gamma(n2 * 0.5)
            - (n3 * PI).ln() * 0.5
            - s2.ln()
            - (n4 + 1.0) * 0.5 * (z2 / n5 + 1.0).ln(),
    )
}

/// A reparameterised draw from uniform noise `u`: `μ + σ·T`, `T = F⁻¹_ν(u)`, implicit in ν.
pub fn rsample<T: RtTape>(df: T2<T>, loc: T2<T>, scale: T2<T>, u: T2) -> T2<T> {
    let (r, c) = *df.shape();
    let (nv, uv) = (df.as_vec(), u.as_vec());
    let (t, dt): (Vec<f32>, Vec<f32>) = nv
        .iter()
        .zip(&uv)
        .map(|(&n, &u)| {
            let (t, d) = special::student_t_sample(f64::from(n), u);
            (t as f32, d as f32)
        })
        .unzip();
    let dev = df.device().clone();
    let sg = stop_gradient(&df);
    let tt = (df - sg) * from_host(&dev, dt, r, c) + from_host(&dev, t, r, c);
    loc + scale * tt
}

/// Entropy `Σ H_ν + ln σ` → `(rows, 1)`, `H_ν` the standard StudentT's.
pub fn entropy<T: RtTape>(df: T2<T>, scale: T2<T>) -> T2<T> {
    row_sum(host_map(df, special::student_t_entropy) + scale.ln())
}
