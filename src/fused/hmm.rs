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
//! The op's inputs are time-major rows (`t·b + s`); its scratch is state-major within a step
//! (`[t][j][s]`), so the recursions run over the b sequences in the inner loops (SIMD lanes).

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
    /// Scratch `t·d·b`: the observations transposed to `[t][i][s]`.
    pub yt: View,
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
    /// Scratch `k·b`: per-sequence rows of one step.
    pub w: View,
    /// Scratch `k·k·b` and `k·b`: the transition gradient's sums over steps, per sequence.
    pub nacc: View,
    /// See `nacc`.
    pub dacc: View,
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

const HALF_LN_2PI: f32 = 0.918_938_5;

/// Row-wise softmax of `(rows, k)` logits.
#[inline(always)]
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

// Scratch layouts are state-major within a step, `[t][j][s]` (index `(t·k + j)·b + s`), so
// every inner loop runs over the b sequences, contiguous, and vectorises.

/// `e[t][j][s] += Σ_d log N(y[t·b + s, d]; loc[j, d], scale[j, d])`.
#[inline(always)]
fn normal_table(w: &Worker, ne: &NormalEmit, e: &mut [f32], b: usize, tt: usize, k: usize) {
    let d = w.cols(ne.y);
    let (loc, scale, aux) = (w.rd(ne.loc), w.rd(ne.scale), w.wr(ne.aux));
    for j in 0..k {
        for i in 0..d {
            let s = scale[j * d + i];
            aux[j * 2 * d + i] = 1.0 / s;
            aux[j * 2 * d + d + i] = math::ln(s) + HALF_LN_2PI;
        }
    }
    // The observations transposed to [t][i][s].
    let (y, yt) = (w.rd(ne.y), w.wr(ne.yt));
    for t in 0..tt {
        for s in 0..b {
            for i in 0..d {
                yt[(t * d + i) * b + s] = y[(t * b + s) * d + i];
            }
        }
    }
    for t in 0..tt {
        for j in 0..k {
            let er = &mut e[(t * k + j) * b..(t * k + j + 1) * b];
            for i in 0..d {
                let (mu, a, c) = (loc[j * d + i], aux[j * 2 * d + i], aux[j * 2 * d + d + i]);
                let yr = &yt[(t * d + i) * b..(t * d + i + 1) * b];
                for (ev, yv) in er.iter_mut().zip(yr) {
                    let z = (yv - mu) * a;
                    *ev -= 0.5 * z * z + c;
                }
            }
        }
    }
}

/// The gradients of a [`NormalEmit`]'s tables from `gl[t][j][s]` = d/d(log-density).
#[inline(always)]
fn normal_table_grad(w: &Worker, ne: &NormalEmit, gl: &[f32], b: usize, tt: usize, k: usize) {
    let d = w.cols(ne.y);
    let (loc, aux, yt) = (w.rd(ne.loc), w.rd(ne.aux), w.rd(ne.yt));
    let (gloc, gsc) = (w.gr(ne.loc), w.gr(ne.scale));
    if gloc.is_none() && gsc.is_none() {
        return;
    }
    let (mut gloc, mut gsc) = (gloc, gsc);
    for j in 0..k {
        for i in 0..d {
            let (mu, a) = (loc[j * d + i], aux[j * 2 * d + i]);
            // Eight lanes of partial sums (a float sum does not vectorise in order).
            let (mut sl, mut ss) = ([0.0f32; 8], [0.0f32; 8]);
            let (mut rl, mut rs) = (0.0f32, 0.0f32);
            for t in 0..tt {
                let g = &gl[(t * k + j) * b..(t * k + j + 1) * b];
                let yr = &yt[(t * d + i) * b..(t * d + i + 1) * b];
                let (gc, yc) = (g.chunks_exact(8), yr.chunks_exact(8));
                for (gv, yv) in gc.remainder().iter().zip(yc.remainder()) {
                    let z = (yv - mu) * a;
                    rl += gv * z;
                    rs += gv * (z * z - 1.0);
                }
                for (g8, y8) in gc.zip(yc) {
                    for l in 0..8 {
                        let z = (y8[l] - mu) * a;
                        sl[l] += g8[l] * z;
                        ss[l] += g8[l] * (z * z - 1.0);
                    }
                }
            }
            let sl = sl.iter().sum::<f32>() + rl;
            let ss = ss.iter().sum::<f32>() + rs;
            if let Some(g) = gloc.as_deref_mut() {
                g[j * d + i] += sl * a;
            }
            if let Some(g) = gsc.as_deref_mut() {
                g[j * d + i] += ss * a;
            }
        }
    }
}

/// `Σ x` in eight lanes of partial sums.
#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    let c = x.chunks_exact(8);
    let r: f32 = c.remainder().iter().sum();
    let mut acc = [0.0f32; 8];
    for ch in c {
        for l in 0..8 {
            acc[l] += ch[l];
        }
    }
    acc.iter().sum::<f32>() + r
}

#[inline(always)]
pub(super) fn fwd(w: &Worker, op: &HmmOp) {
    let (b, tt, k) = (op.b, op.t, op.k);
    if b == 0 || k == 0 {
        return;
    }
    let shared = op.init.rows == 1;
    softmax_rows(w.rd(op.init), w.wr(op.pi), k);
    softmax_rows(w.rd(op.trans), w.wr(op.a), k);
    let (pi, a) = (w.rd(op.pi), w.rd(op.a));
    let mask = op.mask.map(|m| w.rd(m));
    let (e, al, c, out) = (w.wr(op.e), w.wr(op.alpha), w.wr(op.c), w.wr(op.out));
    // The emission table, masked, then shifted per (t, s) by its maximum and exponentiated.
    e.fill(0.0);
    for (j, v) in op.em.iter().enumerate() {
        let ej = w.rd(*v);
        for t in 0..tt {
            let dst = &mut e[(t * k + j) * b..(t * k + j + 1) * b];
            for (x, y) in dst.iter_mut().zip(&ej[t * b..(t + 1) * b]) {
                *x += y;
            }
        }
    }
    for ne in &op.normal {
        normal_table(w, ne, e, b, tt, k);
    }
    out.fill(0.0);
    let mx = w.wr(op.w);
    for t in 0..tt {
        let et = &mut e[t * k * b..(t + 1) * k * b];
        if let Some(m) = mask {
            let mt = &m[t * b..(t + 1) * b];
            for row in et.chunks_exact_mut(b) {
                for (x, mv) in row.iter_mut().zip(mt) {
                    *x *= mv;
                }
            }
        }
        let mx = &mut mx[..b];
        mx.copy_from_slice(&et[..b]);
        for row in et.chunks_exact(b).skip(1) {
            for (m, x) in mx.iter_mut().zip(row) {
                *m = m.max(*x);
            }
        }
        for row in et.chunks_exact_mut(b) {
            for (x, m) in row.iter_mut().zip(mx.iter()) {
                *x = math::exp(*x - m);
            }
        }
        for (o, m) in out.iter_mut().zip(mx.iter()) {
            *o += m;
        }
    }
    // â_1 = π ⊙ E_1 / c_1, then â_t = E_t ⊙ (Aᵀ â_{t−1}) / c_t.
    for t in 0..tt {
        let (done, rest) = al.split_at_mut(t * k * b);
        let at = &mut rest[..k * b];
        let et = &e[t * k * b..(t + 1) * k * b];
        if t == 0 {
            for j in 0..k {
                let row = &mut at[j * b..(j + 1) * b];
                if shared {
                    let p = pi[j];
                    for (x, ev) in row.iter_mut().zip(&et[j * b..(j + 1) * b]) {
                        *x = p * ev;
                    }
                } else {
                    for (s, (x, ev)) in row.iter_mut().zip(&et[j * b..(j + 1) * b]).enumerate() {
                        *x = pi[s * k + j] * ev;
                    }
                }
            }
        } else {
            let prev = &done[(t - 1) * k * b..];
            for j in 0..k {
                let row = &mut at[j * b..(j + 1) * b];
                row.fill(0.0);
                for i in 0..k {
                    let aij = a[i * k + j];
                    for (x, p) in row.iter_mut().zip(&prev[i * b..(i + 1) * b]) {
                        *x += aij * p;
                    }
                }
                for (x, ev) in row.iter_mut().zip(&et[j * b..(j + 1) * b]) {
                    *x *= ev;
                }
            }
        }
        let ct = &mut c[t * b..(t + 1) * b];
        ct.copy_from_slice(&at[..b]);
        for row in at.chunks_exact(b).skip(1) {
            for (cv, x) in ct.iter_mut().zip(row) {
                *cv += x;
            }
        }
        let inv = &mut mx[..b];
        for (iv, cv) in inv.iter_mut().zip(ct.iter()) {
            *iv = 1.0 / cv;
        }
        for row in at.chunks_exact_mut(b) {
            for (x, iv) in row.iter_mut().zip(inv.iter()) {
                *x *= iv;
            }
        }
        for (o, cv) in out.iter_mut().zip(ct.iter()) {
            *o += math::ln(*cv);
        }
    }
}

#[inline(always)]
pub(super) fn bwd(w: &Worker, op: &HmmOp) {
    let Some(g) = w.gr(op.out) else { return };
    let (b, tt, k) = (op.b, op.t, op.k);
    if tt == 0 || b == 0 || k == 0 {
        return;
    }
    let shared = op.init.rows == 1;
    let (pi, a, e, al, c) = (
        w.rd(op.pi),
        w.rd(op.a),
        w.rd(op.e),
        w.rd(op.alpha),
        w.rd(op.c),
    );
    let mask = op.mask.map(|m| w.rd(m));
    let (beta, gl, wv) = (w.wr(op.beta), w.wr(op.gl), w.wr(op.w));
    let (nacc, dacc) = (w.wr(op.nacc), w.wr(op.dacc));
    nacc.fill(0.0);
    dacc.fill(0.0);
    let gtrans = w.gr(op.trans);
    beta[(tt - 1) * k * b..tt * k * b].fill(1.0);
    // gl[t][j][s] = g_s · m_{t,s} · γ_t[j][s], γ = â ⊙ β̂.
    let emit = |t: usize, beta: &[f32], gl: &mut [f32]| {
        for j in 0..k {
            let o = (t * k + j) * b;
            let (gr, ar, br) = (&mut gl[o..o + b], &al[o..o + b], &beta[o..o + b]);
            for (((x, gv), av), bv) in gr.iter_mut().zip(&g[..b]).zip(ar).zip(br) {
                *x = gv * av * bv;
            }
            if let Some(m) = mask {
                for (x, mv) in gr.iter_mut().zip(&m[t * b..(t + 1) * b]) {
                    *x *= mv;
                }
            }
        }
    };
    for t in (1..tt).rev() {
        emit(t, beta, gl);
        let (lo, hi) = beta.split_at_mut(t * k * b);
        let bt = &hi[..k * b];
        let et = &e[t * k * b..(t + 1) * k * b];
        let ct = &c[t * b..(t + 1) * b];
        // w[j][s] = E_t[j][s] β̂_t[j][s] / c_t[s]
        for j in 0..k {
            let (wr, er, br) = (
                &mut wv[j * b..(j + 1) * b],
                &et[j * b..(j + 1) * b],
                &bt[j * b..(j + 1) * b],
            );
            for (((x, ev), bv), cv) in wr.iter_mut().zip(er).zip(br).zip(ct) {
                *x = ev * bv / cv;
            }
        }
        let bp = &mut lo[(t - 1) * k * b..t * k * b];
        for i in 0..k {
            let row = &mut bp[i * b..(i + 1) * b];
            row.fill(0.0);
            for j in 0..k {
                let aij = a[i * k + j];
                for (x, wj) in row.iter_mut().zip(&wv[j * b..(j + 1) * b]) {
                    *x += aij * wj;
                }
            }
        }
        // d/d trans logits[i][j] += A_ij Σ_s g_s â_{t−1}[i][s] (w[j][s] − β̂_{t−1}[i][s]):
        // accumulated per sequence over the steps (vector FMAs), summed over s once below.
        if gtrans.is_some() {
            let ap = &al[(t - 1) * k * b..t * k * b];
            for i in 0..k {
                let (ar, br) = (&ap[i * b..(i + 1) * b], &bp[i * b..(i + 1) * b]);
                let dr = &mut dacc[i * b..(i + 1) * b];
                for (((x, gv), av), bv) in dr.iter_mut().zip(&g[..b]).zip(ar).zip(br) {
                    *x += gv * av * bv;
                }
                for j in 0..k {
                    let wr = &wv[j * b..(j + 1) * b];
                    let nr = &mut nacc[(i * k + j) * b..(i * k + j + 1) * b];
                    for (((x, gv), av), wj) in nr.iter_mut().zip(&g[..b]).zip(ar).zip(wr) {
                        *x += gv * av * wj;
                    }
                }
            }
        }
    }
    if let Some(gt) = gtrans {
        for i in 0..k {
            let d = lane_sum(&dacc[i * b..(i + 1) * b]);
            for j in 0..k {
                let n = lane_sum(&nacc[(i * k + j) * b..(i * k + j + 1) * b]);
                gt[i * k + j] += a[i * k + j] * (n - d);
            }
        }
    }
    emit(0, beta, gl);
    for (j, v) in op.em.iter().enumerate() {
        if let Some(ge) = w.gr(*v) {
            for t in 0..tt {
                let src = &gl[(t * k + j) * b..(t * k + j + 1) * b];
                for (x, y) in ge[t * b..(t + 1) * b].iter_mut().zip(src) {
                    *x += y;
                }
            }
        }
    }
    for ne in &op.normal {
        normal_table_grad(w, ne, gl, b, tt, k);
    }
    if let Some(gi) = w.gr(op.init) {
        for j in 0..k {
            let (ar, br) = (&al[j * b..(j + 1) * b], &beta[j * b..(j + 1) * b]);
            for s in 0..b {
                let p = if shared { 0 } else { s };
                gi[p * k + j] += g[s] * (ar[s] * br[s] - pi[p * k + j]);
            }
        }
    }
}

/// A chain enumerated over its q chain (`derive::marginal::QChain`):
/// `𝔼_q[log p(k, y) − log q(k)]` per sequence by q's forward marginals γ (γ₁ = q₁,
/// ξ_t(i, j) = γ_{t−1}(i) Q_t(i, j), γ_t = Σ_i ξ_t), with a hand-written backward (the
/// adjoint recursion `∂/∂γ_{t−1}(i) = e_{t−1}(i) + Σ_j Q_t(i, j) (m_t r_t(i, j) + ∂/∂γ_t(j))`,
/// `r = log A − log Q`). Semantics: the reference's `Ctx::q_chain_bound`. The p side (initial
/// and transition logits, emissions) is built as for [`HmmOp`].
#[derive(Clone, Debug)]
pub struct QChainOp {
    /// Per state, the emission log-densities `(t·b, 1)` (as [`HmmOp::em`]).
    pub em: Vec<View>,
    /// Normal emissions given by per-state tables.
    pub normal: Vec<NormalEmit>,
    /// p's initial logits, `(1, k)` or `(b, k)`.
    pub init: View,
    /// p's transition logits `(k, k)` (row i: given state i).
    pub trans: View,
    /// `(t·b, 1)`: 1 where the step is observed.
    pub mask: View,
    /// q's initial logits `(b, k)`.
    pub q1: View,
    /// Per previous state i, q's transition logits `((t−1)·b, k)` for t ≥ 2.
    pub qt: Vec<View>,
    /// Scratch: log-softmax of `init` (its shape) and of `trans` `(k, k)`.
    pub lpi: View,
    /// See `lpi`.
    pub la: View,
    /// Scratch `(b, k)`: log q₁.
    pub lq1: View,
    /// Scratch `((t−1)·b, k·k)`: log Q_t, `[i·k + j]`.
    pub lqt: View,
    /// Scratch `(t·b, k)`: the emission table `[t][j][s]` (masked), as [`HmmOp::e`].
    pub e: View,
    /// Scratch `(t·b, k)`: γ_t, `[(t·b + s)·k + j]`.
    pub gamma: View,
    /// Scratch `(t·b, k)`: the gradient w.r.t. each emission log-density `[t][j][s]`.
    pub gl: View,
    /// Scratch `(k, k)`: the transition log-probabilities' gradient, summed over sequences.
    pub ga: View,
    /// `(b, 1)`: the term per sequence.
    pub out: View,
    /// Sequences.
    pub b: usize,
    /// Steps.
    pub t: usize,
    /// States.
    pub k: usize,
}

/// Row-wise log-softmax of `(rows, k)` logits.
#[inline(always)]
fn log_softmax_rows(x: &[f32], y: &mut [f32], k: usize) {
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(k)) {
        let mx = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = xr.iter().map(|v| math::exp(v - mx)).sum();
        let z = mx + math::ln(s);
        for (yv, xv) in yr.iter_mut().zip(xr) {
            *yv = xv - z;
        }
    }
}

pub(super) fn qchain_fwd(w: &Worker, op: &QChainOp) {
    let (b, tt, k) = (op.b, op.t, op.k);
    if b == 0 || k == 0 || tt == 0 {
        return;
    }
    let shared = op.init.rows == 1;
    log_softmax_rows(w.rd(op.init), w.wr(op.lpi), k);
    log_softmax_rows(w.rd(op.trans), w.wr(op.la), k);
    log_softmax_rows(w.rd(op.q1), w.wr(op.lq1), k);
    let lqt = w.wr(op.lqt);
    for (i, v) in op.qt.iter().enumerate() {
        let x = w.rd(*v);
        for r in 0..(tt - 1) * b {
            let (xr, yr) = (
                &x[r * k..(r + 1) * k],
                &mut lqt[r * k * k + i * k..r * k * k + (i + 1) * k],
            );
            log_softmax_rows(xr, yr, k);
        }
    }
    let (lpi, la, lq1, lqt) = (w.rd(op.lpi), w.rd(op.la), w.rd(op.lq1), w.rd(op.lqt));
    let mask = w.rd(op.mask);
    let (e, gamma, out) = (w.wr(op.e), w.wr(op.gamma), w.wr(op.out));
    e.fill(0.0);
    for (j, v) in op.em.iter().enumerate() {
        let ej = w.rd(*v);
        for t in 0..tt {
            let dst = &mut e[(t * k + j) * b..(t * k + j + 1) * b];
            for (x, y) in dst.iter_mut().zip(&ej[t * b..(t + 1) * b]) {
                *x += y;
            }
        }
    }
    for ne in &op.normal {
        normal_table(w, ne, e, b, tt, k);
    }
    for t in 0..tt {
        for j in 0..k {
            for s in 0..b {
                e[(t * k + j) * b + s] *= mask[t * b + s];
            }
        }
    }
    for s in 0..b {
        let p = if shared { 0 } else { s };
        let mut v = 0.0f32;
        for j in 0..k {
            let g1 = math::exp(lq1[s * k + j]);
            gamma[s * k + j] = g1;
            v += g1 * (lpi[p * k + j] - lq1[s * k + j] + e[j * b + s]);
        }
        for t in 1..tt {
            let m = mask[t * b + s];
            let lq = &lqt[((t - 1) * b + s) * k * k..((t - 1) * b + s + 1) * k * k];
            let (done, rest) = gamma.split_at_mut((t * b + s) * k);
            let prev = &done[((t - 1) * b + s) * k..((t - 1) * b + s + 1) * k];
            let now = &mut rest[..k];
            now.fill(0.0);
            for i in 0..k {
                for j in 0..k {
                    let xi = prev[i] * math::exp(lq[i * k + j]);
                    now[j] += xi;
                    v += m * xi * (la[i * k + j] - lq[i * k + j]);
                }
            }
            for j in 0..k {
                v += now[j] * e[(t * k + j) * b + s];
            }
        }
        out[s] = v;
    }
}

pub(super) fn qchain_bwd(w: &Worker, op: &QChainOp) {
    let Some(g) = w.gr(op.out) else { return };
    let (b, tt, k) = (op.b, op.t, op.k);
    if b == 0 || k == 0 || tt == 0 {
        return;
    }
    let shared = op.init.rows == 1;
    let (lpi, la, lq1, lqt) = (w.rd(op.lpi), w.rd(op.la), w.rd(op.lq1), w.rd(op.lqt));
    let (mask, e, gamma) = (w.rd(op.mask), w.rd(op.e), w.rd(op.gamma));
    let (gl, ga) = (w.wr(op.gl), w.wr(op.ga));
    ga.fill(0.0);
    let gqt: Vec<Option<&mut [f32]>> = op.qt.iter().map(|v| w.gr(*v)).collect();
    let mut gqt = gqt;
    let (mut adj, mut next) = (vec![0.0f32; k], vec![0.0f32; k]);
    let (mut dxi, mut h) = (vec![0.0f32; k * k], vec![0.0f32; k * k]);
    for s in 0..b {
        let gs = g[s];
        // ∂V/∂γ_{T−1}: its emission.
        for j in 0..k {
            adj[j] = e[((tt - 1) * k + j) * b + s];
        }
        for t in (1..tt).rev() {
            let m = mask[t * b + s];
            for j in 0..k {
                gl[(t * k + j) * b + s] = gs * gamma[(t * b + s) * k + j] * m;
            }
            let lq = &lqt[((t - 1) * b + s) * k * k..((t - 1) * b + s + 1) * k * k];
            let prev = &gamma[((t - 1) * b + s) * k..((t - 1) * b + s + 1) * k];
            for i in 0..k {
                let mut acc = 0.0f32;
                for j in 0..k {
                    let q = math::exp(lq[i * k + j]);
                    let xi = prev[i] * q;
                    let d = m * (la[i * k + j] - lq[i * k + j]) + adj[j];
                    dxi[i * k + j] = d;
                    acc += q * d;
                    h[i * k + j] = xi * d - m * xi;
                    ga[i * k + j] += gs * m * xi;
                }
                next[i] = e[((t - 1) * k + i) * b + s] + acc;
            }
            // q's transition logits: through the row log-softmax.
            for (i, gq) in gqt.iter_mut().enumerate() {
                let Some(gq) = gq.as_deref_mut() else {
                    continue;
                };
                let hs: f32 = h[i * k..(i + 1) * k].iter().sum();
                let row = &mut gq[((t - 1) * b + s) * k..((t - 1) * b + s + 1) * k];
                for j in 0..k {
                    row[j] += gs * (h[i * k + j] - math::exp(lq[i * k + j]) * hs);
                }
            }
            std::mem::swap(&mut adj, &mut next);
        }
        // Step 1: γ₁ = q₁ with coefficient log π − log q₁ + e₁ (+ the future, in adj).
        let p = if shared { 0 } else { s };
        let mut hs = 0.0f32;
        for j in 0..k {
            let g1 = gamma[s * k + j];
            gl[j * b + s] = gs * g1 * mask[s];
            let total = adj[j] + lpi[p * k + j] - lq1[s * k + j];
            h[j] = g1 * total - g1;
            hs += h[j];
        }
        if let Some(gq) = w.gr(op.q1) {
            for j in 0..k {
                gq[s * k + j] += gs * (h[j] - math::exp(lq1[s * k + j]) * hs);
            }
        }
        if let Some(gi) = w.gr(op.init) {
            for j in 0..k {
                gi[p * k + j] += gs * (gamma[s * k + j] - math::exp(lpi[p * k + j]));
            }
        }
    }
    if let Some(gt) = w.gr(op.trans) {
        for i in 0..k {
            let rs: f32 = ga[i * k..(i + 1) * k].iter().sum();
            for j in 0..k {
                gt[i * k + j] += ga[i * k + j] - math::exp(la[i * k + j]) * rs;
            }
        }
    }
    for (j, v) in op.em.iter().enumerate() {
        if let Some(ge) = w.gr(*v) {
            for t in 0..tt {
                let src = &gl[(t * k + j) * b..(t * k + j + 1) * b];
                for (x, y) in ge[t * b..(t + 1) * b].iter_mut().zip(src) {
                    *x += y;
                }
            }
        }
    }
    for ne in &op.normal {
        normal_table_grad(w, ne, gl, b, tt, k);
    }
}
