//! Fused kernels of the families whose densities need special functions or an inverse CDF:
//! LogNormal, StudentT, Gamma, Beta (sampling, log-density, closed-form entropy and KL) and
//! Poisson (log-density, and a draw for the posterior predictive).
//!
//! Input: views of planned buffers (parameters `(R, C)` elementwise, as the reference kernels
//! in `src/runtime/dist/` take them). Output: samples `(R, C)` or per-row sums `(R, 1)`.
//! Invariants: every kernel computes what its reference kernel computes — the special
//! functions and the inverse-CDF samplers are the same f64 functions
//! (`runtime::special`), element by element, from the same uniform noise — and its backward is
//! the exact derivative of its forward (the samplers' implicit reparameterisation gradients
//! included); a sampler's backward recomputes its draw's derivative rather than keeping it.
//! Gradients accumulate (`+=`).

use super::graph::View;
use super::kernels::{each, row_sums, Worker};
use crate::runtime::dist::mvn;
use crate::runtime::special as sp;

const HALF_LN_2PI: f32 = 0.918_938_5;

/// One kernel of a special-function family ([`super::families::FamOp::Special`]).
#[derive(Clone, Debug)]
pub enum SpecialOp {
    /// `out = exp(loc + scale·ε)`, ε standard normal.
    LogNormalSample {
        /// Location of the log.
        loc: View,
        /// Scale of the log.
        scale: View,
        /// Normal noise.
        eps: View,
        /// The sample.
        out: View,
    },
    /// `Σ_cols ln N(ln x; μ, σ) − ln x` → `(R, 1)`.
    LogNormalLogProb {
        /// The value.
        x: View,
        /// Location of the log.
        loc: View,
        /// Scale of the log.
        scale: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols μ + ½ + ½ ln 2π + ln σ` → `(R, 1)`.
    LogNormalEntropy {
        /// Location of the log.
        loc: View,
        /// Scale of the log.
        scale: View,
        /// The output.
        out: View,
    },
    /// `out = P⁻¹(α, u)/β` (implicit gradient in α).
    GammaSample {
        /// Concentration α.
        conc: View,
        /// Rate β.
        rate: View,
        /// Uniform noise.
        u: View,
        /// The sample.
        out: View,
    },
    /// `Σ_cols α ln β + (α − 1) ln x − βx − ln Γ(α)` → `(R, 1)`.
    GammaLogProb {
        /// The value.
        x: View,
        /// Concentration α.
        conc: View,
        /// Rate β.
        rate: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols α − ln β + ln Γ(α) + (1 − α)ψ(α)` → `(R, 1)`.
    GammaEntropy {
        /// Concentration α.
        conc: View,
        /// Rate β.
        rate: View,
        /// The output.
        out: View,
    },
    /// `KL(Gamma(αq, βq) ‖ Gamma(αp, βp))` per row (the `KlForm::GammaGamma` formula).
    GammaKl {
        /// q's concentration.
        qc: View,
        /// q's rate.
        qr: View,
        /// p's concentration.
        pc: View,
        /// p's rate.
        pr: View,
        /// The output.
        out: View,
        /// Gradient factor of q.
        gq: f32,
        /// Gradient factor of p.
        gp: f32,
    },
    /// `out = I⁻¹(a, b, u)` (implicit gradients in a and b).
    BetaSample {
        /// a.
        a: View,
        /// b.
        b: View,
        /// Uniform noise.
        u: View,
        /// The sample.
        out: View,
    },
    /// `Σ_cols (a − 1) ln x + (b − 1) ln(1 − x) − ln B(a, b)` → `(R, 1)`.
    BetaLogProb {
        /// The value.
        x: View,
        /// a.
        a: View,
        /// b.
        b: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols ln B(a, b) − (a − 1)ψ(a) − (b − 1)ψ(b) + (a + b − 2)ψ(a + b)` → `(R, 1)`.
    BetaEntropy {
        /// a.
        a: View,
        /// b.
        b: View,
        /// The output.
        out: View,
    },
    /// `KL(Beta(aq, bq) ‖ Beta(ap, bp))` per row (the `KlForm::BetaBeta` formula).
    BetaKl {
        /// q's a.
        qa: View,
        /// q's b.
        qb: View,
        /// p's a.
        pa: View,
        /// p's b.
        pb: View,
        /// The output.
        out: View,
        /// Gradient factor of q.
        gq: f32,
        /// Gradient factor of p.
        gp: f32,
    },
    /// `out = μ + σ·F⁻¹_ν(u)` (implicit gradient in ν).
    StudentTSample {
        /// Degrees of freedom ν.
        df: View,
        /// Location μ.
        loc: View,
        /// Scale σ.
        scale: View,
        /// Uniform noise.
        u: View,
        /// The sample.
        out: View,
    },
    /// `Σ_cols ln StudentT(x; ν, μ, σ)` → `(R, 1)`.
    StudentTLogProb {
        /// The value.
        x: View,
        /// Degrees of freedom ν.
        df: View,
        /// Location μ.
        loc: View,
        /// Scale σ.
        scale: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols H_ν + ln σ` → `(R, 1)`.
    StudentTEntropy {
        /// Degrees of freedom ν.
        df: View,
        /// Scale σ.
        scale: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols k ln λ − λ − ln Γ(k + 1)` → `(R, 1)`.
    PoissonLogProb {
        /// The counts.
        x: View,
        /// Rate λ.
        rate: View,
        /// The output.
        out: View,
    },
    /// `out = loc + L·ε` per row (the lower triangle of `L`, `(R, D²)` row-major).
    MvnSample {
        /// Location `(R, D)`.
        loc: View,
        /// `scale_tril` `(R, D²)`.
        l: View,
        /// Normal noise `(R, D)`.
        eps: View,
        /// The sample `(R, D)`.
        out: View,
    },
    /// `ln N(x; loc, L Lᵀ)` per row → `(R, 1)`.
    MvnLogProb {
        /// The value `(R, D)`.
        x: View,
        /// Location `(R, D)`.
        loc: View,
        /// `scale_tril` `(R, D²)`.
        l: View,
        /// The output.
        out: View,
    },
    /// `Σ ln|L_ii| + D/2·(1 + ln 2π)` per row → `(R, 1)`.
    MvnEntropy {
        /// `scale_tril` `(R, D²)`.
        l: View,
        /// The output.
        out: View,
    },
    /// `KL(N(μq, Lq Lqᵀ) ‖ N(μp, Lp Lpᵀ))` per row → `(R, 1)`.
    MvnKl {
        /// q's location.
        ql: View,
        /// q's `scale_tril`.
        qs: View,
        /// p's location.
        pl: View,
        /// p's `scale_tril`.
        ps: View,
        /// The output.
        out: View,
        /// Gradient factor of q.
        gq: f32,
        /// Gradient factor of p.
        gp: f32,
    },
    /// Every row of `out` `(R, r·c)` is the unbatched `(r, c)` matrix `x`, row-major (a
    /// matrix parameter read as a `scale_tril`).
    Flatten {
        /// The matrix.
        x: View,
        /// The rows.
        out: View,
    },
    /// A Poisson draw by inversion of the CDF (no gradient).
    PoissonSample {
        /// Rate λ.
        rate: View,
        /// Uniform noise.
        u: View,
        /// The draw.
        out: View,
    },
}

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// The dimension `D` of a `(R, D²)` scale_tril view.
fn dim_of(w: &Worker, l: View) -> usize {
    (w.cols(l) as f64).sqrt().round() as usize
}

fn lg(x: f32) -> f32 {
    sp::ln_gamma(f64::from(x)) as f32
}
fn dg(x: f32) -> f32 {
    sp::digamma(f64::from(x)) as f32
}
fn tg(x: f32) -> f32 {
    sp::trigamma(f64::from(x)) as f32
}
fn lbeta(a: f32, b: f32) -> f32 {
    sp::ln_beta(f64::from(a), f64::from(b)) as f32
}

fn gamma_kl(aq: f32, bq: f32, ap: f32, bp: f32) -> f32 {
    (aq - ap) * dg(aq) - lg(aq) + lg(ap) + ap * (bq.ln() - bp.ln()) + aq * (bp - bq) / bq
}

fn beta_kl(aq: f32, bq: f32, ap: f32, bp: f32) -> f32 {
    lbeta(ap, bp) - lbeta(aq, bq)
        + (aq - ap) * dg(aq)
        + (bq - bp) * dg(bq)
        + (ap - aq + bp - bq) * dg(aq + bq)
}

fn student_t_lp(x: f32, n: f32, l: f32, s: f32) -> f32 {
    let z = (x - l) / s;
    lg((n + 1.0) * 0.5)
        - lg(n * 0.5)
        - (n * std::f32::consts::PI).ln() * 0.5
        - s.ln()
        - (n + 1.0) * 0.5 * (z * z / n + 1.0).ln()
}

/// Forward of one op.
pub(super) fn fwd(w: &Worker, op: &SpecialOp) {
    match op {
        SpecialOp::LogNormalSample {
            loc,
            scale,
            eps,
            out,
        } => {
            let (l, s, e, y) = (w.rd(*loc), w.rd(*scale), w.rd(*eps), w.wr(*out));
            for i in 0..y.len() {
                y[i] = (l[i] + s[i] * e[i]).exp();
            }
        }
        SpecialOp::LogNormalLogProb { x, loc, scale, out } => {
            let c = w.cols(*x);
            let (xv, l, s, y) = (w.rd(*x), w.rd(*loc), w.rd(*scale), w.wr(*out));
            row_sums(y, c, [xv, l, s], |[x, l, s]| {
                let lx = x.ln();
                let z = (lx - l) / s;
                z * z * -0.5 - s.ln() - HALF_LN_2PI - lx
            });
        }
        SpecialOp::LogNormalEntropy { loc, scale, out } => {
            let c = w.cols(*scale);
            let (l, s, y) = (w.rd(*loc), w.rd(*scale), w.wr(*out));
            row_sums(y, c, [l, s], |[l, s]| l + s.ln() + (0.5 + HALF_LN_2PI));
        }
        SpecialOp::GammaSample { conc, rate, u, out } => {
            let (a, b, uv, y) = (w.rd(*conc), w.rd(*rate), w.rd(*u), w.wr(*out));
            for i in 0..y.len() {
                let (g, _) = sp::gamma_sample(f64::from(a[i]), uv[i]);
                y[i] = g as f32 / b[i];
            }
        }
        SpecialOp::GammaLogProb { x, conc, rate, out } => {
            let c = w.cols(*x);
            let (xv, a, b, y) = (w.rd(*x), w.rd(*conc), w.rd(*rate), w.wr(*out));
            row_sums(y, c, [xv, a, b], |[x, a, b]| {
                a * b.ln() + (a - 1.0) * x.ln() - b * x - lg(a)
            });
        }
        SpecialOp::GammaEntropy { conc, rate, out } => {
            let c = w.cols(*conc);
            let (a, b, y) = (w.rd(*conc), w.rd(*rate), w.wr(*out));
            row_sums(y, c, [a, b], |[a, b]| {
                a - b.ln() + lg(a) + (1.0 - a) * dg(a)
            });
        }
        SpecialOp::GammaKl {
            qc,
            qr,
            pc,
            pr,
            out,
            ..
        } => {
            let c = w.cols(*qc);
            let (a, b, cc, d, y) = (w.rd(*qc), w.rd(*qr), w.rd(*pc), w.rd(*pr), w.wr(*out));
            row_sums(y, c, [a, b, cc, d], |[a, b, c, d]| gamma_kl(a, b, c, d));
        }
        SpecialOp::BetaSample { a, b, u, out } => {
            let (av, bv, uv, y) = (w.rd(*a), w.rd(*b), w.rd(*u), w.wr(*out));
            for i in 0..y.len() {
                y[i] = sp::beta_sample(f64::from(av[i]), f64::from(bv[i]), uv[i]).0 as f32;
            }
        }
        SpecialOp::BetaLogProb { x, a, b, out } => {
            let c = w.cols(*x);
            let (xv, av, bv, y) = (w.rd(*x), w.rd(*a), w.rd(*b), w.wr(*out));
            row_sums(y, c, [xv, av, bv], |[x, a, b]| {
                (a - 1.0) * x.ln() + (b - 1.0) * (1.0 - x).ln() - lbeta(a, b)
            });
        }
        SpecialOp::BetaEntropy { a, b, out } => {
            let c = w.cols(*a);
            let (av, bv, y) = (w.rd(*a), w.rd(*b), w.wr(*out));
            row_sums(y, c, [av, bv], |[a, b]| {
                lbeta(a, b) - (a - 1.0) * dg(a) - (b - 1.0) * dg(b) + (a + b - 2.0) * dg(a + b)
            });
        }
        SpecialOp::BetaKl {
            qa,
            qb,
            pa,
            pb,
            out,
            ..
        } => {
            let c = w.cols(*qa);
            let (a, b, cc, d, y) = (w.rd(*qa), w.rd(*qb), w.rd(*pa), w.rd(*pb), w.wr(*out));
            row_sums(y, c, [a, b, cc, d], |[a, b, c, d]| beta_kl(a, b, c, d));
        }
        SpecialOp::StudentTSample {
            df,
            loc,
            scale,
            u,
            out,
        } => {
            let (n, l, s, uv, y) = (w.rd(*df), w.rd(*loc), w.rd(*scale), w.rd(*u), w.wr(*out));
            for i in 0..y.len() {
                let (t, _) = sp::student_t_sample(f64::from(n[i]), uv[i]);
                y[i] = l[i] + s[i] * t as f32;
            }
        }
        SpecialOp::StudentTLogProb {
            x,
            df,
            loc,
            scale,
            out,
        } => {
            let c = w.cols(*x);
            let (xv, n, l, s, y) = (w.rd(*x), w.rd(*df), w.rd(*loc), w.rd(*scale), w.wr(*out));
            row_sums(y, c, [xv, n, l, s], |[x, n, l, s]| student_t_lp(x, n, l, s));
        }
        SpecialOp::StudentTEntropy { df, scale, out } => {
            let c = w.cols(*df);
            let (n, s, y) = (w.rd(*df), w.rd(*scale), w.wr(*out));
            row_sums(y, c, [n, s], |[n, s]| {
                sp::student_t_entropy(f64::from(n)).0 as f32 + s.ln()
            });
        }
        SpecialOp::PoissonLogProb { x, rate, out } => {
            let c = w.cols(*x);
            let (xv, r, y) = (w.rd(*x), w.rd(*rate), w.wr(*out));
            row_sums(y, c, [xv, r], |[k, r]| k * r.ln() - r - lg(k + 1.0));
        }
        SpecialOp::MvnSample { loc, l, eps, out } => {
            let d = dim_of(w, *l);
            let (m, lv, e, y) = (w.rd(*loc), w.rd(*l), w.rd(*eps), w.wr(*out));
            for r in 0..y.len() / d.max(1) {
                for j in 0..d {
                    let mut s = m[r * d + j];
                    for k in 0..=j {
                        s += lv[r * d * d + j * d + k] * e[r * d + k];
                    }
                    y[r * d + j] = s;
                }
            }
        }
        SpecialOp::MvnLogProb { x, loc, l, out } => {
            let d = dim_of(w, *l);
            let (xv, m, lv, y) = (w.rd(*x), w.rd(*loc), w.rd(*l), w.wr(*out));
            for (r, yr) in y.iter_mut().enumerate() {
                let (v, ..) = mvn::lp_row(
                    &f64s(&xv[r * d..(r + 1) * d]),
                    &f64s(&m[r * d..(r + 1) * d]),
                    &f64s(&lv[r * d * d..(r + 1) * d * d]),
                );
                *yr = v as f32;
            }
        }
        SpecialOp::MvnEntropy { l, out } => {
            let d = dim_of(w, *l);
            let (lv, y) = (w.rd(*l), w.wr(*out));
            for (r, yr) in y.iter_mut().enumerate() {
                let mut s = 0.5 * d as f64 * (1.0 + 2.0 * f64::from(HALF_LN_2PI));
                for j in 0..d {
                    s += f64::from(lv[r * d * d + j * d + j]).abs().ln();
                }
                *yr = s as f32;
            }
        }
        SpecialOp::MvnKl {
            ql,
            qs,
            pl,
            ps,
            out,
            ..
        } => {
            let d = dim_of(w, *qs);
            let (a, b, c, e, y) = (w.rd(*ql), w.rd(*qs), w.rd(*pl), w.rd(*ps), w.wr(*out));
            for (r, yr) in y.iter_mut().enumerate() {
                let (v, _) = mvn::kl_row(
                    &f64s(&a[r * d..(r + 1) * d]),
                    &f64s(&b[r * d * d..(r + 1) * d * d]),
                    &f64s(&c[r * d..(r + 1) * d]),
                    &f64s(&e[r * d * d..(r + 1) * d * d]),
                );
                *yr = v as f32;
            }
        }
        SpecialOp::Flatten { x, out } => {
            let (xv, y) = (w.rd(*x), w.wr(*out));
            for row in y.chunks_exact_mut(xv.len().max(1)) {
                row.copy_from_slice(xv);
            }
        }
        SpecialOp::PoissonSample { rate, u, out } => {
            let (r, uv, y) = (w.rd(*rate), w.rd(*u), w.wr(*out));
            for i in 0..y.len() {
                y[i] = sp::poisson_quantile(f64::from(r[i]), uv[i]) as f32;
            }
        }
    }
}

/// Backward of one op (accumulates into its inputs' gradients).
pub(super) fn bwd(w: &Worker, op: &SpecialOp) {
    match op {
        SpecialOp::LogNormalSample {
            loc,
            scale,
            eps,
            out,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let (l, s, e) = (w.rd(*loc), w.rd(*scale), w.rd(*eps));
            let y = |i: usize| (l[i] + s[i] * e[i]).exp();
            if let Some(gl) = w.gr(*loc) {
                for i in 0..gl.len() {
                    gl[i] += g[i] * y(i);
                }
            }
            if let Some(gs) = w.gr(*scale) {
                for i in 0..gs.len() {
                    gs[i] += g[i] * y(i) * e[i];
                }
            }
        }
        SpecialOp::LogNormalLogProb { x, loc, scale, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*x);
            let ops = [w.rd(*x), w.rd(*loc), w.rd(*scale)];
            let z = |[x, l, s]: [f32; 3]| (x.ln() - l) / s;
            if let Some(gx) = w.gr(*x) {
                each(gx, c, g, ops, |v, g| g * (-z(v) / v[2] - 1.0) / v[0]);
            }
            if let Some(gl) = w.gr(*loc) {
                each(gl, c, g, ops, |v, g| g * z(v) / v[2]);
            }
            if let Some(gs) = w.gr(*scale) {
                each(gs, c, g, ops, |v, g| {
                    let z = z(v);
                    g * (z * z - 1.0) / v[2]
                });
            }
        }
        SpecialOp::LogNormalEntropy { loc, scale, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*scale);
            if let Some(gl) = w.gr(*loc) {
                each(gl, c, g, [w.rd(*loc)], |_, g| g);
            }
            if let Some(gs) = w.gr(*scale) {
                each(gs, c, g, [w.rd(*scale)], |[s], g| g / s);
            }
        }
        SpecialOp::GammaSample { conc, rate, u, out } => {
            let Some(g) = w.gr(*out) else { return };
            let (a, b, uv) = (w.rd(*conc), w.rd(*rate), w.rd(*u));
            let ga = w.gr(*conc);
            let gb = w.gr(*rate);
            if ga.is_none() && gb.is_none() {
                return;
            }
            let (mut ga, mut gb) = (ga, gb);
            for i in 0..g.len() {
                let (z, dz) = sp::gamma_sample(f64::from(a[i]), uv[i]);
                if let Some(ga) = ga.as_deref_mut() {
                    ga[i] += g[i] * dz as f32 / b[i];
                }
                if let Some(gb) = gb.as_deref_mut() {
                    gb[i] -= g[i] * z as f32 / (b[i] * b[i]);
                }
            }
        }
        SpecialOp::GammaLogProb { x, conc, rate, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*x);
            let ops = [w.rd(*x), w.rd(*conc), w.rd(*rate)];
            if let Some(gx) = w.gr(*x) {
                each(gx, c, g, ops, |[x, a, b], g| g * ((a - 1.0) / x - b));
            }
            if let Some(ga) = w.gr(*conc) {
                each(ga, c, g, ops, |[x, a, b], g| g * (b.ln() + x.ln() - dg(a)));
            }
            if let Some(gb) = w.gr(*rate) {
                each(gb, c, g, ops, |[x, a, b], g| g * (a / b - x));
            }
        }
        SpecialOp::GammaEntropy { conc, rate, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*conc);
            if let Some(ga) = w.gr(*conc) {
                each(ga, c, g, [w.rd(*conc)], |[a], g| {
                    g * (1.0 + (1.0 - a) * tg(a))
                });
            }
            if let Some(gb) = w.gr(*rate) {
                each(gb, c, g, [w.rd(*rate)], |[b], g| -g / b);
            }
        }
        SpecialOp::GammaKl {
            qc,
            qr,
            pc,
            pr,
            out,
            gq,
            gp,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*qc);
            let (gq, gp) = (*gq, *gp);
            let ops = [w.rd(*qc), w.rd(*qr), w.rd(*pc), w.rd(*pr)];
            if gq != 0.0 {
                if let Some(x) = w.gr(*qc) {
                    each(x, c, g, ops, |[aq, bq, ap, bp], g| {
                        gq * g * ((aq - ap) * tg(aq) + bp / bq - 1.0)
                    });
                }
                if let Some(x) = w.gr(*qr) {
                    each(x, c, g, ops, |[aq, bq, ap, bp], g| {
                        gq * g * (ap / bq - aq * bp / (bq * bq))
                    });
                }
            }
            if gp != 0.0 {
                if let Some(x) = w.gr(*pc) {
                    each(x, c, g, ops, |[aq, bq, ap, bp], g| {
                        gp * g * (dg(ap) - dg(aq) + bq.ln() - bp.ln())
                    });
                }
                if let Some(x) = w.gr(*pr) {
                    each(x, c, g, ops, |[aq, bq, ap, bp], g| {
                        gp * g * (aq / bq - ap / bp)
                    });
                }
            }
        }
        SpecialOp::BetaSample { a, b, u, out } => {
            let Some(g) = w.gr(*out) else { return };
            let (av, bv, uv) = (w.rd(*a), w.rd(*b), w.rd(*u));
            let (mut ga, mut gb) = (w.gr(*a), w.gr(*b));
            if ga.is_none() && gb.is_none() {
                return;
            }
            for i in 0..g.len() {
                let (_, da, db) = sp::beta_sample(f64::from(av[i]), f64::from(bv[i]), uv[i]);
                if let Some(ga) = ga.as_deref_mut() {
                    ga[i] += g[i] * da as f32;
                }
                if let Some(gb) = gb.as_deref_mut() {
                    gb[i] += g[i] * db as f32;
                }
            }
        }
        SpecialOp::BetaLogProb { x, a, b, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*x);
            let ops = [w.rd(*x), w.rd(*a), w.rd(*b)];
            if let Some(gx) = w.gr(*x) {
                each(gx, c, g, ops, |[x, a, b], g| {
                    g * ((a - 1.0) / x - (b - 1.0) / (1.0 - x))
                });
            }
            if let Some(ga) = w.gr(*a) {
                each(ga, c, g, ops, |[x, a, b], g| {
                    g * (x.ln() - dg(a) + dg(a + b))
                });
            }
            if let Some(gb) = w.gr(*b) {
                each(gb, c, g, ops, |[x, a, b], g| {
                    g * ((1.0 - x).ln() - dg(b) + dg(a + b))
                });
            }
        }
        SpecialOp::BetaEntropy { a, b, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*a);
            let ops = [w.rd(*a), w.rd(*b)];
            if let Some(ga) = w.gr(*a) {
                each(ga, c, g, ops, |[a, b], g| {
                    g * (-(a - 1.0) * tg(a) + (a + b - 2.0) * tg(a + b))
                });
            }
            if let Some(gb) = w.gr(*b) {
                each(gb, c, g, ops, |[a, b], g| {
                    g * (-(b - 1.0) * tg(b) + (a + b - 2.0) * tg(a + b))
                });
            }
        }
        SpecialOp::BetaKl {
            qa,
            qb,
            pa,
            pb,
            out,
            gq,
            gp,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*qa);
            let (gq, gp) = (*gq, *gp);
            let ops = [w.rd(*qa), w.rd(*qb), w.rd(*pa), w.rd(*pb)];
            if gq != 0.0 {
                if let Some(x) = w.gr(*qa) {
                    each(x, c, g, ops, |[aq, bq, ap, bp], g| {
                        gq * g * ((aq - ap) * tg(aq) + (ap - aq + bp - bq) * tg(aq + bq))
                    });
                }
                if let Some(x) = w.gr(*qb) {
                    each(x, c, g, ops, |[aq, bq, ap, bp], g| {
                        gq * g * ((bq - bp) * tg(bq) + (ap - aq + bp - bq) * tg(aq + bq))
                    });
                }
            }
            if gp != 0.0 {
                if let Some(x) = w.gr(*pa) {
                    each(x, c, g, ops, |[aq, bq, ap, bp], g| {
                        gp * g * (dg(ap) - dg(ap + bp) - dg(aq) + dg(aq + bq))
                    });
                }
                if let Some(x) = w.gr(*pb) {
                    each(x, c, g, ops, |[aq, bq, ap, bp], g| {
                        gp * g * (dg(bp) - dg(ap + bp) - dg(bq) + dg(aq + bq))
                    });
                }
            }
        }
        SpecialOp::StudentTSample {
            df,
            loc,
            scale,
            u,
            out,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let (n, s, uv) = (w.rd(*df), w.rd(*scale), w.rd(*u));
            if let Some(gl) = w.gr(*loc) {
                for i in 0..gl.len() {
                    gl[i] += g[i];
                }
            }
            let (mut gn, mut gs) = (w.gr(*df), w.gr(*scale));
            if gn.is_none() && gs.is_none() {
                return;
            }
            for i in 0..g.len() {
                let (t, dt) = sp::student_t_sample(f64::from(n[i]), uv[i]);
                if let Some(gs) = gs.as_deref_mut() {
                    gs[i] += g[i] * t as f32;
                }
                if let Some(gn) = gn.as_deref_mut() {
                    gn[i] += g[i] * s[i] * dt as f32;
                }
            }
        }
        SpecialOp::StudentTLogProb {
            x,
            df,
            loc,
            scale,
            out,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*x);
            let ops = [w.rd(*x), w.rd(*df), w.rd(*loc), w.rd(*scale)];
            // d/dx = −(ν + 1)z / (σ(ν + z²)), z = (x − μ)/σ.
            let dx = |[x, n, l, s]: [f32; 4]| {
                let z = (x - l) / s;
                -(n + 1.0) * z / (s * (n + z * z))
            };
            if let Some(gx) = w.gr(*x) {
                each(gx, c, g, ops, |v, g| g * dx(v));
            }
            if let Some(gl) = w.gr(*loc) {
                each(gl, c, g, ops, |v, g| -g * dx(v));
            }
            if let Some(gs) = w.gr(*scale) {
                each(gs, c, g, ops, |[x, n, l, s], g| {
                    let z = (x - l) / s;
                    g * (-1.0 / s + (n + 1.0) * z * z / (s * (n + z * z)))
                });
            }
            if let Some(gn) = w.gr(*df) {
                each(gn, c, g, ops, |[x, n, l, s], g| {
                    let z = (x - l) / s;
                    let z2 = z * z;
                    g * (0.5 * dg((n + 1.0) * 0.5)
                        - 0.5 * dg(n * 0.5)
                        - 0.5 / n
                        - 0.5 * (z2 / n + 1.0).ln()
                        + (n + 1.0) * 0.5 * z2 / (n * (n + z2)))
                });
            }
        }
        SpecialOp::StudentTEntropy { df, scale, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*df);
            if let Some(gn) = w.gr(*df) {
                each(gn, c, g, [w.rd(*df)], |[n], g| {
                    g * sp::student_t_entropy(f64::from(n)).1 as f32
                });
            }
            if let Some(gs) = w.gr(*scale) {
                each(gs, c, g, [w.rd(*scale)], |[s], g| g / s);
            }
        }
        SpecialOp::PoissonLogProb { x, rate, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*x);
            let ops = [w.rd(*x), w.rd(*rate)];
            if let Some(gx) = w.gr(*x) {
                each(gx, c, g, ops, |[k, r], g| g * (r.ln() - dg(k + 1.0)));
            }
            if let Some(gr) = w.gr(*rate) {
                each(gr, c, g, ops, |[k, r], g| g * (k / r - 1.0));
            }
        }
        SpecialOp::MvnSample { loc, l, eps, out } => {
            let Some(g) = w.gr(*out) else { return };
            let d = dim_of(w, *l);
            if let Some(gm) = w.gr(*loc) {
                for i in 0..gm.len() {
                    gm[i] += g[i];
                }
            }
            if let Some(gl) = w.gr(*l) {
                let e = w.rd(*eps);
                for r in 0..g.len() / d.max(1) {
                    for j in 0..d {
                        for k in 0..=j {
                            gl[r * d * d + j * d + k] += g[r * d + j] * e[r * d + k];
                        }
                    }
                }
            }
        }
        SpecialOp::MvnLogProb { x, loc, l, out } => {
            let Some(g) = w.gr(*out) else { return };
            let d = dim_of(w, *l);
            let (xv, m, lv) = (w.rd(*x), w.rd(*loc), w.rd(*l));
            let (mut gx, mut gm, mut gl) = (w.gr(*x), w.gr(*loc), w.gr(*l));
            for (r, &gr) in g.iter().enumerate() {
                let (_, dx, dm, dl) = mvn::lp_row(
                    &f64s(&xv[r * d..(r + 1) * d]),
                    &f64s(&m[r * d..(r + 1) * d]),
                    &f64s(&lv[r * d * d..(r + 1) * d * d]),
                );
                for (acc, dv, n) in [(&mut gx, &dx, d), (&mut gm, &dm, d), (&mut gl, &dl, d * d)] {
                    if let Some(a) = acc.as_deref_mut() {
                        for i in 0..n {
                            a[r * n + i] += gr * dv[i] as f32;
                        }
                    }
                }
            }
        }
        SpecialOp::MvnEntropy { l, out } => {
            let Some(g) = w.gr(*out) else { return };
            let d = dim_of(w, *l);
            let lv = w.rd(*l);
            if let Some(gl) = w.gr(*l) {
                for (r, &gr) in g.iter().enumerate() {
                    for j in 0..d {
                        let i = r * d * d + j * d + j;
                        gl[i] += gr / lv[i];
                    }
                }
            }
        }
        SpecialOp::MvnKl {
            ql,
            qs,
            pl,
            ps,
            out,
            gq,
            gp,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let d = dim_of(w, *qs);
            let (a, b, c, e) = (w.rd(*ql), w.rd(*qs), w.rd(*pl), w.rd(*ps));
            let mut accs = [w.gr(*ql), w.gr(*qs), w.gr(*pl), w.gr(*ps)];
            let factor = [*gq, *gq, *gp, *gp];
            let width = [d, d * d, d, d * d];
            for (r, &gr) in g.iter().enumerate() {
                let (_, grads) = mvn::kl_row(
                    &f64s(&a[r * d..(r + 1) * d]),
                    &f64s(&b[r * d * d..(r + 1) * d * d]),
                    &f64s(&c[r * d..(r + 1) * d]),
                    &f64s(&e[r * d * d..(r + 1) * d * d]),
                );
                for i in 0..4 {
                    if factor[i] == 0.0 {
                        continue;
                    }
                    if let Some(acc) = accs[i].as_deref_mut() {
                        let n = width[i];
                        for j in 0..n {
                            acc[r * n + j] += factor[i] * gr * grads[i][j] as f32;
                        }
                    }
                }
            }
        }
        SpecialOp::Flatten { x, out } => {
            let (Some(g), Some(gx)) = (w.gr(*out), w.gr(*x)) else {
                return;
            };
            let n = gx.len().max(1);
            for row in g.chunks_exact(n) {
                for (a, v) in gx.iter_mut().zip(row) {
                    *a += v;
                }
            }
        }
        SpecialOp::PoissonSample { .. } => {}
    }
}
