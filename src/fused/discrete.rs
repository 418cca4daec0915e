//! Kernels of discrete latents: one-hot categorical draws (straight-through or score
//! function), log-densities, the closed-form Categorical ‖ Categorical KL, the entropy, the
//! weights of exact enumeration and the fold of a tiled batch.
//!
//! Input: views of a [`Worker`]'s buffers; logits are `(R, G·C)`, group `g` in columns
//! `g·C .. (g + 1)·C` (as `runtime::dist::categorical`). Output: the op's output view in
//! forward; gradients accumulated (`+=`) into the inputs that have them in backward.
//! Invariants: the softmax and log-softmax are computed as dfdx computes them (max
//! subtracted, `exp`/`ln` of the standard library, sums left to right), and a draw is the
//! first class whose running sum of probabilities exceeds the row's uniform — the reference
//! sampler's rule — so the same logits and noise give the same one-hot values.

use super::graph::*;
use super::kernels::Worker;

/// Digit of group `g` (of `groups`, `classes` each) in value `k` of a one-hot latent: the
/// last group is the least significant (`lower::exec::dist::enum_value`'s order).
pub fn digit(k: usize, g: usize, groups: usize, classes: usize) -> usize {
    let mut k = k;
    for _ in g + 1..groups {
        k /= classes;
    }
    k % classes
}

/// `out = l − ln Σ exp(l − max) − max` (dfdx's log-softmax).
#[inline(always)]
fn log_softmax(l: &[f32], out: &mut [f32]) {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    let mut s = 0.0f32;
    for (o, &x) in out.iter_mut().zip(l) {
        *o = x - m;
        s += o.exp();
    }
    let lse = s.ln();
    for o in out.iter_mut() {
        *o -= lse;
    }
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

/// Forward of the ops of this module.
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
            let (l, uv) = (w.rd(*logits), w.rd(*u));
            let (p, y) = (w.wr(*probs), w.wr(*out));
            for (((lg, pg), yg), &ug) in l
                .chunks_exact(c)
                .zip(p.chunks_exact_mut(c))
                .zip(y.chunks_exact_mut(c))
                .zip(uv)
            {
                softmax(lg, pg);
                let mut acc = 0.0f32;
                let mut pick = c - 1;
                for (j, &pj) in pg.iter().enumerate() {
                    acc += pj;
                    if ug < acc {
                        pick = j;
                        break;
                    }
                }
                yg.fill(0.0);
                yg[pick] = 1.0;
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
            let mut lsm = vec![0.0f32; c];
            for r in 0..out.rows {
                let mut s = 0.0f32;
                for g in 0..cols / c {
                    let a = r * cols + g * c;
                    log_softmax(&l[a..a + c], &mut lsm);
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
            let (mut lq, mut lp) = (vec![0.0f32; c], vec![0.0f32; c]);
            for r in 0..out.rows {
                let mut s = 0.0f32;
                for g in 0..cols / c {
                    let a = r * cols + g * c;
                    log_softmax(&qv[a..a + c], &mut lq);
                    log_softmax(&pv[a..a + c], &mut lp);
                    for j in 0..c {
                        s += lq[j].exp() * (lq[j] - lp[j]);
                    }
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
            let mut lsm = vec![0.0f32; c];
            for r in 0..out.rows {
                let mut s = 0.0f32;
                for g in 0..cols / c {
                    let a = r * cols + g * c;
                    log_softmax(&l[a..a + c], &mut lsm);
                    for v in &lsm {
                        s += v.exp() * v;
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
            let mut lsm = vec![0.0f32; cols];
            for i in 0..rows {
                for g in 0..groups {
                    let a = g * c;
                    log_softmax(&l[i * cols + a..i * cols + a + c], &mut lsm[a..a + c]);
                }
                for k in 0..n {
                    let mut s = 0.0f32;
                    for g in 0..groups {
                        s += lsm[g * c + digit(k, g, groups, c)];
                    }
                    o[k * rows + i] = s.exp();
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
            let mut lsm = vec![0.0f32; c];
            for r in 0..out.rows {
                let d = g[r];
                for gi in 0..cols / c {
                    let a = r * cols + gi * c;
                    log_softmax(&l[a..a + c], &mut lsm);
                    if let Some(gx) = gx.as_deref_mut() {
                        for j in 0..c {
                            gx[a + j] += d * lsm[j];
                        }
                    }
                    if let Some(gl) = gl.as_deref_mut() {
                        let sx: f32 = xv[a..a + c].iter().sum();
                        for j in 0..c {
                            gl[a + j] += d * (xv[a + j] - lsm[j].exp() * sx);
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
            let (mut lq, mut lp) = (vec![0.0f32; c], vec![0.0f32; c]);
            for r in 0..out.rows {
                let d = g[r];
                for gi in 0..cols / c {
                    let a = r * cols + gi * c;
                    log_softmax(&qv[a..a + c], &mut lq);
                    log_softmax(&pv[a..a + c], &mut lp);
                    let kl: f32 = (0..c).map(|j| lq[j].exp() * (lq[j] - lp[j])).sum();
                    for j in 0..c {
                        let qj = lq[j].exp();
                        if let Some(gq) = gq.as_deref_mut() {
                            gq[a + j] += d * qj * (lq[j] - lp[j] - kl);
                        }
                        if let Some(gp) = gp.as_deref_mut() {
                            gp[a + j] += d * (lp[j].exp() - qj);
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
            let mut lsm = vec![0.0f32; c];
            for r in 0..out.rows {
                let d = g[r];
                for gi in 0..cols / c {
                    let a = r * cols + gi * c;
                    log_softmax(&l[a..a + c], &mut lsm);
                    let h: f32 = -lsm.iter().map(|v| v.exp() * v).sum::<f32>();
                    for j in 0..c {
                        gl[a + j] -= d * lsm[j].exp() * (lsm[j] + h);
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
            let mut p = vec![0.0f32; cols];
            for i in 0..rows {
                for gi in 0..groups {
                    let a = gi * c;
                    softmax(&l[i * cols + a..i * cols + a + c], &mut p[a..a + c]);
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
