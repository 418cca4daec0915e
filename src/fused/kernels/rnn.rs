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
            ..
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
            let (a3, e3, ah) = (s0 * h3, (s0 + b) * h3, s0 * hd);
            cells_fwd(
                hd,
                [&giw[a3..e3], &ghw[a3..e3], bis, bhs],
                hv,
                &mut gv[a3..e3],
                &mut nv[ah..ah + b * hd],
                y,
            );
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
            wht,
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
        // W_hᵀ once, so each step's dh += dgh·W_hᵀ reads contiguous weight rows.
        let (w, wt) = (self.rd(self.whole(*wh)), self.wr(*wht));
        for (j, row) in w.chunks_exact(h3).enumerate() {
            for (p, v) in row.iter().enumerate() {
                wt[p * hd + j] = *v;
            }
        }
        let wtp = self.ptr(*wht);
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
            let dh =
                (!first).then(|| unsafe { std::slice::from_raw_parts_mut(go.add(pb), b * hd) });
            let (a3, e3, ah) = (s0 * h3, (s0 + b) * h3, s0 * hd);
            cells_bwd(
                hd,
                [g, hv, &gv[a3..e3], &nv[ah..ah + b * hd]],
                &mut dgi[a3..e3],
                &mut dgh[a3..e3],
                dh,
            );
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
                        wtp,
                        hd,
                        1,
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

/// The cell forward of one step's rows (`[gi, gh]` `(b, 3H)`, `[b_i, b_h]` `(3H,)`, `h`, `ghn`,
/// `y` `(b, H)`, `gates` `(b, 3H)`), 16 lanes wide where the CPU has AVX-512.
#[inline(always)]
fn cells_fwd(
    hd: usize,
    ins: [&[f32]; 4],
    h: &[f32],
    gates: &mut [f32],
    ghn: &mut [f32],
    y: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::fused::small512::available() {
        // SAFETY: the CPU has AVX-512F (checked at run time).
        unsafe { cells_fwd_512(hd, ins, h, gates, ghn, y) };
        return;
    }
    cells_fwd_any(hd, ins, h, gates, ghn, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn cells_fwd_512(
    hd: usize,
    ins: [&[f32]; 4],
    h: &[f32],
    gates: &mut [f32],
    ghn: &mut [f32],
    y: &mut [f32],
) {
    cells_fwd_any(hd, ins, h, gates, ghn, y);
}

#[inline(always)]
fn cells_fwd_any(
    hd: usize,
    [gi, gh, bi, bh]: [&[f32]; 4],
    h: &[f32],
    gates: &mut [f32],
    ghn: &mut [f32],
    y: &mut [f32],
) {
    let h3 = 3 * hd;
    for r in 0..h.len() / hd.max(1) {
        let (o3, oh) = (r * h3, r * hd);
        cell_fwd(
            hd,
            [&gi[o3..o3 + h3], &gh[o3..o3 + h3], bi, bh],
            &h[oh..oh + hd],
            &mut gates[o3..o3 + h3],
            &mut ghn[oh..oh + hd],
            &mut y[oh..oh + hd],
        );
    }
}

/// The cell backward of one step's rows (`[g, h, gates, ghn]` as [`cells_fwd`] lays them out).
#[inline(always)]
fn cells_bwd(
    hd: usize,
    ins: [&[f32]; 4],
    dgi: &mut [f32],
    dgh: &mut [f32],
    dh: Option<&mut [f32]>,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::fused::small512::available() {
        // SAFETY: the CPU has AVX-512F (checked at run time).
        unsafe { cells_bwd_512(hd, ins, dgi, dgh, dh) };
        return;
    }
    cells_bwd_any(hd, ins, dgi, dgh, dh);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn cells_bwd_512(
    hd: usize,
    ins: [&[f32]; 4],
    dgi: &mut [f32],
    dgh: &mut [f32],
    dh: Option<&mut [f32]>,
) {
    cells_bwd_any(hd, ins, dgi, dgh, dh);
}

#[inline(always)]
fn cells_bwd_any(
    hd: usize,
    [g, h, gates, ghn]: [&[f32]; 4],
    dgi: &mut [f32],
    dgh: &mut [f32],
    mut dh: Option<&mut [f32]>,
) {
    let h3 = 3 * hd;
    for r in 0..h.len() / hd.max(1) {
        let (o3, oh) = (r * h3, r * hd);
        let rh = oh..oh + hd;
        cell_bwd(
            hd,
            &g[rh.clone()],
            &h[rh.clone()],
            &gates[o3..o3 + h3],
            &ghn[rh.clone()],
            &mut dgi[o3..o3 + h3],
            &mut dgh[o3..o3 + h3],
            dh.as_deref_mut().map(|d| &mut d[rh]),
        );
    }
}

/// Splits a `3H` row into its `[r | z | n]` blocks.
#[inline(always)]
fn three(x: &[f32], hd: usize) -> [&[f32]; 3] {
    [&x[..hd], &x[hd..2 * hd], &x[2 * hd..3 * hd]]
}

/// One row of the cell forward (the slices are cut to their exact lengths first, so the loop
/// has no bounds checks and vectorises): `[gi, gh, b_i, b_h]` (`3H` each), the previous state
/// `h`; writes `r, z, n`, `gh_n` and the new state `y`.
#[inline(always)]
fn cell_fwd(
    hd: usize,
    [gi, gh, bi, bh]: [&[f32]; 4],
    h: &[f32],
    gates: &mut [f32],
    ghn: &mut [f32],
    y: &mut [f32],
) {
    let [gir, giz, gin] = three(gi, hd);
    let [ghr, ghz, ghn_] = three(gh, hd);
    let [bir, biz, bin] = three(bi, hd);
    let [bhr, bhz, bhn] = three(bh, hd);
    let (h, ghn, y) = (&h[..hd], &mut ghn[..hd], &mut y[..hd]);
    let (gr, rest) = gates[..3 * hd].split_at_mut(hd);
    let (gz, gn) = rest.split_at_mut(hd);
    for j in 0..hd {
        let rr = math::sigmoid(gir[j] + bir[j] + ghr[j] + bhr[j]);
        let zz = math::sigmoid(giz[j] + biz[j] + ghz[j] + bhz[j]);
        let hn = ghn_[j] + bhn[j];
        let nn = math::tanh(gin[j] + bin[j] + rr * hn);
        gr[j] = rr;
        gz[j] = zz;
        gn[j] = nn;
        ghn[j] = hn;
        y[j] = nn + zz * (h[j] - nn);
    }
}

/// One row of the cell backward: from the state's gradient `g`, the previous state `h`, the
/// kept `r, z, n` and `gh_n`, writes the gate pre-activations' gradients (input and hidden
/// side) and adds `g·z` to the previous state's gradient `dh`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn cell_bwd(
    hd: usize,
    g: &[f32],
    h: &[f32],
    gates: &[f32],
    ghn: &[f32],
    dgi: &mut [f32],
    dgh: &mut [f32],
    dh: Option<&mut [f32]>,
) {
    let [gr, gz, gn] = three(gates, hd);
    let (g, h, ghn) = (&g[..hd], &h[..hd], &ghn[..hd]);
    let (ir, rest) = dgi[..3 * hd].split_at_mut(hd);
    let (iz, in_) = rest.split_at_mut(hd);
    let (hr, rest) = dgh[..3 * hd].split_at_mut(hd);
    let (hz, hn) = rest.split_at_mut(hd);
    for j in 0..hd {
        let (rr, zz, nn) = (gr[j], gz[j], gn[j]);
        let gg = g[j];
        let dz = gg * (h[j] - nn);
        let dn = gg * (1.0 - zz);
        let dan = dn * (1.0 - nn * nn);
        let dar = dan * ghn[j] * rr * (1.0 - rr);
        let daz = dz * zz * (1.0 - zz);
        ir[j] = dar;
        iz[j] = daz;
        in_[j] = dan;
        hr[j] = dar;
        hz[j] = daz;
        hn[j] = dan * rr;
    }
    if let Some(dh) = dh {
        for (d, (gg, zz)) in dh[..hd].iter_mut().zip(g.iter().zip(gz)) {
            *d += gg * zz;
        }
    }
}
