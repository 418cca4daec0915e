//! MultivariateNormal(loc, scale_tril = L) over the whole event of size D: `z = μ + L·ε`,
//! covariance `L Lᵀ`. `loc` is `(rows, D)`, `L` is `(rows, D²)` row-major; only its lower
//! triangle is read (the entries above the diagonal are ignored, as torch requires them zero)
//! and its diagonal must be non-zero (`ln |L_ii|` enters the density).
//!
//! The triangular solves run per row on the host in f64 ([`lp_row`], [`kl_row`]); each
//! kernel returns its value with the exact first derivatives attached (`sg(v) + Σ sg(∂v/∂θ)·(θ −
//! sg θ)`), so reverse mode through it is exact.

use dfdx::prelude::*;

use crate::runtime::ops::{from_host, row_sum, stop_gradient};
use crate::runtime::tape::RtTape;
use crate::runtime::T2;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// `y = L⁻¹ b` (forward substitution on the lower triangle of the row-major `l`).
fn solve_lower(l: &[f64], b: &[f64]) -> Vec<f64> {
    let d = b.len();
    let mut y = vec![0.0; d];
    for j in 0..d {
        let mut s = b[j];
        for k in 0..j {
            s -= l[j * d + k] * y[k];
        }
        y[j] = s / l[j * d + j];
    }
    y
}

/// `w = L⁻ᵀ b` (back substitution with the transpose of the lower triangle).
fn solve_upper_t(l: &[f64], b: &[f64]) -> Vec<f64> {
    let d = b.len();
    let mut w = vec![0.0; d];
    for j in (0..d).rev() {
        let mut s = b[j];
        for k in j + 1..d {
            s -= l[k * d + j] * w[k];
        }
        w[j] = s / l[j * d + j];
    }
    w
}

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// `ln N(x; μ, L Lᵀ)` of one row and its gradients in `(x, μ, L)`.
pub fn lp_row(x: &[f64], mu: &[f64], l: &[f64]) -> (f64, Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = x.len();
    let r: Vec<f64> = x.iter().zip(mu).map(|(a, b)| a - b).collect();
    let y = solve_lower(l, &r);
    let w = solve_upper_t(l, &y);
    let logdet: f64 = (0..d).map(|j| l[j * d + j].abs().ln()).sum();
    let v = -0.5 * y.iter().map(|v| v * v).sum::<f64>() - logdet - 0.5 * d as f64 * LN_2PI;
    let gx: Vec<f64> = w.iter().map(|v| -v).collect();
    let mut gl = vec![0.0; d * d];
    for j in 0..d {
        for k in 0..=j {
            gl[j * d + k] = w[j] * y[k];
        }
        gl[j * d + j] -= 1.0 / l[j * d + j];
    }
    (v, gx, w, gl)
}

/// `KL(N(μq, Lq Lqᵀ) ‖ N(μp, Lp Lpᵀ))` of one row and its gradients in `(μq, Lq, μp, Lp)`:
/// `½(‖M‖² + ‖δ‖² − D) + Σ ln|Lp_ii| − Σ ln|Lq_ii|`, `M = Lp⁻¹Lq`, `δ = Lp⁻¹(μp − μq)`.
pub fn kl_row(mq: &[f64], lq: &[f64], mp: &[f64], lp: &[f64]) -> (f64, [Vec<f64>; 4]) {
    let d = mq.len();
    // M's columns: Lp⁻¹ (column k of the lower triangle of Lq).
    let mut m = vec![0.0; d * d];
    for k in 0..d {
        let col: Vec<f64> = (0..d)
            .map(|j| if j >= k { lq[j * d + k] } else { 0.0 })
            .collect();
        let c = solve_lower(lp, &col);
        for j in 0..d {
            m[j * d + k] = c[j];
        }
    }
    let diff: Vec<f64> = mp.iter().zip(mq).map(|(a, b)| a - b).collect();
    let delta = solve_lower(lp, &diff);
    let ld = |l: &[f64]| (0..d).map(|j| l[j * d + j].abs().ln()).sum::<f64>();
    let v = 0.5
        * (m.iter().map(|x| x * x).sum::<f64>() + delta.iter().map(|x| x * x).sum::<f64>()
            - d as f64)
        + ld(lp)
        - ld(lq);
    // ∂/∂μq = −Lp⁻ᵀδ, ∂/∂μp = Lp⁻ᵀδ.
    let wd = solve_upper_t(lp, &delta);
    let gmq: Vec<f64> = wd.iter().map(|v| -v).collect();
    // ∂/∂Lq = Lp⁻ᵀ M − diag(1/Lq_ii) (lower triangle): column k of Lp⁻ᵀ M is Lp⁻ᵀ M[:, k].
    let mut lpt_m = vec![0.0; d * d];
    for k in 0..d {
        let col: Vec<f64> = (0..d).map(|j| m[j * d + k]).collect();
        let c = solve_upper_t(lp, &col);
        for j in 0..d {
            lpt_m[j * d + k] = c[j];
        }
    }
    let mut glq = vec![0.0; d * d];
    // ∂/∂Lp = −Lp⁻ᵀ (M Mᵀ + δδᵀ) + diag(1/Lp_ii) (lower triangle).
    let mut glp = vec![0.0; d * d];
    for j in 0..d {
        for k in 0..=j {
            glq[j * d + k] = lpt_m[j * d + k];
            // (Lp⁻ᵀ M Mᵀ)_jk = Σ_i (Lp⁻ᵀ M)_ji M_ki.
            let mm: f64 = (0..d).map(|i| lpt_m[j * d + i] * m[k * d + i]).sum();
            glp[j * d + k] = -(mm + wd[j] * delta[k]);
        }
        glq[j * d + j] -= 1.0 / lq[j * d + j];
        glp[j * d + j] += 1.0 / lp[j * d + j];
    }
    (v, [gmq, glq, wd, glp])
}

/// `(rows, 1)` values with the gradients `grads[i]` (each shaped as `inputs[i]`) attached.
fn attach<T: RtTape>(v: Vec<f32>, inputs: Vec<T2<T>>, grads: Vec<Vec<f32>>) -> T2<T> {
    let dev = inputs[0].device().clone();
    let rows = v.len();
    let mut acc: Option<T2<T>> = None;
    for (x, g) in inputs.into_iter().zip(grads) {
        let (r, c) = *x.shape();
        let sg = stop_gradient(&x);
        let term = row_sum((x - sg) * from_host(&dev, g, r, c));
        acc = Some(match acc {
            None => term,
            Some(a) => a + term,
        });
    }
    let vals = from_host(&dev, v, rows, 1);
    match acc {
        Some(a) => a + vals,
        None => unreachable!("at least one input"),
    }
}

/// `ln N(x; loc, L Lᵀ)` per row → `(rows, 1)`.
pub fn log_prob<T: RtTape>(x: T2<T>, loc: T2<T>, l: T2<T>) -> T2<T> {
    let (rows, d) = *loc.shape();
    let (xv, mv, lv) = (f64s(&x.as_vec()), f64s(&loc.as_vec()), f64s(&l.as_vec()));
    let (mut v, mut gx, mut gm, mut gl) = (vec![], vec![], vec![], vec![]);
    for r in 0..rows {
        let (a, b, c, e) = lp_row(
            &xv[r * d..(r + 1) * d],
            &mv[r * d..(r + 1) * d],
            &lv[r * d * d..(r + 1) * d * d],
        );
        v.push(a as f32);
        gx.extend(b.iter().map(|&t| t as f32));
        gm.extend(c.iter().map(|&t| t as f32));
        gl.extend(e.iter().map(|&t| t as f32));
    }
    attach(v, vec![x, loc, l], vec![gx, gm, gl])
}

/// Reparameterised sample `loc + L·ε` (lower triangle of `L`), `ε ~ N(0, I)` `(rows, D)`.
pub fn rsample<T: RtTape>(loc: T2<T>, l: T2<T>, eps: T2) -> T2<T> {
    let (rows, d) = *loc.shape();
    let ev = eps.as_vec();
    // E[r, j·D + k] = ε_rk on and below the diagonal: (L ⊙ E) summed per group of D is L·ε.
    let mut e = vec![0.0f32; rows * d * d];
    for r in 0..rows {
        for j in 0..d {
            for k in 0..=j {
                e[(r * d + j) * d + k] = ev[r * d + k];
            }
        }
    }
    let dev = loc.device().clone();
    let prod = (l * from_host(&dev, e, rows, d * d)).reshape_like(&(rows * d, d));
    loc + row_sum(prod).reshape_like(&(rows, d))
}

/// Entropy `Σ ln|L_ii| + D/2·(1 + ln 2π)` per row → `(rows, 1)`.
pub fn entropy<T: RtTape>(l: T2<T>) -> T2<T> {
    let (rows, dd) = *l.shape();
    let d = (dd as f64).sqrt().round() as usize;
    let lv = l.as_vec();
    let mut v = Vec::with_capacity(rows);
    let mut g = vec![0.0f32; rows * dd];
    for r in 0..rows {
        let mut s = 0.5 * d as f64 * (1.0 + LN_2PI);
        for j in 0..d {
            let x = f64::from(lv[r * dd + j * d + j]);
            s += x.abs().ln();
            g[r * dd + j * d + j] = (1.0 / x) as f32;
        }
        v.push(s as f32);
    }
    attach(v, vec![l], vec![g])
}

/// `KL(N(μq, Lq Lqᵀ) ‖ N(μp, Lp Lpᵀ))` per row → `(rows, 1)`.
pub fn kl<T: RtTape>(qloc: T2<T>, ql: T2<T>, ploc: T2<T>, pl: T2<T>) -> T2<T> {
    let (rows, d) = *qloc.shape();
    let (a, b, c, e) = (
        f64s(&qloc.as_vec()),
        f64s(&ql.as_vec()),
        f64s(&ploc.as_vec()),
        f64s(&pl.as_vec()),
    );
    let mut v = Vec::with_capacity(rows);
    let mut gs: [Vec<f32>; 4] = Default::default();
    for r in 0..rows {
        let (k, g) = kl_row(
            &a[r * d..(r + 1) * d],
            &b[r * d * d..(r + 1) * d * d],
            &c[r * d..(r + 1) * d],
            &e[r * d * d..(r + 1) * d * d],
        );
        v.push(k as f32);
        for (acc, gi) in gs.iter_mut().zip(g) {
            acc.extend(gi.iter().map(|&t| t as f32));
        }
    }
    let [g0, g1, g2, g3] = gs;
    attach(v, vec![qloc, ql, ploc, pl], vec![g0, g1, g2, g3])
}
