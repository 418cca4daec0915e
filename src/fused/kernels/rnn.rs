//! Kernels of the whole-sequence ops: [`Op::Rnn`] (a GRU over time from a zero state) and
//! [`Op::ClampT`] (clamp with tensor bounds).
//!
//! Input: the op's views, planned by `fused::build`'s `rnn.rs`: `xs` are `steps·b` rows
//! (time-major), `gi`, `gh`, `gates` are `(steps·b, 3H)`, `ghn` is `(steps·b, H)` and `out`
//! is `(steps + 1)·b` rows whose extra block (the first for a forward scan, the last for a
//! reverse one) is never written and stays zero: the initial state. Output: `out`'s step
//! blocks forward; in backward the gradients of `xs`, the four GRU parameters and nothing
//! else. Invariants: forward visits the steps in scan order and each step reads only the
//! block the previous step wrote; backward visits them in the opposite order, so when a
//! step's block is differentiated every reader (the op's own next step and every later op)
//! has already added its gradient. The cell is [`Op::Gru`]'s arithmetic (PyTorch's
//! `[r | z | n]`), so it matches `runtime::nets::gru::gru_cell` to float rounding.

use super::*;

/// Where step `t` (1-based) of a scan lives and what it reads.
#[derive(Clone, Copy)]
struct Steps {
    /// Sequences per step.
    b: usize,
    /// Steps.
    n: usize,
    reverse: bool,
}

impl Steps {
    /// The block of `out` holding step `t`.
    fn block(&self, t: usize) -> usize {
        if self.reverse {
            t - 1
        } else {
            t
        }
    }
    /// The block of `out` holding the state step `t` starts from.
    fn prev(&self, t: usize) -> usize {
        if self.reverse {
            t
        } else {
            t - 1
        }
    }
    /// Steps in scan order.
    fn order(&self) -> Vec<usize> {
        if self.reverse {
            (1..=self.n).rev().collect()
        } else {
            (1..=self.n).collect()
        }
    }
    /// Whether `t` starts from the zero state.
    fn first(&self, t: usize) -> bool {
        t == if self.reverse { self.n } else { 1 }
    }
}

impl Worker {
    fn rnn_steps(&self, out: View, gi: View, reverse: bool) -> Steps {
        let b = out.rows - gi.rows;
        Steps {
            b,
            n: gi.rows.checked_div(b).unwrap_or(0),
            reverse,
        }
    }

    /// [`Op::Rnn`] forward.
    #[inline(always)]
    pub(super) fn rnn_fwd(&self, op: &Op) {
        let Op::Rnn {
            xs,
            wi,
            wh,
            bi,
            bh,
            reverse,
            out,
            gates,
            ghn,
            gi,
            gh,
        } = op
        else {
            return;
        };
        let st = self.rnn_steps(*out, *gi, *reverse);
        let hd = self.cols(*out);
        let h3 = 3 * hd;
        let rows = gi.rows;
        // The input projection of every step: one product.
        let mut acc = false;
        for (x, off) in xs {
            let k = self.cols(*x);
            unsafe {
                mm(
                    rows,
                    h3,
                    k,
                    self.ptr(*gi),
                    h3,
                    acc,
                    self.ptr(*x),
                    k,
                    1,
                    self.vp[*wi].add(off * h3),
                    h3,
                    1,
                )
            };
            acc = true;
        }
        if !acc {
            self.wr(*gi).fill(0.0);
        }
        let (bis, bhs) = (self.rd(self.whole(*bi)), self.rd(self.whole(*bh)));
        let (giw, ghw) = (self.rd(*gi), self.wr(*gh));
        let (gv, nv) = (self.wr(*gates), self.wr(*ghn));
        let op_ = self.ptr(*out);
        let b = st.b;
        for t in st.order() {
            let s0 = (t - 1) * b;
            let hp = unsafe { op_.add(st.prev(t) * b * hd) };
            if st.first(t) {
                ghw[s0 * h3..(s0 + b) * h3].fill(0.0);
            } else {
                unsafe {
                    mm(
                        b,
                        h3,
                        hd,
                        ghw.as_mut_ptr().add(s0 * h3),
                        h3,
                        false,
                        hp,
                        hd,
                        1,
                        self.vp[*wh],
                        h3,
                        1,
                    )
                };
            }
            // SAFETY: the previous and the current block are distinct blocks of `out`.
            let hv = unsafe { std::slice::from_raw_parts(hp, b * hd) };
            let y =
                unsafe { std::slice::from_raw_parts_mut(op_.add(st.block(t) * b * hd), b * hd) };
            for r in 0..b {
                let o3 = (s0 + r) * h3;
                let oh = (s0 + r) * hd;
                for j in 0..hd {
                    let ar = giw[o3 + j] + bis[j] + ghw[o3 + j] + bhs[j];
                    let az = giw[o3 + hd + j] + bis[hd + j] + ghw[o3 + hd + j] + bhs[hd + j];
                    let ghn_v = ghw[o3 + 2 * hd + j] + bhs[2 * hd + j];
                    let rr = math::sigmoid(ar);
                    let zz = math::sigmoid(az);
                    let nn = math::tanh(giw[o3 + 2 * hd + j] + bis[2 * hd + j] + rr * ghn_v);
                    gv[o3 + j] = rr;
                    gv[o3 + hd + j] = zz;
                    gv[o3 + 2 * hd + j] = nn;
                    nv[oh + j] = ghn_v;
                    y[r * hd + j] = nn + zz * (hv[r * hd + j] - nn);
                }
            }
        }
    }

    /// [`Op::Rnn`] backward.
    #[inline(always)]
    pub(super) fn rnn_bwd(&self, op: &Op) {
        let Op::Rnn {
            xs,
            wi,
            wh,
            bi,
            bh,
            reverse,
            out,
            gates,
            ghn,
            gi,
            gh,
        } = op
        else {
            return;
        };
        if !self.has_grad(*out) {
            return;
        }
        let st = self.rnn_steps(*out, *gi, *reverse);
        let hd = self.cols(*out);
        let h3 = 3 * hd;
        let b = st.b;
        let (dgi, dgh) = (self.wr(*gi), self.wr(*gh));
        let (gv, nv) = (self.rd(*gates), self.rd(*ghn));
        let (vo, go) = (self.ptr(*out), self.gptr(*out));
        let mut order = st.order();
        order.reverse();
        for t in order {
            let s0 = (t - 1) * b;
            let first = st.first(t);
            // SAFETY: blocks of `out` (values and gradients); the step's block and the previous
            // one are distinct.
            let g = unsafe { std::slice::from_raw_parts(go.add(st.block(t) * b * hd), b * hd) };
            let pb = st.prev(t) * b * hd;
            let hv = unsafe { std::slice::from_raw_parts(vo.add(pb), b * hd) };
            let mut dh =
                (!first).then(|| unsafe { std::slice::from_raw_parts_mut(go.add(pb), b * hd) });
            for r in 0..b {
                let o3 = (s0 + r) * h3;
                let oh = (s0 + r) * hd;
                for j in 0..hd {
                    let (rr, zz, nn) = (gv[o3 + j], gv[o3 + hd + j], gv[o3 + 2 * hd + j]);
                    let gg = g[r * hd + j];
                    let hp = hv[r * hd + j];
                    let dz = gg * (hp - nn);
                    let dn = gg * (1.0 - zz);
                    let dan = dn * (1.0 - nn * nn);
                    let dar = dan * nv[oh + j] * rr * (1.0 - rr);
                    let daz = dz * zz * (1.0 - zz);
                    dgi[o3 + j] = dar;
                    dgi[o3 + hd + j] = daz;
                    dgi[o3 + 2 * hd + j] = dan;
                    dgh[o3 + j] = dar;
                    dgh[o3 + hd + j] = daz;
                    dgh[o3 + 2 * hd + j] = dan * rr;
                    if let Some(dh) = dh.as_deref_mut() {
                        dh[r * hd + j] += gg * zz;
                    }
                }
            }
            if !first {
                unsafe {
                    mm(
                        b,
                        hd,
                        h3,
                        go.add(pb),
                        hd,
                        true,
                        dgh.as_ptr().add(s0 * h3),
                        h3,
                        1,
                        self.vp[*wh],
                        1,
                        h3,
                    )
                };
            }
        }
        // The previous states of all steps: one contiguous view (the zero block included).
        let hprev = View {
            buf: out.buf,
            r0: out.r0 + if st.reverse { b } else { 0 },
            rows: gi.rows,
        };
        self.gru_wgrad(xs, hprev, *gi, *gh, [*wi, *wh, *bi, *bh]);
        for (x, off) in xs {
            let k = self.cols(*x);
            if self.has_grad(*x) {
                unsafe {
                    mm(
                        gi.rows,
                        k,
                        h3,
                        self.gptr(*x),
                        k,
                        true,
                        self.ptr(*gi),
                        h3,
                        1,
                        self.vp[*wi].add(off * h3),
                        1,
                        h3,
                    )
                };
            }
        }
    }

    /// [`Op::ClampT`] forward.
    #[inline(always)]
    pub(super) fn clamp_fwd(&self, x: View, lo: View, hi: View, out: View) {
        let (xv, lv, hv, y) = (self.rd(x), self.rd(lo), self.rd(hi), self.wr(out));
        for i in 0..y.len() {
            y[i] = xv[i].max(lv[i]).min(hv[i]);
        }
    }

    /// [`Op::ClampT`] backward: dfdx's `maximum` then `minimum` derivatives.
    #[inline(always)]
    pub(super) fn clamp_bwd(&self, x: View, lo: View, hi: View, out: View) {
        let Some(g) = self.gr(out) else { return };
        let (xv, lv, hv) = (self.rd(x), self.rd(lo), self.rd(hi));
        let (mut gx, mut gl, mut gh) = (self.gr(x), self.gr(lo), self.gr(hi));
        let side = |a: f32, b: f32| {
            if a > b {
                1.0
            } else if a < b {
                0.0
            } else {
                0.5
            }
        };
        for i in 0..g.len() {
            let m = xv[i].max(lv[i]);
            // ∂min(m, hi)/∂m and /∂hi, then ∂max(x, lo)/∂x and /∂lo.
            let (dm, dh) = (side(hv[i], m) * g[i], side(m, hv[i]) * g[i]);
            if let Some(gx) = gx.as_deref_mut() {
                gx[i] += dm * side(xv[i], lv[i]);
            }
            if let Some(gl) = gl.as_deref_mut() {
                gl[i] += dm * side(lv[i], xv[i]);
            }
            if let Some(gh) = gh.as_deref_mut() {
                gh[i] += dh;
            }
        }
    }
}
