//! The forward algorithm as one fused op ([`HmmOp`]): a discrete chain summed out of p
//! exactly (`derive::marginal`), forward and a hand-written backward (forward–backward).
//!
//! Scaled in probability space (Rabiner's scaling): per row and step the emissions are
//! shifted by their maximum and exponentiated once (`E`, K exps), `â_t = E_t ⊙ (Aᵀ â_{t−1}) / c_t`
//! with `c_t` its sum, and `log p(y) = Σ_t (log c_t + max_t)`: K² multiply-adds and K exps per
//! row and step instead of K² exps. Backward runs the scaled backward recursion
//! `β̂_{t−1} = A (E_t ⊙ β̂_t) / c_t`; the posterior marginals `γ_t = â_t ⊙ β̂_t` are the gradient
//! of `log p(y)` w.r.t. the emission log-densities, `γ_1 − π` w.r.t. the initial logits and
//! `Σ_t ξ_t − A·γ_{t−1}` (ξ the pairwise marginals) w.r.t. each row of transition logits.
//! Time-major rows (`t·b + s`), the steps outer and the sequences inner.

use super::graph::View;
use super::kernels::Worker;
use super::math;

/// A diagonal Normal emission whose parameters depend on the state only: the log-density of
/// every row at every state is computed here from `(k, d)` tables, with its gradient.
#[derive(Clone, Copy, Debug)]
pub struct NormalEmit {
    /// The observations `(t·b, d)`.
    pub y: View,
    /// Row `j`: the mean at state `j`, `(k, d)`.
    pub loc: View,
    /// Row `j`: the scale at state `j`, `(k, d)`.
    pub scale: View,
    /// Scratch `(k, 2d)`: `1/σ` and `ln σ + ½ ln 2π` per state and element.
    pub aux: View,
}

/// The forward algorithm over `t` steps of `b` sequences with `k` states.
#[derive(Clone, Debug)]
pub struct HmmOp {
    /// Per state `j`, the emission log-densities with the chain at `j`, `(t·b, 1)` (emissions
    /// evaluated by the general ops; empty when every emission is a [`NormalEmit`]).
    pub em: Vec<View>,
    /// Normal emissions given by per-state tables.
    pub normal: Vec<NormalEmit>,
    /// Initial logits, `(1, k)` (shared) or `(b, k)`.
    pub init: View,
    /// Transition logits `(k, k)`: row `i` holds the logits of `k[t]` given `k[t-1] = i`.
    pub trans: View,
    /// `(t·b, 1)`: 1 where the step is observed (an unobserved step emits nothing).
    pub mask: Option<View>,
    /// Scratch: softmax of the initial logits (`init`'s shape) and of the transitions.
    pub pi: View,
    /// Scratch `(k, k)`: the transition probabilities.
    pub a: View,
    /// Scratch `(t·b, k)`: the shifted, exponentiated emissions.
    pub e: View,
    /// Scratch `(t·b, k)`: the normalised forward probabilities â.
    pub alpha: View,
    /// Scratch `(t·b, 1)`: the scale factors c.
    pub c: View,
    /// Scratch `(t·b, k)`: the scaled backward probabilities β̂.
    pub beta: View,
    /// Scratch `(t·b, k)`: the gradient of `log p(y)` w.r.t. each emission log-density (for
    /// [`NormalEmit`]s).
    pub gl: View,
    /// `(b, 1)`: log p(y[1:T]) per sequence.
    pub out: View,
    /// Sequences.
    pub b: usize,
    /// Steps.
    pub t: usize,
    /// States.
    pub k: usize,
}

/// The most states the fused op runs (the builder refuses more).
pub const MAX_STATES: usize = 64;

fn softmax_rows(x: &[f32], y: &mut [f32], k: usize) {
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(k)) {
        let mx = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0;
        for (yv, xv) in yr.iter_mut().zip(xr) {
            *yv = math::exp(xv - mx);
            s += *yv;
        }
        let inv = 1.0 / s;
        for yv in yr.iter_mut() {
            *yv *= inv;
        }
    }
}

const HALF_LN_2PI: f32 = 0.918_938_5;

/// `e[r·k + j] += Σ_d log N(y[r, d]; loc[j, d], scale[j, d])` for every row and state.
#[inline(always)]
fn normal_table(w: &Worker, ne: &NormalEmit, e: &mut [f32], rows: usize, k: usize) {
    let d = w.cols(ne.y);
    let (loc, scale, aux) = (w.rd(ne.loc), w.rd(ne.scale), w.wr(ne.aux));
    for j in 0..k {
        for i in 0..d {
            let s = scale[j * d + i];
            aux[j * 2 * d + i] = 1.0 / s;
            aux[j * 2 * d + d + i] = math::ln(s) + HALF_LN_2PI;
        }
    }
    let y = w.rd(ne.y);
    for r in 0..rows {
        let yr = &y[r * d..(r + 1) * d];
        let er = &mut e[r * k..(r + 1) * k];
        for j in 0..k {
            let (mu, a) = (&loc[j * d..(j + 1) * d], &aux[j * 2 * d..(j + 1) * 2 * d]);
            let mut acc = 0.0;
            for i in 0..d {
                let z = (yr[i] - mu[i]) * a[i];
                acc -= 0.5 * z * z + a[d + i];
            }
            er[j] += acc;
        }
    }
}

/// The gradients of a [`NormalEmit`]'s tables from `gl[r·k + j]` = d/d(log-density of row r
/// at state j).
#[inline(always)]
fn normal_table_grad(w: &Worker, ne: &NormalEmit, gl: &[f32], rows: usize, k: usize) {
    let d = w.cols(ne.y);
    let (loc, aux, y) = (w.rd(ne.loc), w.rd(ne.aux), w.rd(ne.y));
    let (mut gloc, mut gsc) = (w.gr(ne.loc), w.gr(ne.scale));
    if gloc.is_none() && gsc.is_none() {
        return;
    }
    for r in 0..rows {
        let yr = &y[r * d..(r + 1) * d];
        for j in 0..k {
            let g = gl[r * k + j];
            if g == 0.0 {
                continue;
            }
            let (mu, a) = (&loc[j * d..(j + 1) * d], &aux[j * 2 * d..(j + 1) * 2 * d]);
            for i in 0..d {
                let z = (yr[i] - mu[i]) * a[i];
                if let Some(gl) = gloc.as_deref_mut() {
                    gl[j * d + i] += g * z * a[i];
                }
                if let Some(gs) = gsc.as_deref_mut() {
                    gs[j * d + i] += g * (z * z - 1.0) * a[i];
                }
            }
        }
    }
}

#[inline(always)]
pub(super) fn fwd(w: &Worker, op: &HmmOp) {
    let (b, tt, k) = (op.b, op.t, op.k);
    let shared = op.init.rows == 1;
    softmax_rows(w.rd(op.init), w.wr(op.pi), k);
    softmax_rows(w.rd(op.trans), w.wr(op.a), k);
    let (pi, a) = (w.rd(op.pi), w.rd(op.a));
    let mask = op.mask.map(|m| w.rd(m));
    let (e, al, c, out) = (w.wr(op.e), w.wr(op.alpha), w.wr(op.c), w.wr(op.out));
    out.fill(0.0);
    // The emission table, shifted per row by its maximum.
    e.fill(0.0);
    for (j, v) in op.em.iter().enumerate() {
        let ej = w.rd(*v);
        for r in 0..tt * b {
            e[r * k + j] += ej[r];
        }
    }
    for ne in &op.normal {
        normal_table(w, ne, e, tt * b, k);
    }
    for r in 0..tt * b {
        let mk = mask.map_or(1.0, |m| m[r]);
        let row = &mut e[r * k..(r + 1) * k];
        let mut mx = f32::NEG_INFINITY;
        for x in row.iter_mut() {
            *x *= mk;
            mx = mx.max(*x);
        }
        for x in row.iter_mut() {
            *x = math::exp(*x - mx);
        }
        out[r % b] += mx;
    }
    for s in 0..b {
        let p = if shared { 0 } else { s };
        let (ar, er) = (&mut al[s * k..(s + 1) * k], &e[s * k..(s + 1) * k]);
        let mut cs = 0.0;
        for j in 0..k {
            ar[j] = pi[p * k + j] * er[j];
            cs += ar[j];
        }
        let inv = 1.0 / cs;
        for x in ar.iter_mut() {
            *x *= inv;
        }
        c[s] = cs;
        out[s] += math::ln(cs);
    }
    for t in 1..tt {
        let (done, rest) = al.split_at_mut(t * b * k);
        let prev = &done[(t - 1) * b * k..];
        for s in 0..b {
            let r = t * b + s;
            let ap = &prev[s * k..(s + 1) * k];
            let ar = &mut rest[s * k..(s + 1) * k];
            ar.fill(0.0);
            for i in 0..k {
                let x = ap[i];
                let arow = &a[i * k..(i + 1) * k];
                for j in 0..k {
                    ar[j] += x * arow[j];
                }
            }
            let er = &e[r * k..(r + 1) * k];
            let mut cs = 0.0;
            for j in 0..k {
                ar[j] *= er[j];
                cs += ar[j];
            }
            let inv = 1.0 / cs;
            for x in ar.iter_mut() {
                *x *= inv;
            }
            c[r] = cs;
            out[s] += math::ln(cs);
        }
    }
}

#[inline(always)]
pub(super) fn bwd(w: &Worker, op: &HmmOp) {
    let Some(g) = w.gr(op.out) else { return };
    let (b, tt, k) = (op.b, op.t, op.k);
    let shared = op.init.rows == 1;
    let (pi, a, e, al, c) = (
        w.rd(op.pi),
        w.rd(op.a),
        w.rd(op.e),
        w.rd(op.alpha),
        w.rd(op.c),
    );
    let mask = op.mask.map(|m| w.rd(m));
    let beta = w.wr(op.beta);
    let mut gtrans = w.gr(op.trans);
    let mut ems: Vec<Option<&mut [f32]>> = op.em.iter().map(|v| w.gr(*v)).collect();
    beta[(tt - 1) * b * k..tt * b * k].fill(1.0);
    // γ_t[j] · m_t into each emission's gradient, for the rows of step t.
    let gl = w.wr(op.gl);
    let table = !op.normal.is_empty();
    let emit = |t: usize, beta: &[f32], ems: &mut Vec<Option<&mut [f32]>>, gl: &mut [f32]| {
        for s in 0..b {
            let r = t * b + s;
            let gs = g[s] * mask.map_or(1.0, |m| m[r]);
            for (j, ge) in ems.iter_mut().enumerate() {
                if let Some(ge) = ge {
                    ge[r] += gs * al[r * k + j] * beta[r * k + j];
                }
            }
            if table {
                for j in 0..k {
                    gl[r * k + j] = gs * al[r * k + j] * beta[r * k + j];
                }
            }
        }
    };
    for t in (1..tt).rev() {
        emit(t, beta, &mut ems, gl);
        let (lo, hi) = beta.split_at_mut(t * b * k);
        for s in 0..b {
            let r = t * b + s;
            let rp = r - b;
            let inv = 1.0 / c[r];
            let bt = &hi[s * k..(s + 1) * k];
            let er = &e[r * k..(r + 1) * k];
            let mut wv = [0.0f32; MAX_STATES];
            let wj = &mut wv[..k];
            for j in 0..k {
                wj[j] = er[j] * bt[j] * inv;
            }
            let bp = &mut lo[(t - 1) * b * k + s * k..(t - 1) * b * k + (s + 1) * k];
            for i in 0..k {
                let arow = &a[i * k..(i + 1) * k];
                let mut acc = 0.0;
                for j in 0..k {
                    acc += arow[j] * wj[j];
                }
                bp[i] = acc;
            }
            if let Some(gt) = gtrans.as_deref_mut() {
                let api = &al[rp * k..(rp + 1) * k];
                for i in 0..k {
                    let f = g[s] * api[i];
                    if f == 0.0 {
                        continue;
                    }
                    let arow = &a[i * k..(i + 1) * k];
                    let grow = &mut gt[i * k..(i + 1) * k];
                    for j in 0..k {
                        grow[j] += f * arow[j] * (wj[j] - bp[i]);
                    }
                }
            }
        }
    }
    emit(0, beta, &mut ems, gl);
    for ne in &op.normal {
        normal_table_grad(w, ne, gl, tt * b, k);
    }
    if let Some(gi) = w.gr(op.init) {
        for s in 0..b {
            let p = if shared { 0 } else { s };
            for j in 0..k {
                let gamma = al[s * k + j] * beta[s * k + j];
                gi[p * k + j] += g[s] * (gamma - pi[p * k + j]);
            }
        }
    }
}
