//! Laplace(loc, scale), elementwise over cols: density `exp(−|x − μ|/b) / 2b`. The reference
//! kernels of the family (its spec row is in `crate::family`): log-density, reparameterised
//! sample, entropy, and the closed-form KL against another Laplace.

use crate::runtime::ops::{from_host, row_sum};
use crate::runtime::rng::Rng;
use crate::runtime::tape::{fork, RtTape};
use crate::runtime::{Dev, T2};
use rand::Rng as _;

/// `ln Laplace(x; loc, scale)` summed over cols → `(rows, 1)`: `Σ −|x − μ|/b − ln 2b`.
pub fn log_prob<T: RtTape>(x: T2<T>, loc: T2<T>, scale: T2<T>) -> T2<T> {
    let (s1, s2) = fork(scale);
    row_sum(((x - loc).abs() / s1).negate() - (s2 * 2.0).ln())
}

/// Standard Laplace noise `(rows, cols)` by inversion: `ε = −sgn(u)·ln(1 − 2|u|)`,
/// `u ~ U(−½, ½)`.
pub fn noise(dev: &Dev, rng: &mut Rng, rows: usize, cols: usize) -> T2 {
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| {
            let u = rng.gen::<f64>() - 0.5;
            // u = −½ has probability 2⁻⁵³; keep ln finite there.
            let e = -(1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln();
            (if u < 0.0 { -e } else { e }) as f32
        })
        .collect();
    from_host(dev, v, rows, cols)
}

/// Reparameterised sample `loc + scale · ε`, `ε` standard Laplace (see [`noise`]).
pub fn rsample<T: RtTape>(loc: T2<T>, scale: T2<T>, eps: T2) -> T2<T> {
    loc + scale * eps
}

/// Entropy `Σ 1 + ln 2b` → `(rows, 1)`.
pub fn entropy<T: RtTape>(scale: T2<T>) -> T2<T> {
    row_sum((scale * 2.0).ln() + 1.0)
}

/// `KL(Laplace(μq, bq) ‖ Laplace(μp, bp)) = Σ ln(bp/bq) + d/bp + (bq/bp)·exp(−d/bq) − 1`,
/// `d = |μq − μp|`, summed over cols → `(rows, 1)`.
pub fn kl<T: RtTape>(qloc: T2<T>, qscale: T2<T>, ploc: T2<T>, pscale: T2<T>) -> T2<T> {
    let (qs1, qs2) = fork(qscale);
    let (ps1, ps2) = fork(pscale);
    let (d1, d2) = fork((qloc - ploc).abs());
    let (r1, r2) = fork(qs1 / ps1); // bq/bp
    row_sum(r1.ln().negate() + d1 / ps2 + r2 * (d2 / qs2).negate().exp() - 1.0)
}
