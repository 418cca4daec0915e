//! Kernels of discrete latents: one-hot categorical draws (straight-through or score
//! function), log-densities, the closed-form Categorical ‖ Categorical KL, the entropy, the
//! weights of exact enumeration and the fold of a tiled batch.
//!
//! Input: views of a [`Worker`]'s buffers; logits are `(R, G·C)`, group `g` in columns
//! `g·C .. (g + 1)·C` (as `runtime::dist::categorical`). Output: the op's output view in
//! forward; gradients accumulated (`+=`) into the inputs that have them in backward.
//! Invariants: a draw's softmax is computed as dfdx computes it (max subtracted, `exp` of
//! the standard library, sums left to right) and the draw is the first class whose running
//! sum of probabilities exceeds the row's uniform — the reference sampler's rule — so the
//! same logits and noise give the same one-hot values; densities, KLs, entropies and
//! enumeration weights use the fast `exp`/`ln` of `fused::math` (float rounding apart).

#![allow(clippy::needless_range_loop)] // kernels index rows and columns of several buffers at once

use super::graph::*;
use super::kernels::Worker;
use super::math;

/// Digit of group `g` (of `groups`, `classes` each) in value `k` of a one-hot latent: the
/// last group is the least significant (`reference::exec::dist::enum_value`'s order).
pub fn digit(k: usize, g: usize, groups: usize, classes: usize) -> usize {
    let mut k = k;
    for _ in g + 1..groups {
        k /= classes;
    }
    k % classes
}

/// `out = exp(l − max) / Σ exp(l − max)` (dfdx's softmax).
#[inline(always)]
fn softmax(l: &[f32], out: &mut [f32]) {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    let mut s = 0.0f32;
    for (o, &x) in out.iter_mut().zip(l) {
        *o = (x - m).exp();
        s += *o;
    }
    for o in out.iter_mut() {
        *o /= s;
    }
}

/// `lsm = log_softmax(l)` and `p = softmax(l)` of one group with the fast `exp`/`ln` of
/// [`super::math`] (the densities and KLs; within float rounding of dfdx's).
#[inline(always)]
fn stats(l: &[f32], lsm: &mut [f32], p: &mut [f32]) {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    let mut s = 0.0f32;
    for ((o, e), &x) in lsm.iter_mut().zip(p.iter_mut()).zip(l) {
        *o = x - m;
        *e = math::exp(*o);
        s += *e;
    }
    let (lse, inv) = (math::ln(s), 1.0 / s);
    for (o, e) in lsm.iter_mut().zip(p.iter_mut()) {
        *o -= lse;
        *e *= inv;
    }
}

/// [`stats`] of every group of one row (`G·c` logits), the exponentials in one flat loop
/// over the row (vectorised).
#[inline(always)]
fn row_stats(l: &[f32], c: usize, lsm: &mut [f32], p: &mut [f32]) {
    for (lg, og) in l.chunks_exact(c).zip(lsm.chunks_exact_mut(c)) {
        let m = lg.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
        for (o, &x) in og.iter_mut().zip(lg) {
            *o = x - m;
        }
    }
    for (e, &t) in p.iter_mut().zip(lsm.iter()) {
        *e = math::exp(t);
    }
    for (og, eg) in lsm.chunks_exact_mut(c).zip(p.chunks_exact_mut(c)) {
        let s: f32 = eg.iter().sum();
        let (lse, inv) = (math::ln(s), 1.0 / s);
        for o in og.iter_mut() {
            *o -= lse;
        }
        for e in eg.iter_mut() {
            *e *= inv;
        }
    }
}

/// The class the inverse CDF picks for uniform `u`, and whether a running sum lies within
/// `tol` of `u` (then rounding could change the pick).
#[inline(always)]
fn pick(p: &[f32], u: f32, tol: f32) -> (usize, bool) {
    let mut acc = 0.0f32;
    for (j, &pj) in p.iter().enumerate() {
        acc += pj;
        if (u - acc).abs() < tol {
            return (j, true);
        }
        if u < acc {
            return (j, false);
        }
    }
    (p.len() - 1, false)
}

/// The class of a one-hot group (its first entry ≥ ½).
#[inline(always)]
fn hot_index(z: &[f32]) -> usize {
    z.iter().position(|v| *v >= 0.5).unwrap_or(0)
}

/// Backward of a one-hot input read as weight rows: `dW[picked rows] += g` row by row, and
/// the input's gradient `g · W_blockᵀ` (the straight-through path).
#[inline(always)]
fn hot_bwd(w: &Worker, hh: &Hot, wb: BufId, g: &[f32], h: usize) {
    let hc = hh.groups * hh.classes;
    let rows = hh.x.rows;
    let zv = w.rd(hh.x);
    if let Some(gw) = w.gr(w.g.all(wb)) {
        for (zr, grow) in zv.chunks_exact(hc).zip(g.chunks_exact(h)) {
            for (gi, zg) in zr.chunks_exact(hh.classes).enumerate() {
                let j = hh.off + gi * hh.classes + hot_index(zg);
                for (a, v) in gw[j * h..(j + 1) * h].iter_mut().zip(grow) {
                    *a += v;
                }
            }
        }
    }
    if let Some(gz) = w.gr(hh.x) {
        let wv = w.rd(w.g.all(wb));
        // SAFETY: `gz` is rows × hc, `g` rows × h, the weight block hc rows of h from `off`.
        unsafe {
            super::kernels::mm(
                rows,
                hc,
                h,
                gz.as_mut_ptr(),
                hc,
                true,
                g.as_ptr(),
                h,
                1,
                wv.as_ptr().add(hh.off * h),
                1,
                h,
            )
        };
    }
}

/// Forward of the ops of this module.
#[inline(always)]
pub(super) fn fwd(w: &Worker, op: &Op) {
    match op {
        Op::CatSample {
            logits,
            u,
            probs,
            out,
            classes,
            ..
        } => {
            let c = *classes;
            let cols = w.cols(*logits);
            let (l, uv) = (w.rd(*logits), w.rd(*u));
            let (p, y) = (w.wr(*probs), w.wr(*out));
            let mut lsm = vec![0.0f32; cols];
            let mut exact = vec![0.0f32; c];
            for (r, ((lr, pr), yr)) in l
                .chunks_exact(cols)
                .zip(p.chunks_exact_mut(cols))
                .zip(y.chunks_exact_mut(cols))
                .enumerate()
            {
                row_stats(lr, c, &mut lsm, pr);
                yr.fill(0.0);
                for (g, (lg, pg)) in lr.chunks_exact(c).zip(pr.chunks_exact(c)).enumerate() {
                    let ug = uv[r * (cols / c) + g];
                    // Fast probabilities; where a running sum is this close to u, the pick
                    // is redone on dfdx's softmax (the reference's draw, bit for bit).
                    let (mut j, close) = pick(pg, ug, 1e-5);
                    if close {
                        softmax(lg, &mut exact);
                        j = pick(&exact, ug, 0.0).0;
                    }
                    yr[g * c + j] = 1.0;
                }
            }
        }
        Op::CatLogProb {
            x,
            logits,
            classes,
            out,
        } => {
            let c = *classes;
            let cols = w.cols(*logits);
            let (xv, l, o) = (w.rd(*x), w.rd(*logits), w.wr(*out));
            let (mut lsm, mut p) = (vec![0.0f32; c], vec![0.0f32; c]);
            for r in 0..out.rows {
                let mut s = 0.0f32;
                for g in 0..cols / c {
                    let a = r * cols + g * c;
                    stats(&l[a..a + c], &mut lsm, &mut p);
                    for j in 0..c {
                        s += xv[a + j] * lsm[j];
                    }
                }
                o[r] = s;
            }
        }
        Op::CatKl { q, p, classes, out } => {
            let c = *classes;
            let cols = w.cols(*q);
            let (qv, pv, o) = (w.rd(*q), w.rd(*p), w.wr(*out));
            let (mut lq, mut lp) = (vec![0.0f32; cols], vec![0.0f32; cols]);
            let (mut pq, mut pp) = (vec![0.0f32; cols], vec![0.0f32; cols]);
            let one = p.rows == 1;
            if one {
                row_stats(pv, c, &mut lp, &mut pp);
            }
            for r in 0..out.rows {
                let a = r * cols;
                row_stats(&qv[a..a + cols], c, &mut lq, &mut pq);
                if !one {
                    row_stats(&pv[a..a + cols], c, &mut lp, &mut pp);
                }
                let mut s = 0.0f32;
                for j in 0..cols {
                    s += pq[j] * (lq[j] - lp[j]);
                }
                o[r] = s;
            }
        }
        Op::CatEntropy {
            logits,
            classes,
            out,
        } => {
            let c = *classes;
            let cols = w.cols(*logits);
            let (l, o) = (w.rd(*logits), w.wr(*out));
            let (mut lsm, mut p) = (vec![0.0f32; c], vec![0.0f32; c]);
            for r in 0..out.rows {
                let mut s = 0.0f32;
                for g in 0..cols / c {
                    let a = r * cols + g * c;
                    stats(&l[a..a + c], &mut lsm, &mut p);
                    for (v, pj) in lsm.iter().zip(&p) {
                        s += pj * v;
                    }
                }
                o[r] = -s;
            }
        }
        Op::EnumWeight {
            logits,
            classes,
            out,
        } => {
            let c = *classes;
            let cols = w.cols(*logits);
            let groups = cols / c;
            let rows = logits.rows;
            let n = out.rows / rows.max(1);
            let (l, o) = (w.rd(*logits), w.wr(*out));
            let (mut lsm, mut p) = (vec![0.0f32; cols], vec![0.0f32; cols]);
            for i in 0..rows {
                for g in 0..groups {
                    let a = g * c;
                    stats(
                        &l[i * cols + a..i * cols + a + c],
                        &mut lsm[a..a + c],
                        &mut p[a..a + c],
                    );
                }
                for k in 0..n {
                    let mut s = 0.0f32;
                    for g in 0..groups {
                        s += lsm[g * c + digit(k, g, groups, c)];
                    }
                    o[k * rows + i] = math::exp(s);
                }
            }
        }
        Op::EnumAdd {
            hot,
            x,
            w: wb,
            off,
            groups,
            classes,
            n,
            bias,
            out,
        } => {
            let h = w.cols(*out);
            let wv = w.rd(w.g.all(*wb));
            let hv = hot.map(|hh| (hh, w.rd(hh.x)));
            let bv = bias.map(|b| w.rd(w.g.all(b)));
            let o = w.wr(*out);
            let n = *n;
            let rows = out.rows / n.max(1);
            let xv = x.map(|x| w.rd(x));
            let mut r = vec![0.0f32; h];
            for k in 0..n {
                match bv {
                    Some(b) => r.copy_from_slice(b),
                    None => r.fill(0.0),
                }
                for g in 0..*groups {
                    let j = off + g * classes + digit(k, g, *groups, *classes);
                    for (a, v) in r.iter_mut().zip(&wv[j * h..(j + 1) * h]) {
                        *a += v;
                    }
                }
                let blk = &mut o[k * rows * h..(k + 1) * rows * h];
                match xv {
                    Some(xv) => {
                        for (orow, xrow) in blk.chunks_exact_mut(h).zip(xv.chunks_exact(h)) {
                            for ((a, xx), rr) in orow.iter_mut().zip(xrow).zip(&r) {
                                *a = xx + rr;
                            }
                        }
                    }
                    None => {
                        for orow in blk.chunks_exact_mut(h) {
                            orow.copy_from_slice(&r);
                        }
                    }
                }
                if let Some((hh, zv)) = hv {
                    let hc = hh.groups * hh.classes;
                    for (i, orow) in blk.chunks_exact_mut(h).enumerate() {
                        let zr = &zv[(k * rows + i) * hc..(k * rows + i + 1) * hc];
                        for (g, zg) in zr.chunks_exact(hh.classes).enumerate() {
                            let j = hh.off + g * hh.classes + hot_index(zg);
                            for (a, v) in orow.iter_mut().zip(&wv[j * h..(j + 1) * h]) {
                                *a += v;
                            }
                        }
                    }
                }
            }
        }
        Op::Fold { x, out } => {
            let (xv, o) = (w.rd(*x), w.wr(*out));
            let len = o.len();
            o.copy_from_slice(&xv[..len]);
            for chunk in xv[len..].chunks_exact(len) {
                for (a, v) in o.iter_mut().zip(chunk) {
                    *a += v;
                }
            }
        }
        _ => {}
    }
}

/// Backward of the ops of this module.
#[inline(always)]
pub(super) fn bwd(w: &Worker, op: &Op) {
    match op {
        Op::CatSample {
            logits,
            probs,
            out,
            classes,
            st: true,
            ..
        } => {
            // z = onehot + p − sg(p): dz reaches p, then the softmax.
            let Some(g) = w.gr(*out) else { return };
            let Some(gl) = w.gr(*logits) else { return };
            let c = *classes;
            let p = w.rd(*probs);
            for ((pg, gg), lg) in p
                .chunks_exact(c)
                .zip(g.chunks_exact(c))
                .zip(gl.chunks_exact_mut(c))
            {
                let dot: f32 = pg.iter().zip(gg).map(|(a, b)| a * b).sum();
                for j in 0..c {
                    lg[j] += pg[j] * (gg[j] - dot);
                }
            }
        }
        Op::CatLogProb {
            x,
            logits,
            classes,
            out,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let c = *classes;
            let cols = w.cols(*logits);
            let (xv, l) = (w.rd(*x), w.rd(*logits));
            let (mut gl, mut gx) = (w.gr(*logits), w.gr(*x));
            let (mut lsm, mut p) = (vec![0.0f32; c], vec![0.0f32; c]);
            for r in 0..out.rows {
                let d = g[r];
                for gi in 0..cols / c {
                    let a = r * cols + gi * c;
                    stats(&l[a..a + c], &mut lsm, &mut p);
                    if let Some(gx) = gx.as_deref_mut() {
                        for j in 0..c {
                            gx[a + j] += d * lsm[j];
                        }
                    }
                    if let Some(gl) = gl.as_deref_mut() {
                        let sx: f32 = xv[a..a + c].iter().sum();
                        for j in 0..c {
                            gl[a + j] += d * (xv[a + j] - p[j] * sx);
                        }
                    }
                }
            }
        }
        Op::CatKl { q, p, classes, out } => {
            let Some(g) = w.gr(*out) else { return };
            let (mut gq, mut gp) = (w.gr(*q), w.gr(*p));
            if gq.is_none() && gp.is_none() {
                return;
            }
            let c = *classes;
            let cols = w.cols(*q);
            let (qv, pv) = (w.rd(*q), w.rd(*p));
            let (mut lq, mut lp) = (vec![0.0f32; cols], vec![0.0f32; cols]);
            let (mut pq, mut pp) = (vec![0.0f32; cols], vec![0.0f32; cols]);
            let one = p.rows == 1;
            if one {
                row_stats(pv, c, &mut lp, &mut pp);
            }
            for r in 0..out.rows {
                let d = g[r];
                let a0 = r * cols;
                row_stats(&qv[a0..a0 + cols], c, &mut lq, &mut pq);
                if !one {
                    row_stats(&pv[a0..a0 + cols], c, &mut lp, &mut pp);
                }
                let p0 = if one { 0 } else { a0 };
                for gi in 0..cols / c {
                    let b = gi * c;
                    let a = a0 + b;
                    let kl: f32 = (b..b + c).map(|j| pq[j] * (lq[j] - lp[j])).sum();
                    if let Some(gq) = gq.as_deref_mut() {
                        for j in 0..c {
                            gq[a + j] += d * pq[b + j] * (lq[b + j] - lp[b + j] - kl);
                        }
                    }
                    if let Some(gp) = gp.as_deref_mut() {
                        for j in 0..c {
                            gp[p0 + b + j] += d * (pp[b + j] - pq[b + j]);
                        }
                    }
                }
            }
        }
        Op::CatEntropy {
            logits,
            classes,
            out,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let Some(gl) = w.gr(*logits) else { return };
            let c = *classes;
            let cols = w.cols(*logits);
            let l = w.rd(*logits);
            let (mut lsm, mut p) = (vec![0.0f32; c], vec![0.0f32; c]);
            for r in 0..out.rows {
                let d = g[r];
                for gi in 0..cols / c {
                    let a = r * cols + gi * c;
                    stats(&l[a..a + c], &mut lsm, &mut p);
                    let h: f32 = -lsm.iter().zip(&p).map(|(v, pj)| pj * v).sum::<f32>();
                    for j in 0..c {
                        gl[a + j] -= d * p[j] * (lsm[j] + h);
                    }
                }
            }
        }
        Op::EnumWeight {
            logits,
            classes,
            out,
        } => {
            let Some(g) = w.gr(*out) else { return };
            let Some(gl) = w.gr(*logits) else { return };
            let c = *classes;
            let cols = w.cols(*logits);
            let groups = cols / c;
            let rows = logits.rows;
            let n = out.rows / rows.max(1);
            let (l, o) = (w.rd(*logits), w.rd(*out));
            let (mut lsm, mut p) = (vec![0.0f32; cols], vec![0.0f32; cols]);
            for i in 0..rows {
                for gi in 0..groups {
                    let a = gi * c;
                    stats(
                        &l[i * cols + a..i * cols + a + c],
                        &mut lsm[a..a + c],
                        &mut p[a..a + c],
                    );
                }
                let row = &mut gl[i * cols..(i + 1) * cols];
                // d w_k / d l_{g,j} = w_k (1[j = digit_g(k)] − p_{g,j}).
                let mut total = 0.0f32;
                for k in 0..n {
                    let a = g[k * rows + i] * o[k * rows + i];
                    total += a;
                    for gi in 0..groups {
                        row[gi * c + digit(k, gi, groups, c)] += a;
                    }
                }
                for (r, pj) in row.iter_mut().zip(&p) {
                    *r -= total * pj;
                }
            }
        }
        Op::EnumAdd {
            hot,
            x,
            w: wb,
            off,
            groups,
            classes,
            n,
            bias,
            out,
        } => {
            let Some(g) = w.gr(*out) else { return };
            if let Some(hh) = hot {
                hot_bwd(w, hh, *wb, g, w.cols(*out));
            }
            let h = w.cols(*out);
            let n = *n;
            let rows = out.rows / n.max(1);
            let mut gx = x.and_then(|x| w.gr(x));
            let mut gw = w.gr(w.g.all(*wb));
            let gb = bias.and_then(|b| w.gr(w.g.all(b)));
            let mut s = vec![0.0f32; h];
            let mut total = vec![0.0f32; h];
            for k in 0..n {
                s.fill(0.0);
                let blk = &g[k * rows * h..(k + 1) * rows * h];
                for (i, grow) in blk.chunks_exact(h).enumerate() {
                    for (a, v) in s.iter_mut().zip(grow) {
                        *a += v;
                    }
                    if let Some(gx) = gx.as_deref_mut() {
                        for (a, v) in gx[i * h..(i + 1) * h].iter_mut().zip(grow) {
                            *a += v;
                        }
                    }
                }
                if let Some(gw) = gw.as_deref_mut() {
                    for gi in 0..*groups {
                        let j = off + gi * classes + digit(k, gi, *groups, *classes);
                        for (a, v) in gw[j * h..(j + 1) * h].iter_mut().zip(&s) {
                            *a += v;
                        }
                    }
                }
                for (a, v) in total.iter_mut().zip(&s) {
                    *a += v;
                }
            }
            if let Some(gb) = gb {
                for (a, v) in gb.iter_mut().zip(&total) {
                    *a += v;
                }
            }
        }
        Op::Fold { x, out } => {
            let Some(g) = w.gr(*out) else { return };
            let Some(gx) = w.gr(*x) else { return };
            for chunk in gx.chunks_exact_mut(g.len()) {
                for (a, v) in chunk.iter_mut().zip(g.iter()) {
                    *a += v;
                }
            }
        }
        _ => {}
    }
}
