//! Fused kernels of the continuous families beside Normal and TanhNormal: Uniform and
//! Laplace (sampling, log-density, closed-form entropy and KL), and the noise each sampler
//! reads.
//!
//! Input: views of planned buffers (parameters `(R, C)` elementwise, as the reference kernels
//! in `src/runtime/dist/` take them). Output: samples `(R, C)` or per-row sums `(R, 1)`.
//! Invariants: every kernel computes what its reference kernel computes (same formula, same
//! noise transform: [`Noise::draw`] consumes the generator exactly as
//! `runtime::rng::uniform_noise` / `runtime::dist::laplace::noise` do), and its backward is
//! the exact derivative of its forward; gradients accumulate (`+=`), as every op's do.

use super::graph::View;
use super::kernels::{each, row_sums, Worker};
use super::math;
use crate::runtime::rng::Rng;
use rand::Rng as _;
use rand_distr::StandardNormal;

/// What a noise buffer holds, drawn in the reference path's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noise {
    /// Standard normal (Normal, TanhNormal).
    Normal,
    /// `U[0, 1)` (Uniform).
    Uniform,
    /// Standard Laplace by inversion (Laplace).
    Laplace,
}

impl Noise {
    /// One draw, consuming `rng` as the reference sampler does.
    #[inline]
    pub fn draw(self, rng: &mut Rng) -> f32 {
        match self {
            Noise::Normal => rng.sample::<f32, _>(StandardNormal),
            Noise::Uniform => rng.gen::<f32>(),
            Noise::Laplace => {
                let u = rng.gen::<f64>() - 0.5;
                let e = -(1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln();
                (if u < 0.0 { -e } else { e }) as f32
            }
        }
    }
}

/// The family kernels (one op each; [`super::graph::Op::Fam`]).
#[derive(Clone, Debug)]
pub enum FamOp {
    /// `out = low + (high − low)·u`, `u ~ U[0, 1)`.
    UniformSample {
        /// Lower bound.
        low: View,
        /// Upper bound.
        high: View,
        /// Uniform noise.
        u: View,
        /// The sample.
        out: View,
    },
    /// `Σ_cols −ln(high − low)`, `−∞` where `x ∉ [low, high]` → `(R, 1)`; no gradient to `x`.
    UniformLogProb {
        /// The value.
        x: View,
        /// Lower bound.
        low: View,
        /// Upper bound.
        high: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols ln(high − low)` → `(R, 1)`.
    UniformEntropy {
        /// Lower bound.
        low: View,
        /// Upper bound.
        high: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols ln(ph − pl) − ln(qh − ql)` → `(R, 1)` (`+∞` where q is not inside p, where the
    /// reference path stops with an infinite KL). Gradients scaled by `gq`, `gp` (balancing).
    UniformKl {
        /// q's lower bound.
        ql: View,
        /// q's upper bound.
        qh: View,
        /// p's lower bound.
        pl: View,
        /// p's upper bound.
        ph: View,
        /// The output.
        out: View,
        /// Gradient factor of q.
        gq: f32,
        /// Gradient factor of p.
        gp: f32,
    },
    /// `out = loc + scale·ε`, ε standard Laplace.
    LaplaceSample {
        /// Location.
        loc: View,
        /// Scale.
        scale: View,
        /// Laplace noise.
        eps: View,
        /// The sample.
        out: View,
    },
    /// `Σ_cols −|x − μ|/b − ln 2b` → `(R, 1)`.
    LaplaceLogProb {
        /// The value.
        x: View,
        /// Location.
        loc: View,
        /// Scale.
        scale: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols 1 + ln 2b` → `(R, 1)`.
    LaplaceEntropy {
        /// Scale.
        scale: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols ln(bp/bq) + d/bp + (bq/bp)·e^{−d/bq} − 1`, `d = |μq − μp|` → `(R, 1)`.
    LaplaceKl {
        /// q's location.
        ql: View,
        /// q's scale.
        qs: View,
        /// p's location.
        pl: View,
        /// p's scale.
        ps: View,
        /// The output.
        out: View,
        /// Gradient factor of q.
        gq: f32,
        /// Gradient factor of p.
        gp: f32,
    },
    /// A Bernoulli latent's 0/1 draw `out = [u < σ(l)]`, `σ` computed as dfdx computes it
    /// (the reference sampler's rule, bit for bit); with `st` (straight-through) the
    /// gradient of `out` reaches the logits as that of `σ(l)`, else the draw has none.
    BernSample {
        /// The logits.
        logits: View,
        /// Uniform noise on `[0, 1)`, one per element.
        u: View,
        /// The draw.
        out: View,
        /// Straight-through gradient.
        st: bool,
    },
    /// `Σ_cols σ(a)(a − b) − softplus(a) + softplus(b)` (`KL(Bern(σ(a)) ‖ Bern(σ(b)))`) →
    /// `(R, 1)`. Backward scales q's gradient by `gq` and p's by `gp` (KL balancing) and drops
    /// elements whose KL is below `floor` (free nats per element), as `NormalKl`.
    BernKl {
        /// q's logits.
        q: View,
        /// p's logits.
        p: View,
        /// The output.
        out: View,
        /// Gradient factor of q.
        gq: f32,
        /// Gradient factor of p.
        gp: f32,
        /// Free nats per element: elements below it get no gradient.
        floor: Option<f32>,
    },
    /// `Σ_cols softplus(l) − σ(l)·l` → `(R, 1)`.
    BernEntropy {
        /// The logits.
        logits: View,
        /// The output.
        out: View,
    },
    /// A kernel of LogNormal, StudentT, Gamma, Beta or Poisson (`fused::special`).
    Special(super::special::SpecialOp),
}

/// dfdx's sigmoid (the reference sampler's probabilities).
#[inline(always)]
fn sigmoid_exact(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `KL(Bern(σ(a)) ‖ Bern(σ(b)))` of one element.
#[inline(always)]
fn bern_kl(a: f32, b: f32) -> f32 {
    math::sigmoid(a) * (a - b) - math::softplus(a) + math::softplus(b)
}

fn sgn(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn laplace_kl(ql: f32, qs: f32, pl: f32, ps: f32) -> f32 {
    let d = (ql - pl).abs();
    let r = qs / ps;
    -r.ln() + d / ps + r * (-d / qs).exp() - 1.0
}

/// Forward of one family op.
pub(super) fn fwd(w: &Worker, op: &FamOp) {
    match op {
        FamOp::UniformSample { low, high, u, out } => {
            let (l, h, e, y) = (w.rd(*low), w.rd(*high), w.rd(*u), w.wr(*out));
            for i in 0..y.len() {
                y[i] = (h[i] - l[i]) * e[i] + l[i];
            }
        }
        FamOp::UniformLogProb { x, low, high, out } => {
            let c = w.cols(*x);
            let (xv, l, h, y) = (w.rd(*x), w.rd(*low), w.rd(*high), w.wr(*out));
            row_sums(y, c, [xv, l, h], |[x, l, h]| {
                let inside = if x >= l && x <= h {
                    0.0
                } else {
                    f32::NEG_INFINITY
                };
                -(h - l).ln() + inside
            });
        }
        FamOp::UniformEntropy { low, high, out } => {
            let c = w.cols(*low);
            let (l, h, y) = (w.rd(*low), w.rd(*high), w.wr(*out));
            row_sums(y, c, [l, h], |[l, h]| (h - l).ln());
        }
        FamOp::UniformKl {
            ql,
            qh,
            pl,
            ph,
            out,
            ..
        } => {
            let c = w.cols(*ql);
            let (a, b, cc, d, y) = (w.rd(*ql), w.rd(*qh), w.rd(*pl), w.rd(*ph), w.wr(*out));
            row_sums(y, c, [a, b, cc, d], |[ql, qh, pl, ph]| {
                if ql < pl || qh > ph {
                    f32::INFINITY
                } else {
                    (ph - pl).ln() - (qh - ql).ln()
                }
            });
        }
        FamOp::LaplaceSample {
            loc,
            scale,
            eps,
            out,
        } => {
            let (l, s, e, y) = (w.rd(*loc), w.rd(*scale), w.rd(*eps), w.wr(*out));
            for i in 0..y.len() {
                y[i] = l[i] + s[i] * e[i];
            }
        }
        FamOp::LaplaceLogProb { x, loc, scale, out } => {
            let c = w.cols(*x);
            let (xv, l, s, y) = (w.rd(*x), w.rd(*loc), w.rd(*scale), w.wr(*out));
            row_sums(y, c, [xv, l, s], |[x, l, s]| {
                -(x - l).abs() / s - (s * 2.0).ln()
            });
        }
        FamOp::LaplaceEntropy { scale, out } => {
            let c = w.cols(*scale);
            let (s, y) = (w.rd(*scale), w.wr(*out));
            row_sums(y, c, [s], |[s]| (s * 2.0).ln() + 1.0);
        }
        FamOp::LaplaceKl {
            ql,
            qs,
            pl,
            ps,
            out,
            ..
        } => {
            let c = w.cols(*ql);
            let (a, b, cc, d, y) = (w.rd(*ql), w.rd(*qs), w.rd(*pl), w.rd(*ps), w.wr(*out));
            row_sums(y, c, [a, b, cc, d], |[a, b, c, d]| laplace_kl(a, b, c, d));
        }
        FamOp::BernSample { logits, u, out, .. } => {
            let (l, uv, y) = (w.rd(*logits), w.rd(*u), w.wr(*out));
            for i in 0..y.len() {
                y[i] = if uv[i] < sigmoid_exact(l[i]) {
                    1.0
                } else {
                    0.0
                };
            }
        }
        FamOp::BernKl { q, p, out, .. } => {
            let c = w.cols(*q);
            let (a, b, y) = (w.rd(*q), w.rd(*p), w.wr(*out));
            row_sums(y, c, [a, b], |[a, b]| bern_kl(a, b));
        }
        FamOp::BernEntropy { logits, out } => {
            let c = w.cols(*logits);
            let (l, y) = (w.rd(*logits), w.wr(*out));
            row_sums(y, c, [l], |[l]| math::softplus(l) - math::sigmoid(l) * l);
        }
        FamOp::Special(s) => super::special::fwd(w, s),
    }
}

/// Backward of one family op (accumulates into its inputs' gradients).
pub(super) fn bwd(w: &Worker, op: &FamOp) {
    match op {
        FamOp::UniformSample { low, high, u, out } => {
            let Some(g) = w.gr(*out) else { return };
            let e = w.rd(*u);
            if let Some(gl) = w.gr(*low) {
                for i in 0..gl.len() {
                    gl[i] += g[i] * (1.0 - e[i]);
                }
            }
            if let Some(gh) = w.gr(*high) {
                for i in 0..gh.len() {
                    gh[i] += g[i] * e[i];
                }
            }
        }
        FamOp::UniformLogProb {
            x: _,
            low,
            high,
            out,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*low);
            let ops = [w.rd(*low), w.rd(*high)];
            if let Some(gl) = w.gr(*low) {
                each(gl, c, g, ops, |[l, h], g| g / (h - l));
            }
            if let Some(gh) = w.gr(*high) {
                each(gh, c, g, ops, |[l, h], g| -g / (h - l));
            }
        }
        FamOp::UniformEntropy { low, high, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*low);
            let ops = [w.rd(*low), w.rd(*high)];
            if let Some(gl) = w.gr(*low) {
                each(gl, c, g, ops, |[l, h], g| -g / (h - l));
            }
            if let Some(gh) = w.gr(*high) {
                each(gh, c, g, ops, |[l, h], g| g / (h - l));
            }
        }
        FamOp::UniformKl {
            ql,
            qh,
            pl,
            ph,
            out,
            gq,
            gp,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*ql);
            let (gq, gp) = (*gq, *gp);
            let q = [w.rd(*ql), w.rd(*qh)];
            let p = [w.rd(*pl), w.rd(*ph)];
            if gq != 0.0 {
                if let Some(a) = w.gr(*ql) {
                    each(a, c, g, q, |[l, h], g| gq * g / (h - l));
                }
                if let Some(a) = w.gr(*qh) {
                    each(a, c, g, q, |[l, h], g| -gq * g / (h - l));
                }
            }
            if gp != 0.0 {
                if let Some(a) = w.gr(*pl) {
                    each(a, c, g, p, |[l, h], g| -gp * g / (h - l));
                }
                if let Some(a) = w.gr(*ph) {
                    each(a, c, g, p, |[l, h], g| gp * g / (h - l));
                }
            }
        }
        FamOp::LaplaceSample {
            loc,
            scale,
            eps,
            out,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let e = w.rd(*eps);
            if let Some(gl) = w.gr(*loc) {
                for (a, v) in gl.iter_mut().zip(g.iter()) {
                    *a += v;
                }
            }
            if let Some(gs) = w.gr(*scale) {
                for ((a, gv), ev) in gs.iter_mut().zip(g.iter()).zip(e) {
                    *a += gv * ev;
                }
            }
        }
        FamOp::LaplaceLogProb { x, loc, scale, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*x);
            let ops = [w.rd(*x), w.rd(*loc), w.rd(*scale)];
            // d/dx = −sgn(x − μ)/b.
            let dx = |[x, l, s]: [f32; 3], g: f32| -g * sgn(x - l) / s;
            if let Some(gx) = w.gr(*x) {
                each(gx, c, g, ops, dx);
            }
            if let Some(gl) = w.gr(*loc) {
                each(gl, c, g, ops, |v, g| -dx(v, g));
            }
            if let Some(gs) = w.gr(*scale) {
                each(gs, c, g, ops, |[x, l, s], g| {
                    g * ((x - l).abs() / (s * s) - 1.0 / s)
                });
            }
        }
        FamOp::LaplaceEntropy { scale, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*scale);
            let ops = [w.rd(*scale)];
            if let Some(gs) = w.gr(*scale) {
                each(gs, c, g, ops, |[s], g| g / s);
            }
        }
        FamOp::LaplaceKl {
            ql,
            qs,
            pl,
            ps,
            out,
            gq,
            gp,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*ql);
            let (gq, gp) = (*gq, *gp);
            let ops = [w.rd(*ql), w.rd(*qs), w.rd(*pl), w.rd(*ps)];
            // KL = −ln bq + ln bp + d/bp + (bq/bp)·e^{−d/bq} − 1, d = |μq − μp|.
            // ∂d: 1/bp − e^{−d/bq}/bp; ∂bq: −1/bq + e/bp + (d/bq²)·(bq/bp)·e = −1/bq + e(1 + d/bq)/bp;
            // ∂bp: 1/bp − d/bp² − (bq/bp²)·e.
            let dd = |[a, b, c, d]: [f32; 4]| -> f32 {
                let e = (-(a - c).abs() / b).exp();
                sgn(a - c) * (1.0 - e) / d
            };
            if gq != 0.0 {
                if let Some(a) = w.gr(*ql) {
                    each(a, c, g, ops, |v, g| gq * g * dd(v));
                }
                if let Some(a) = w.gr(*qs) {
                    each(a, c, g, ops, |[a, b, c, d], g| {
                        let dist = (a - c).abs();
                        let e = (-dist / b).exp();
                        gq * g * (-1.0 / b + e * (1.0 + dist / b) / d)
                    });
                }
            }
            if gp != 0.0 {
                if let Some(a) = w.gr(*pl) {
                    each(a, c, g, ops, |v, g| -gp * g * dd(v));
                }
                if let Some(a) = w.gr(*ps) {
                    each(a, c, g, ops, |[a, b, c, d], g| {
                        let dist = (a - c).abs();
                        let e = (-dist / b).exp();
                        gp * g * (1.0 / d - dist / (d * d) - b * e / (d * d))
                    });
                }
            }
        }
        FamOp::BernSample {
            logits,
            out,
            st: true,
            ..
        } => {
            // out = s + σ(l) − sg(σ(l)): dout reaches σ(l).
            let (Some(g), Some(gl)) = (w.gr(*out), w.gr(*logits)) else {
                return;
            };
            let l = w.rd(*logits);
            for i in 0..gl.len() {
                let p = sigmoid_exact(l[i]);
                gl[i] += g[i] * p * (1.0 - p);
            }
        }
        FamOp::BernSample { .. } => {}
        FamOp::BernKl {
            q,
            p,
            out,
            gq,
            gp,
            floor,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*q);
            let (gq, gp) = (*gq, *gp);
            let ops = [w.rd(*q), w.rd(*p)];
            let fl = floor.unwrap_or(f32::NEG_INFINITY);
            // The upstream gradient of one element: 0 under the free-nats floor.
            let e = move |a: f32, b: f32, g: f32| if bern_kl(a, b) > fl { g } else { 0.0 };
            if let Some(x) = w.gr(*q) {
                each(x, c, g, ops, |[a, b], g| {
                    let s = math::sigmoid(a);
                    gq * e(a, b, g) * s * (1.0 - s) * (a - b)
                });
            }
            if let Some(x) = w.gr(*p) {
                each(x, c, g, ops, |[a, b], g| {
                    gp * e(a, b, g) * (math::sigmoid(b) - math::sigmoid(a))
                });
            }
        }
        FamOp::BernEntropy { logits, out } => {
            let Some(g) = w.gr(*out) else { return };
            let c = w.cols(*logits);
            let ops = [w.rd(*logits)];
            if let Some(a) = w.gr(*logits) {
                each(a, c, g, ops, |[l], g| {
                    let s = math::sigmoid(l);
                    -g * s * (1.0 - s) * l
                });
            }
        }
        FamOp::Special(s) => super::special::bwd(w, s),
    }
}
