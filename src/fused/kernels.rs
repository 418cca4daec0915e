//! The kernels: one forward and one hand-written backward per [`Op`], on planned buffers.
//!
//! A [`Worker`] owns the values and gradients of one copy of a [`Graph`] (one share of the
//! batch). Parameters are read from slices owned by the caller; their gradients accumulate in
//! the worker. Matrix products go through `gemm` (the crate dfdx's CPU matmul uses), one
//! thread per worker; everything else is a fused loop over rows and columns.

#![allow(clippy::needless_range_loop)] // kernels index rows and columns of several buffers at once

use super::graph::*;
use super::math;
use crate::runtime::simd::avx2;

mod rnn;

const HALF_LN_2PI: f32 = 0.918_938_5;

/// Values and gradients of one graph instance.
pub struct Worker {
    /// The graph it runs.
    pub g: Graph,
    vals: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    vp: Vec<*mut f32>,
    gp: Vec<*mut f32>,
    /// Per buffer: `Wᵀ` of a weight that small products read transposed (a layer's per-step
    /// backward with respect to its input), made once per backward pass on first use, and
    /// whether it is this pass's ([`Worker::transposed`]).
    wt: std::cell::UnsafeCell<Vec<(bool, Vec<f32>)>>,
}

// SAFETY: the raw pointers point into `vals`/`grads` (owned, never resized after `new`) or
// into parameter slices set by `set_params` for the duration of one forward/backward call.
unsafe impl Send for Worker {}

/// `dst[i, :] (+)= Σ_p a[i, p] · b[p, :]` with contiguous rows of `b` (row stride `b_rs`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn small_rows(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldd: usize,
    acc: bool,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
) {
    // Column blocks of W lanes kept in registers over the whole sum (no store per term).
    #[inline(always)]
    unsafe fn block<const W: usize>(
        k: usize,
        d: *mut f32,
        acc: bool,
        a: *const f32,
        a_cs: usize,
        b: *const f32,
        b_rs: usize,
    ) {
        let mut s = [0.0f32; W];
        for p in 0..k {
            let x = *a.add(p * a_cs);
            let br = b.add(p * b_rs);
            for (l, v) in s.iter_mut().enumerate() {
                *v += x * *br.add(l);
            }
        }
        for (l, v) in s.iter().enumerate() {
            let o = d.add(l);
            *o = if acc { *o + v } else { *v };
        }
    }
    for i in 0..m {
        let d = dst.add(i * ldd);
        let ai = a.add(i * a_rs);
        let mut j = 0;
        while j + 32 <= n {
            block::<32>(k, d.add(j), acc, ai, a_cs, b.add(j), b_rs);
            j += 32;
        }
        while j + 8 <= n {
            block::<8>(k, d.add(j), acc, ai, a_cs, b.add(j), b_rs);
            j += 8;
        }
        while j < n {
            block::<1>(k, d.add(j), acc, ai, a_cs, b.add(j), b_rs);
            j += 1;
        }
    }
}

thread_local! {
    /// Scratch for [`mm`]'s transposed small operands.
    static TRANSPOSED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Products up to this many multiply-adds run in plain loops (`small512`'s outer-product loop
/// where the CPU has AVX-512F): below it, `gemm`'s packing and dispatch cost more than the
/// arithmetic (W2's 16 × 8 × 64 steps).
const SMALL: usize = 16 * 1024;

/// `dst (m×n, row stride ldd) (+)= a (m×k) · b (k×n)`; `a`, `b` given by pointer, row stride
/// and column stride (a transpose swaps the strides).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldd: usize,
    acc: bool,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for r in 0..m {
                std::slice::from_raw_parts_mut(dst.add(r * ldd), n).fill(0.0);
            }
        }
        return;
    }
    if m * n * k <= SMALL {
        // b's columns are contiguous (a transposed weight): transpose it into a scratch copy
        // (k·n ≤ SMALL floats), then the row form.
        let (b, b_rs) = if b_cs == 1 {
            (b, b_rs)
        } else {
            // The loops run here, not in the closure, so they get this function's target features.
            let t = TRANSPOSED.with(|t| {
                let mut t = t.borrow_mut();
                if t.len() < k * n {
                    t.resize(k * n, 0.0);
                }
                t.as_mut_ptr()
            });
            // SAFETY: the scratch holds ≥ k·n floats and nothing else on this thread uses it
            // until this product returns (kernels do not nest).
            let tt = std::slice::from_raw_parts_mut(t, k * n);
            for p in 0..k {
                for (j, v) in tt[p * n..(p + 1) * n].iter_mut().enumerate() {
                    *v = *b.add(p * b_rs + j * b_cs);
                }
            }
            (t as *const f32, n)
        };
        #[cfg(target_arch = "x86_64")]
        if super::small512::available() {
            let a = (a, a_rs, a_cs);
            super::small512::rows_times_weight(m, n, k, dst, ldd, acc, a, b, b_rs);
            return;
        }
        small_rows(m, n, k, dst, ldd, acc, a, a_rs, a_cs, b, b_rs);
        return;
    }
    // A chain's per-step products (few rows, the same weight every step): AVX-512 loops that
    // read the weight in place instead of `gemm` packing it on every call.
    #[cfg(target_arch = "x86_64")]
    if m <= super::small512::ROWS && a_cs == 1 && super::small512::available() {
        if b_cs == 1 {
            let a = (a, a_rs, 1);
            super::small512::rows_times_weight(m, n, k, dst, ldd, acc, a, b, b_rs);
            return;
        }
        if b_rs == 1 {
            super::small512::rows_times_weight_t(m, n, k, dst, ldd, acc, a, a_rs, b, b_cs);
            return;
        }
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        ldd as isize,
        acc,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

#[inline(always)]
fn bc_index(bc: Bc, r: usize, c: usize, cols: usize) -> usize {
    match bc {
        Bc::Full => r * cols + c,
        Bc::Row => c,
        Bc::Col => r,
        Bc::Scalar => 0,
    }
}

/// `y ← f(y + bias)` row by row.
#[inline(always)]
fn epilogue(y: &mut [f32], o: usize, bias: Option<&[f32]>, f: impl Fn(f32) -> f32) {
    match bias {
        Some(bv) => {
            for row in y.chunks_exact_mut(o) {
                for (v, bb) in row.iter_mut().zip(bv) {
                    *v = f(*v + bb);
                }
            }
        }
        None => {
            for v in y.iter_mut() {
                *v = f(*v);
            }
        }
    }
}

impl Worker {
    /// A worker with buffers for `g`.
    pub fn new(g: Graph) -> Worker {
        let mut vals = Vec::with_capacity(g.bufs.len());
        let mut grads = Vec::with_capacity(g.bufs.len());
        for b in &g.bufs {
            let n = b.rows * b.cols;
            let v = match (&b.kind, &b.init) {
                (BufKind::Param(_), _) => Vec::new(),
                (_, Some(init)) => init.clone(),
                _ => vec![0.0; n],
            };
            vals.push(v);
            grads.push(if b.grad { vec![0.0; n] } else { Vec::new() });
        }
        let vp = vals.iter_mut().map(|v| v.as_mut_ptr()).collect();
        let gp = grads.iter_mut().map(|v| v.as_mut_ptr()).collect();
        let wt = std::cell::UnsafeCell::new(vec![(false, Vec::new()); g.bufs.len()]);
        Worker {
            g,
            vals,
            grads,
            vp,
            gp,
            wt,
        }
    }

    /// Points the parameter buffers at `params` (index = parameter number).
    pub fn set_params(&mut self, params: &[&[f32]]) {
        for (i, b) in self.g.bufs.iter().enumerate() {
            if let BufKind::Param(p) = b.kind {
                self.vp[i] = params[p].as_ptr() as *mut f32;
            }
        }
    }

    /// A buffer's values (for data, noise and reading terms).
    pub fn vals_mut(&mut self, b: BufId) -> &mut [f32] {
        &mut self.vals[b]
    }
    /// The values of buffer `b`.
    pub fn vals(&self, b: BufId) -> &[f32] {
        &self.vals[b]
    }
    /// A view's values.
    pub fn view(&self, v: View) -> &[f32] {
        let c = self.g.bufs[v.buf].cols;
        &self.vals[v.buf][v.r0 * c..(v.r0 + v.rows) * c]
    }
    /// A view's values, to write (a forward pass's result computed elsewhere).
    pub fn view_mut(&mut self, v: View) -> &mut [f32] {
        let c = self.g.bufs[v.buf].cols;
        &mut self.vals[v.buf][v.r0 * c..(v.r0 + v.rows) * c]
    }
    /// Seed a view's gradient: `grad[i] = f(i, value[i])` (a view without gradient is left).
    pub fn seed(&mut self, v: View, f: impl Fn(usize, f32) -> f32) {
        let c = self.g.bufs[v.buf].cols;
        let range = v.r0 * c..(v.r0 + v.rows) * c;
        let g = &mut self.grads[v.buf];
        if g.is_empty() {
            return;
        }
        for (i, (gv, x)) in g[range.clone()]
            .iter_mut()
            .zip(&self.vals[v.buf][range])
            .enumerate()
        {
            *gv = f(i, *x);
        }
    }
    /// The gradient of a parameter buffer.
    pub fn grad(&self, b: BufId) -> &[f32] {
        &self.grads[b]
    }

    pub(super) fn cols(&self, v: View) -> usize {
        self.g.bufs[v.buf].cols
    }
    fn has_grad(&self, v: View) -> bool {
        self.g.bufs[v.buf].grad
    }
    fn ptr(&self, v: View) -> *mut f32 {
        // SAFETY: views lie inside their buffer (the builder sizes every view).
        unsafe { self.vp[v.buf].add(v.r0 * self.cols(v)) }
    }
    fn gptr(&self, v: View) -> *mut f32 {
        unsafe { self.gp[v.buf].add(v.r0 * self.cols(v)) }
    }
    pub(super) fn rd(&self, v: View) -> &[f32] {
        unsafe { std::slice::from_raw_parts(self.ptr(v), v.rows * self.cols(v)) }
    }
    #[allow(clippy::mut_from_ref)]
    pub(super) fn wr(&self, v: View) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr(v), v.rows * self.cols(v)) }
    }
    #[allow(clippy::mut_from_ref)]
    pub(super) fn gr(&self, v: View) -> Option<&mut [f32]> {
        self.has_grad(v)
            .then(|| unsafe { std::slice::from_raw_parts_mut(self.gptr(v), v.rows * self.cols(v)) })
    }
    fn whole(&self, b: BufId) -> View {
        self.g.all(b)
    }

    /// `Wᵀ` `(cols, rows)` of the parameter buffer `w`, transposed on the pass's first call.
    fn transposed(&self, w: BufId) -> *const f32 {
        // SAFETY: only the thread running this worker's pass uses the cache, one call at a
        // time; a copy is written once per pass and the outer list never grows, so a pointer
        // returned earlier in the pass stays valid.
        let (fresh, t) = unsafe { &mut (&mut *self.wt.get())[w] };
        if !*fresh {
            let (rows, cols) = (self.g.bufs[w].rows, self.g.bufs[w].cols);
            t.resize(rows * cols, 0.0);
            for (j, row) in self.rd(self.whole(w)).chunks_exact(cols).enumerate() {
                for (p, v) in row.iter().enumerate() {
                    t[p * rows + j] = *v;
                }
            }
            *fresh = true;
        }
        t.as_ptr()
    }

    /// Zero every gradient.
    pub fn zero_grads(&mut self) {
        for g in &mut self.grads {
            g.fill(0.0);
        }
    }

    /// Run every op forward (with AVX2 and FMA code where the CPU has them).
    pub fn forward(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: the CPU supports the features (checked at run time).
            unsafe { self.forward_avx2() };
            return;
        }
        self.forward_all();
    }

    /// Run every op backward (gradients must have been zeroed and seeded).
    pub fn backward(&mut self) {
        // The parameters may have changed since the last pass: transpose them anew.
        for e in self.wt.get_mut() {
            e.0 = false;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: as in `forward`.
            unsafe { self.backward_avx2() };
            return;
        }
        self.backward_all();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(&mut self) {
        self.forward_all();
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn backward_avx2(&mut self) {
        self.backward_all();
    }

    #[inline(always)]
    fn forward_all(&mut self) {
        for i in 0..self.g.ops.len() {
            // SAFETY: ops are not modified while running; `op` borrows `self.g` immutably while
            // the kernels write through raw pointers into disjoint rows.
            let op = unsafe { &*(&self.g.ops[i] as *const Op) };
            self.fwd(op);
        }
    }

    #[inline(always)]
    fn backward_all(&mut self) {
        for i in (0..self.g.ops.len()).rev() {
            let op = unsafe { &*(&self.g.ops[i] as *const Op) };
            self.bwd(op);
        }
    }

    #[inline(always)]
    fn fwd(&self, op: &Op) {
        match op {
            Op::Dense {
                xs,
                w,
                b,
                add,
                act,
                out,
                scratch,
                ..
            } => {
                let o = self.cols(*out);
                let rows = out.rows;
                let wp = self.vp[*w];
                let dst = self.ptr(*out);
                let mut acc = false;
                if let Some(a) = add {
                    self.wr(*out).copy_from_slice(self.rd(*a));
                    acc = true;
                }
                for (x, off) in xs {
                    let k = self.cols(*x);
                    unsafe {
                        mm(
                            rows,
                            o,
                            k,
                            dst,
                            o,
                            acc,
                            self.ptr(*x),
                            k,
                            1,
                            wp.add(off * o),
                            o,
                            1,
                        )
                    };
                    acc = true;
                }
                let y = self.wr(*out);
                if !acc {
                    y.fill(0.0);
                }
                let bias = b.map(|b| self.rd(self.whole(b)));
                match act {
                    Act::Identity => epilogue(y, o, bias, |v| v),
                    Act::Relu => epilogue(y, o, bias, |v| v.max(0.0)),
                    Act::Tanh => epilogue(y, o, bias, math::tanh),
                    Act::Elu => {
                        epilogue(y, o, bias, |v| if v > 0.0 { v } else { math::exp(v) - 1.0 })
                    }
                    Act::Silu => {
                        // The pre-activation is kept in `scratch` for backward.
                        epilogue(y, o, bias, |v| v);
                        self.wr(*scratch).copy_from_slice(y);
                        epilogue(y, o, None, |v| v * math::sigmoid(v));
                    }
                }
            }
            Op::DenseGrad { .. } | Op::GruGrad { .. } => {}
            Op::Gemm { a, b, tb, out } => {
                let bb = &self.g.bufs[*b];
                let (k, n) = if *tb {
                    (bb.cols, bb.rows)
                } else {
                    (bb.rows, bb.cols)
                };
                let (rs, cs) = if *tb { (1, bb.cols) } else { (bb.cols, 1) };
                unsafe {
                    mm(
                        a.rows,
                        n,
                        k,
                        self.ptr(*out),
                        n,
                        false,
                        self.ptr(*a),
                        k,
                        1,
                        self.vp[*b],
                        rs,
                        cs,
                    )
                };
            }
            Op::Gru {
                xs,
                h,
                wi,
                wh,
                bi,
                bh,
                out,
                gates,
                ghn,
                gi,
                gh,
                ..
            } => {
                let hd = self.cols(*out);
                let rows = out.rows;
                let h3 = 3 * hd;
                let (giv, ghv) = (*gi, *gh);
                let mut acc = false;
                for (x, off) in xs {
                    let k = self.cols(*x);
                    unsafe {
                        mm(
                            rows,
                            h3,
                            k,
                            self.ptr(giv),
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
                    self.wr(giv).fill(0.0);
                }
                unsafe {
                    mm(
                        rows,
                        h3,
                        hd,
                        self.ptr(ghv),
                        h3,
                        false,
                        self.ptr(*h),
                        hd,
                        1,
                        self.vp[*wh],
                        h3,
                        1,
                    )
                };
                let (giw, ghw) = (self.wr(giv), self.wr(ghv));
                let (bis, bhs) = (self.rd(self.whole(*bi)), self.rd(self.whole(*bh)));
                let (gv, nv) = (self.wr(*gates), self.wr(*ghn));
                let hv = self.rd(*h);
                let y = self.wr(*out);
                for r in 0..rows {
                    let o3 = r * h3;
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
                        nv[r * hd + j] = ghn_v;
                        y[r * hd + j] = nn + zz * (hv[r * hd + j] - nn);
                    }
                }
            }
            Op::Rnn { .. } => self.rnn_fwd(op),
            Op::ClampT { x, lo, hi, out } => self.clamp_fwd(*x, *lo, *hi, *out),
            Op::Unary { op, x, out } => {
                let (xs, ys) = (self.rd(*x), self.wr(*out));
                unary_fwd(*op, xs, ys);
            }
            Op::Binary { op, a, b, out } => {
                let c = self.cols(*out);
                let (av, bv, y) = (self.rd(a.v), self.rd(b.v), self.wr(*out));
                if a.bc == Bc::Full && b.bc == Bc::Full {
                    // One loop per op (the match outside the loop: it vectorises).
                    macro_rules! zip {
                        ($f:expr) => {
                            for ((y, x1), x2) in y.iter_mut().zip(av).zip(bv) {
                                *y = $f(*x1, *x2);
                            }
                        };
                    }
                    match op {
                        Bin::Add => zip!(|x: f32, y: f32| x + y),
                        Bin::Sub => zip!(|x: f32, y: f32| x - y),
                        Bin::Mul => zip!(|x: f32, y: f32| x * y),
                        Bin::Div => zip!(|x: f32, y: f32| x / y),
                    }
                } else {
                    for r in 0..out.rows {
                        for j in 0..c {
                            y[r * c + j] = bin(
                                *op,
                                av[bc_index(a.bc, r, j, c)],
                                bv[bc_index(b.bc, r, j, c)],
                            );
                        }
                    }
                }
            }
            Op::Copy { x, out } => {
                let c = self.cols(*out);
                let (xv, y) = (self.rd(x.v), self.wr(*out));
                if x.bc == Bc::Full {
                    y.copy_from_slice(xv);
                } else {
                    for r in 0..out.rows {
                        for j in 0..c {
                            y[r * c + j] = xv[bc_index(x.bc, r, j, c)];
                        }
                    }
                }
            }
            Op::Concat { parts, out } => {
                let c = self.cols(*out);
                let y = self.wr(*out);
                let mut c0 = 0;
                for p in parts {
                    let pc = self.cols(*p);
                    let xv = self.rd(*p);
                    for r in 0..out.rows {
                        y[r * c + c0..r * c + c0 + pc].copy_from_slice(&xv[r * pc..(r + 1) * pc]);
                    }
                    c0 += pc;
                }
            }
            Op::Slice { x, c0, out } => {
                let (xc, oc) = (self.cols(*x), self.cols(*out));
                let (xv, y) = (self.rd(*x), self.wr(*out));
                for r in 0..out.rows {
                    y[r * oc..(r + 1) * oc].copy_from_slice(&xv[r * xc + c0..r * xc + c0 + oc]);
                }
            }
            Op::RowSum { x, out } => {
                let c = self.cols(*x);
                let (xv, y) = (self.rd(*x), self.wr(*out));
                row_sums(y, c, [xv], |[x]| x);
            }
            Op::Tile { x, out } => {
                let n = x.rows * self.cols(*x);
                let (xv, y) = (self.rd(*x), self.wr(*out));
                for chunk in y.chunks_exact_mut(n) {
                    chunk.copy_from_slice(xv);
                }
            }
            Op::Split {
                h,
                link,
                loc,
                scale,
            } => {
                let d = self.cols(*loc);
                let (hv, l, s) = (self.rd(*h), self.wr(*loc), self.wr(*scale));
                // The halves first, then the link over the whole scale (one loop over all
                // rows, which vectorises even for a head of a few columns).
                for ((row, lr), sr) in hv
                    .chunks_exact(2 * d)
                    .zip(l.chunks_exact_mut(d))
                    .zip(s.chunks_exact_mut(d))
                {
                    lr.copy_from_slice(&row[..d]);
                    sr.copy_from_slice(&row[d..]);
                }
                link_fwd(*link, s);
            }
            Op::NormalSample {
                loc,
                scale,
                eps,
                out,
            } => {
                let (l, s, e, y) = (self.rd(*loc), self.rd(*scale), self.rd(*eps), self.wr(*out));
                for i in 0..y.len() {
                    y[i] = l[i] + s[i] * e[i];
                }
            }
            Op::TanhSample {
                loc,
                scale,
                eps,
                u,
                y,
            } => {
                let (l, s, e) = (self.rd(*loc), self.rd(*scale), self.rd(*eps));
                let (uv, yv) = (self.wr(*u), self.wr(*y));
                for i in 0..uv.len() {
                    uv[i] = l[i] + s[i] * e[i];
                    yv[i] = math::tanh(uv[i]);
                }
            }
            Op::NormalLogProb { x, loc, scale, out } => {
                let c = self.cols(*x);
                let (xv, l, s, y) = (self.rd(*x), self.rd(*loc), self.rd(*scale), self.wr(*out));
                row_sums(y, c, [xv, l, s], |[x, l, s]| {
                    let z = (x - l) / s;
                    -0.5 * z * z - math::ln(s) - HALF_LN_2PI
                });
            }
            Op::TanhLogProb { u, loc, scale, out } => {
                let c = self.cols(*u);
                let (uv, l, s, y) = (self.rd(*u), self.rd(*loc), self.rd(*scale), self.wr(*out));
                row_sums(y, c, [uv, l, s], |[u, l, s]| {
                    let z = (u - l) / s;
                    -0.5 * z * z - math::ln(s) - HALF_LN_2PI - math::log_dtanh(u)
                });
            }
            Op::NormalKl {
                ql,
                qs,
                pl,
                ps,
                out,
                ..
            } => {
                let c = self.cols(*ql);
                let (a, b, cc, d) = (self.rd(*ql), self.rd(*qs), self.rd(*pl), self.rd(*ps));
                let y = self.wr(*out);
                row_sums(y, c, [a, b, cc, d], |[a, b, c, d]| kl_elem(a, b, c, d));
            }
            Op::NormalEntropy { scale, out } => {
                let c = self.cols(*scale);
                let (s, y) = (self.rd(*scale), self.wr(*out));
                let k = c as f32 * (0.5 + HALF_LN_2PI);
                row_sums(y, c, [s], |[s]| math::ln(s));
                for v in y.iter_mut() {
                    *v += k;
                }
            }
            Op::CatSample { .. }
            | Op::CatLogProb { .. }
            | Op::CatKl { .. }
            | Op::EnumWeight { .. }
            | Op::Fold { .. }
            | Op::CatEntropy { .. }
            | Op::EnumAdd { .. } => super::discrete::fwd(self, op),
            Op::BernoulliLogProb { x, logits, out } => {
                let c = self.cols(*x);
                let (xv, l, y) = (self.rd(*x), self.rd(*logits), self.wr(*out));
                row_sums(y, c, [xv, l], |[x, l]| x * l - math::softplus(l));
            }
            Op::Fam(f) => super::families::fwd(self, f),
            Op::Hmm(h) => super::hmm::fwd(self, h),
            Op::QChain(h) => super::hmm::qchain_fwd(self, h),
        }
    }

    /// `dW[rowsᵢ] += xᵢᵀ·dpre`, `db += colsum(dpre)`.
    #[inline(always)]
    fn dense_wgrad(&self, xs: &[DenseIn], dpre: View, w: BufId, b: Option<BufId>) {
        let o = self.cols(dpre);
        let rows = dpre.rows;
        let dp = self.rd(dpre);
        if let Some(db) = b.and_then(|b| self.gr(self.whole(b))) {
            for row in dp.chunks_exact(o) {
                for (d, v) in db.iter_mut().zip(row) {
                    *d += v;
                }
            }
        }
        if !self.g.bufs[w].grad {
            return;
        }
        for (x, off) in xs {
            let k = self.cols(*x);
            unsafe {
                mm(
                    k,
                    o,
                    rows,
                    self.gp[w].add(off * o),
                    o,
                    true,
                    self.ptr(*x),
                    1,
                    k,
                    self.ptr(dpre),
                    o,
                    1,
                )
            };
        }
    }

    /// A GRU's parameter gradients from the gates' gradients `dgi`, `dgh`.
    #[inline(always)]
    fn gru_wgrad(&self, xs: &[DenseIn], h: View, dgi: View, dgh: View, p: [BufId; 4]) {
        let [wi, wh, bi, bh] = p;
        let h3 = self.cols(dgi);
        let hd = h3 / 3;
        let rows = dgi.rows;
        for (b, d) in [(bi, dgi), (bh, dgh)] {
            if let Some(db) = self.gr(self.whole(b)) {
                for row in self.rd(d).chunks_exact(h3) {
                    for (a, v) in db.iter_mut().zip(row) {
                        *a += v;
                    }
                }
            }
        }
        if self.g.bufs[wi].grad {
            for (x, off) in xs {
                let k = self.cols(*x);
                unsafe {
                    mm(
                        k,
                        h3,
                        rows,
                        self.gp[wi].add(off * h3),
                        h3,
                        true,
                        self.ptr(*x),
                        1,
                        k,
                        self.ptr(dgi),
                        h3,
                        1,
                    )
                };
            }
        }
        if self.g.bufs[wh].grad {
            unsafe {
                mm(
                    hd,
                    h3,
                    rows,
                    self.gp[wh],
                    h3,
                    true,
                    self.ptr(h),
                    1,
                    hd,
                    self.ptr(dgh),
                    h3,
                    1,
                )
            };
        }
    }

    /// [`Op::NormalKl`]'s backward: the upstream gradient `g` of each row, times `gq` on q's
    /// side and `gp` on p's, reaches the elements `keep` passes.
    #[inline(always)]
    fn normal_kl_bwd(
        &self,
        [ql, qs, pl, ps]: [View; 4],
        g: &[f32],
        (gq, gp): (f32, f32),
        keep: impl Fn([f32; 4]) -> bool,
    ) {
        let c = self.cols(ql);
        let ops = [self.rd(ql), self.rd(qs), self.rd(pl), self.rd(ps)];
        let e = |v: [f32; 4], g: f32| if keep(v) { g } else { 0.0 };
        if let Some(x) = self.gr(ql) {
            each(x, c, g, ops, |v, g| {
                gq * e(v, g) * (v[0] - v[2]) / (v[3] * v[3])
            });
        }
        if let Some(x) = self.gr(qs) {
            each(x, c, g, ops, |v, g| {
                let u = v[1] / v[3];
                gq * e(v, g) * (u - 1.0 / u) / v[3]
            });
        }
        if let Some(x) = self.gr(pl) {
            each(x, c, g, ops, |v, g| {
                -gp * e(v, g) * (v[0] - v[2]) / (v[3] * v[3])
            });
        }
        if let Some(x) = self.gr(ps) {
            each(x, c, g, ops, |v, g| {
                let (u, dd) = (v[1] / v[3], (v[0] - v[2]) / v[3]);
                gp * e(v, g) * (1.0 - u * u - dd * dd) / v[3]
            });
        }
    }

    #[inline(always)]
    fn bwd(&self, op: &Op) {
        match op {
            Op::Dense {
                xs,
                w,
                b,
                add,
                act,
                out,
                scratch,
                wgrad,
            } => {
                let Some(g) = self.gr(*out) else { return };
                let o = self.cols(*out);
                let rows = out.rows;
                let sv = *scratch;
                let dp = self.wr(sv);
                let y = self.rd(*out);
                match act {
                    Act::Identity => dp.copy_from_slice(g),
                    Act::Relu => {
                        for i in 0..rows * o {
                            dp[i] = if y[i] > 0.0 { g[i] } else { 0.0 };
                        }
                    }
                    Act::Tanh => {
                        for i in 0..rows * o {
                            dp[i] = g[i] * (1.0 - y[i] * y[i]);
                        }
                    }
                    Act::Elu => {
                        for i in 0..rows * o {
                            dp[i] = g[i] * if y[i] > 0.0 { 1.0 } else { y[i] + 1.0 };
                        }
                    }
                    Act::Silu => {
                        // `dp` holds the pre-activation (forward left it there).
                        for i in 0..rows * o {
                            let s = math::sigmoid(dp[i]);
                            dp[i] = g[i] * s * (1.0 + dp[i] * (1.0 - s));
                        }
                    }
                }
                if *wgrad {
                    self.dense_wgrad(xs, sv, *w, *b);
                }
                let dpp = self.ptr(sv);
                for (x, off) in xs {
                    let k = self.cols(*x);
                    if self.has_grad(*x) {
                        // A small (per-step) product reads this pass's copy of Wᵀ, not a
                        // transpose made on every call.
                        let (wb, rs, cs) = if rows * k * o <= SMALL {
                            let wt = self.transposed(*w);
                            (unsafe { wt.add(*off) }, self.g.bufs[*w].rows, 1)
                        } else {
                            (unsafe { self.vp[*w].add(off * o) } as *const f32, 1, o)
                        };
                        unsafe { mm(rows, k, o, self.gptr(*x), k, true, dpp, o, 1, wb, rs, cs) };
                    }
                }
                if let Some(a) = add {
                    if let Some(ga) = self.gr(*a) {
                        for (d, v) in ga.iter_mut().zip(dp.iter()) {
                            *d += v;
                        }
                    }
                }
            }
            Op::DenseGrad { xs, dpre, w, b } => self.dense_wgrad(xs, *dpre, *w, *b),
            Op::GruGrad {
                xs,
                h,
                dgi,
                dgh,
                wi,
                wh,
                bi,
                bh,
            } => self.gru_wgrad(xs, *h, *dgi, *dgh, [*wi, *wh, *bi, *bh]),
            Op::Gemm { a, b, tb, out } => {
                let Some(_) = self.gr(*out) else { return };
                let bb = &self.g.bufs[*b];
                let (k, n) = if *tb {
                    (bb.cols, bb.rows)
                } else {
                    (bb.rows, bb.cols)
                };
                let gp = self.gptr(*out);
                if self.has_grad(*a) {
                    // da (R×k) += g (R×n) · opᵀ, op = B (k×n) or Bᵀ.
                    let (rs, cs) = if *tb { (bb.cols, 1) } else { (1, bb.cols) };
                    unsafe {
                        mm(
                            a.rows,
                            k,
                            n,
                            self.gptr(*a),
                            k,
                            true,
                            gp,
                            n,
                            1,
                            self.vp[*b],
                            rs,
                            cs,
                        )
                    };
                }
                if bb.grad {
                    if *tb {
                        // dB (n×k) += gᵀ · a
                        unsafe {
                            mm(
                                n,
                                k,
                                a.rows,
                                self.gp[*b],
                                k,
                                true,
                                gp,
                                1,
                                n,
                                self.ptr(*a),
                                k,
                                1,
                            )
                        };
                    } else {
                        // dB (k×n) += aᵀ · g
                        unsafe {
                            mm(
                                k,
                                n,
                                a.rows,
                                self.gp[*b],
                                n,
                                true,
                                self.ptr(*a),
                                1,
                                k,
                                gp,
                                n,
                                1,
                            )
                        };
                    }
                }
            }
            Op::Gru {
                xs,
                h,
                wi,
                wh,
                bi,
                bh,
                out,
                gates,
                ghn,
                gi,
                gh,
                wgrad,
            } => {
                let Some(g) = self.gr(*out) else { return };
                let hd = self.cols(*out);
                let rows = out.rows;
                let h3 = 3 * hd;
                let (giv, ghv) = (*gi, *gh);
                let (dgi, dgh) = (self.wr(giv), self.wr(ghv));
                let (gv, nv) = (self.rd(*gates), self.rd(*ghn));
                let hv = self.rd(*h);
                let mut dh = self.gr(*h);
                for r in 0..rows {
                    let o3 = r * h3;
                    for j in 0..hd {
                        let (rr, zz, nn) = (gv[o3 + j], gv[o3 + hd + j], gv[o3 + 2 * hd + j]);
                        let gg = g[r * hd + j];
                        let hp = hv[r * hd + j];
                        let dz = gg * (hp - nn);
                        let dn = gg * (1.0 - zz);
                        let dan = dn * (1.0 - nn * nn);
                        let dar = dan * nv[r * hd + j] * rr * (1.0 - rr);
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
                if *wgrad {
                    self.gru_wgrad(xs, *h, giv, ghv, [*wi, *wh, *bi, *bh]);
                }
                let (pgi, pgh) = (self.ptr(giv), self.ptr(ghv));
                for (x, off) in xs {
                    let k = self.cols(*x);
                    if self.has_grad(*x) {
                        unsafe {
                            mm(
                                rows,
                                k,
                                h3,
                                self.gptr(*x),
                                k,
                                true,
                                pgi,
                                h3,
                                1,
                                self.vp[*wi].add(off * h3),
                                1,
                                h3,
                            )
                        };
                    }
                }
                if self.has_grad(*h) {
                    unsafe {
                        mm(
                            rows,
                            hd,
                            h3,
                            self.gptr(*h),
                            hd,
                            true,
                            pgh,
                            h3,
                            1,
                            self.vp[*wh],
                            1,
                            h3,
                        )
                    };
                }
            }
            Op::Rnn { .. } => self.rnn_bwd(op),
            Op::ClampT { x, lo, hi, out } => self.clamp_bwd(*x, *lo, *hi, *out),
            Op::Unary { op, x, out } => {
                let Some(g) = self.gr(*out) else { return };
                let Some(gx) = self.gr(*x) else { return };
                unary_bwd(*op, self.rd(*x), self.rd(*out), g, gx);
            }
            Op::Binary { op, a, b, out } => {
                let Some(g) = self.gr(*out) else { return };
                let c = self.cols(*out);
                let (av, bv) = (self.rd(a.v), self.rd(b.v));
                let (mut ga, mut gb) = (self.gr(a.v), self.gr(b.v));
                if a.bc == Bc::Full && b.bc == Bc::Full {
                    bin_bwd_full(*op, g, av, bv, ga, gb);
                    return;
                }
                for r in 0..out.rows {
                    for j in 0..c {
                        let (ia, ib) = (bc_index(a.bc, r, j, c), bc_index(b.bc, r, j, c));
                        let gg = g[r * c + j];
                        let (x, y) = (av[ia], bv[ib]);
                        let (da, db) = match op {
                            Bin::Add => (gg, gg),
                            Bin::Sub => (gg, -gg),
                            Bin::Mul => (gg * y, gg * x),
                            Bin::Div => (gg / y, -gg * x / (y * y)),
                        };
                        if let Some(ga) = ga.as_deref_mut() {
                            ga[ia] += da;
                        }
                        if let Some(gb) = gb.as_deref_mut() {
                            gb[ib] += db;
                        }
                    }
                }
            }
            Op::Copy { x, out } => {
                let Some(g) = self.gr(*out) else { return };
                let Some(gx) = self.gr(x.v) else { return };
                let c = self.cols(*out);
                for r in 0..out.rows {
                    for j in 0..c {
                        gx[bc_index(x.bc, r, j, c)] += g[r * c + j];
                    }
                }
            }
            Op::Concat { parts, out } => {
                let Some(g) = self.gr(*out) else { return };
                let c = self.cols(*out);
                let mut c0 = 0;
                for p in parts {
                    let pc = self.cols(*p);
                    if let Some(gx) = self.gr(*p) {
                        for r in 0..out.rows {
                            for j in 0..pc {
                                gx[r * pc + j] += g[r * c + c0 + j];
                            }
                        }
                    }
                    c0 += pc;
                }
            }
            Op::Slice { x, c0, out } => {
                let Some(g) = self.gr(*out) else { return };
                let Some(gx) = self.gr(*x) else { return };
                let (xc, oc) = (self.cols(*x), self.cols(*out));
                for r in 0..out.rows {
                    for j in 0..oc {
                        gx[r * xc + c0 + j] += g[r * oc + j];
                    }
                }
            }
            Op::RowSum { x, out } => {
                let Some(g) = self.gr(*out) else { return };
                let Some(gx) = self.gr(*x) else { return };
                let c = self.cols(*x);
                for r in 0..out.rows {
                    for v in &mut gx[r * c..(r + 1) * c] {
                        *v += g[r];
                    }
                }
            }
            Op::Tile { x, out } => {
                let Some(g) = self.gr(*out) else { return };
                let Some(gx) = self.gr(*x) else { return };
                let n = gx.len();
                for chunk in g.chunks_exact(n) {
                    for (a, v) in gx.iter_mut().zip(chunk) {
                        *a += v;
                    }
                }
            }
            Op::Split {
                h,
                link,
                loc,
                scale,
            } => {
                let Some(gh) = self.gr(*h) else { return };
                let d = self.cols(*loc);
                let s = self.rd(*scale);
                if let Some(gl) = self.gr(*loc) {
                    for (hr, lr) in gh.chunks_exact_mut(2 * d).zip(gl.chunks_exact(d)) {
                        for (a, v) in hr[..d].iter_mut().zip(lr) {
                            *a += v;
                        }
                    }
                }
                if let Some(gs) = self.gr(*scale) {
                    link_bwd(*link, d, gs, s, gh);
                }
            }
            Op::NormalSample {
                loc,
                scale,
                eps,
                out,
            } => {
                let Some(g) = self.gr(*out) else { return };
                let e = self.rd(*eps);
                if let Some(gl) = self.gr(*loc) {
                    for (a, v) in gl.iter_mut().zip(g.iter()) {
                        *a += v;
                    }
                }
                if let Some(gs) = self.gr(*scale) {
                    for ((a, gv), ev) in gs.iter_mut().zip(g.iter()).zip(e) {
                        *a += gv * ev;
                    }
                }
            }
            Op::TanhSample {
                loc,
                scale,
                eps,
                u,
                y,
            } => {
                let (gu, gy) = (self.gr(*u), self.gr(*y));
                if gu.is_none() && gy.is_none() {
                    return;
                }
                let (e, yv) = (self.rd(*eps), self.rd(*y));
                let (mut gl, mut gs) = (self.gr(*loc), self.gr(*scale));
                for i in 0..e.len() {
                    let mut du = gu.as_deref().map_or(0.0, |g| g[i]);
                    if let Some(gy) = gy.as_deref() {
                        du += gy[i] * (1.0 - yv[i] * yv[i]);
                    }
                    if let Some(gl) = gl.as_deref_mut() {
                        gl[i] += du;
                    }
                    if let Some(gs) = gs.as_deref_mut() {
                        gs[i] += du * e[i];
                    }
                }
            }
            Op::NormalLogProb { x, loc, scale, out } => {
                let Some(g) = self.gr(*out) else { return };
                let c = self.cols(*x);
                let ops = [self.rd(*x), self.rd(*loc), self.rd(*scale)];
                let dz = |[x, l, s]: [f32; 3], g: f32| g * (x - l) / (s * s);
                if let Some(gx) = self.gr(*x) {
                    each(gx, c, g, ops, |v, g| -dz(v, g));
                }
                if let Some(gl) = self.gr(*loc) {
                    each(gl, c, g, ops, dz);
                }
                if let Some(gs) = self.gr(*scale) {
                    each(gs, c, g, ops, |[x, l, s], g| {
                        let z = (x - l) / s;
                        g * (z * z - 1.0) / s
                    });
                }
            }
            Op::TanhLogProb { u, loc, scale, out } => {
                let Some(g) = self.gr(*out) else { return };
                let c = self.cols(*u);
                let ops = [self.rd(*u), self.rd(*loc), self.rd(*scale)];
                let dz = |[u, l, s]: [f32; 3], g: f32| g * (u - l) / (s * s);
                if let Some(gu) = self.gr(*u) {
                    each(gu, c, g, ops, |v, g| -dz(v, g) + g * 2.0 * math::tanh(v[0]));
                }
                if let Some(gl) = self.gr(*loc) {
                    each(gl, c, g, ops, dz);
                }
                if let Some(gs) = self.gr(*scale) {
                    each(gs, c, g, ops, |[u, l, s], g| {
                        let z = (u - l) / s;
                        g * (z * z - 1.0) / s
                    });
                }
            }
            Op::NormalKl {
                ql,
                qs,
                pl,
                ps,
                out,
                gq,
                gp,
                floor,
            } => {
                let Some(g) = self.gr(*out) else { return };
                let v = [*ql, *qs, *pl, *ps];
                match *floor {
                    // Free nats per element: no gradient under the floor.
                    Some(fl) => self
                        .normal_kl_bwd(v, g, (*gq, *gp), |[a, b, c, d]| kl_elem(a, b, c, d) > fl),
                    None => self.normal_kl_bwd(v, g, (*gq, *gp), |_| true),
                }
            }
            Op::NormalEntropy { scale, out } => {
                let Some(g) = self.gr(*out) else { return };
                let Some(gs) = self.gr(*scale) else { return };
                let c = self.cols(*scale);
                let s = self.rd(*scale);
                for r in 0..out.rows {
                    for i in r * c..(r + 1) * c {
                        gs[i] += g[r] / s[i];
                    }
                }
            }
            Op::CatSample { .. }
            | Op::CatLogProb { .. }
            | Op::CatKl { .. }
            | Op::EnumWeight { .. }
            | Op::Fold { .. }
            | Op::CatEntropy { .. }
            | Op::EnumAdd { .. } => super::discrete::bwd(self, op),
            Op::BernoulliLogProb { x, logits, out } => {
                let Some(g) = self.gr(*out) else { return };
                let c = self.cols(*x);
                let ops = [self.rd(*x), self.rd(*logits)];
                if let Some(gl) = self.gr(*logits) {
                    each(gl, c, g, ops, |[x, l], g| g * (x - math::sigmoid(l)));
                }
                if let Some(gx) = self.gr(*x) {
                    each(gx, c, g, ops, |[_, l], g| g * l);
                }
            }
            Op::Fam(f) => super::families::bwd(self, f),
            Op::Hmm(h) => super::hmm::bwd(self, h),
            Op::QChain(h) => super::hmm::qchain_bwd(self, h),
        }
    }
}

/// `acc[r, j] += f(x₀[r, j], …, g[r])` over a `(rows, c)` gradient with the upstream
/// per-row gradient `g` (one pass per target, no branches or bounds checks in the loop, so it
/// vectorises).
#[inline(always)]
pub(super) fn each<const N: usize>(
    acc: &mut [f32],
    c: usize,
    g: &[f32],
    xs: [&[f32]; N],
    f: impl Fn([f32; N], f32) -> f32,
) {
    let rows = acc.len() / c.max(1);
    assert!(g.len() >= rows, "each: upstream gradient shorter than rows");
    for x in &xs {
        assert!(
            x.len() >= acc.len(),
            "each: operand shorter than the gradient"
        );
    }
    for (r, row) in acc.chunks_exact_mut(c).enumerate() {
        let base = r * c;
        let gr = g[r];
        for (j, a) in row.iter_mut().enumerate() {
            // SAFETY: base + j < acc.len() ≤ every operand's length (asserted above).
            *a += f(
                std::array::from_fn(|n| unsafe { *xs[n].get_unchecked(base + j) }),
                gr,
            );
        }
    }
}

/// `y[r] = Σ_j f(x₀[r, j], x₁[r, j], …)` over rows of `c` columns, eight partial sums per
/// row so the loop vectorises (the order of the additions differs from a left fold).
#[inline(always)]
pub(super) fn row_sums<const N: usize>(
    y: &mut [f32],
    c: usize,
    xs: [&[f32]; N],
    f: impl Fn([f32; N]) -> f32,
) {
    let rows = y.len();
    for x in &xs {
        assert!(
            x.len() >= rows * c,
            "row_sums: operand shorter than rows × cols"
        );
    }
    for (r, yr) in y.iter_mut().enumerate() {
        let base = r * c;
        let mut acc = [0.0f32; 8];
        let full = c / 8 * 8;
        let mut j = 0;
        while j < full {
            for (l, a) in acc.iter_mut().enumerate() {
                // SAFETY: base + j + l < rows·c ≤ len of every operand (asserted above).
                *a += f(std::array::from_fn(|n| unsafe {
                    *xs[n].get_unchecked(base + j + l)
                }));
            }
            j += 8;
        }
        let mut tail = 0.0;
        for jj in full..c {
            tail += f(std::array::from_fn(|n| unsafe {
                *xs[n].get_unchecked(base + jj)
            }));
        }
        *yr = acc.iter().sum::<f32>() + tail;
    }
}

#[inline(always)]
fn kl_elem(ql: f32, qs: f32, pl: f32, ps: f32) -> f32 {
    let u = qs / ps;
    let d = (ql - pl) / ps;
    0.5 * (u * u + d * d) - math::ln(u) - 0.5
}

#[inline(always)]
fn bin(op: Bin, x: f32, y: f32) -> f32 {
    match op {
        Bin::Add => x + y,
        Bin::Sub => x - y,
        Bin::Mul => x * y,
        Bin::Div => x / y,
    }
}

/// [`Op::Binary`]'s backward on same-shaped operands: the generic loop's arithmetic, one
/// loop per operand and op so that it vectorises.
#[inline(always)]
fn bin_bwd_full(
    op: Bin,
    g: &[f32],
    av: &[f32],
    bv: &[f32],
    ga: Option<&mut [f32]>,
    gb: Option<&mut [f32]>,
) {
    let n = g.len();
    let (av, bv) = (&av[..n], &bv[..n]);
    macro_rules! acc {
        ($d:expr, $f:expr) => {
            for i in 0..n {
                $d[i] += $f(g[i], av[i], bv[i]);
            }
        };
    }
    if let Some(ga) = ga {
        let ga = &mut ga[..n];
        match op {
            Bin::Add | Bin::Sub => acc!(ga, |gg: f32, _x: f32, _y: f32| gg),
            Bin::Mul => acc!(ga, |gg: f32, _x: f32, y: f32| gg * y),
            Bin::Div => acc!(ga, |gg: f32, _x: f32, y: f32| gg / y),
        }
    }
    if let Some(gb) = gb {
        let gb = &mut gb[..n];
        match op {
            Bin::Add => acc!(gb, |gg: f32, _x: f32, _y: f32| gg),
            Bin::Sub => acc!(gb, |gg: f32, _x: f32, _y: f32| -gg),
            Bin::Mul => acc!(gb, |gg: f32, x: f32, _y: f32| gg * x),
            Bin::Div => acc!(gb, |gg: f32, x: f32, y: f32| -gg * x / (y * y)),
        }
    }
}

/// `s ← link(s)`: a head's scale from its raw second half, in AVX-512 loops where the CPU has
/// them (as [`unary_fwd`]).
#[inline(always)]
fn link_fwd(link: Link, s: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::small512::available() {
        // SAFETY: the CPU has AVX-512F (checked at run time).
        unsafe { link_fwd_512(link, s) };
        return;
    }
    link_fwd_any(link, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn link_fwd_512(link: Link, s: &mut [f32]) {
    link_fwd_any(link, s);
}

#[inline(always)]
fn link_fwd_any(link: Link, s: &mut [f32]) {
    match link {
        Link::Softplus(min) => {
            for sv in s.iter_mut() {
                *sv = math::softplus(*sv) + min;
            }
        }
        Link::Exp(min) => {
            for sv in s.iter_mut() {
                *sv = math::exp(*sv) + min;
            }
        }
    }
}

/// Split's backward through the link: `gh[r, d + j] += gs[r, j] · link′` (from the scale
/// `s[r, j]`), in AVX-512 loops where the CPU has them (as [`unary_fwd`]).
#[inline(always)]
fn link_bwd(link: Link, d: usize, gs: &[f32], s: &[f32], gh: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::small512::available() {
        // SAFETY: the CPU has AVX-512F (checked at run time).
        unsafe { link_bwd_512(link, d, gs, s, gh) };
        return;
    }
    link_bwd_any(link, d, gs, s, gh);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn link_bwd_512(link: Link, d: usize, gs: &[f32], s: &[f32], gh: &mut [f32]) {
    link_bwd_any(link, d, gs, s, gh);
}

#[inline(always)]
fn link_bwd_any(link: Link, d: usize, gs: &[f32], s: &[f32], gh: &mut [f32]) {
    match link {
        Link::Softplus(min) => {
            link_bwd_with(d, gs, s, gh, |g, sv| g * (1.0 - math::exp(-(sv - min))))
        }
        Link::Exp(min) => link_bwd_with(d, gs, s, gh, |g, sv| g * (sv - min)),
    }
}

/// [`link_bwd`] with the derivative `f(g, s)`: computed over blocks of whole rows in one loop
/// (it vectorises for a head of a few columns), then added to the heads' second halves.
#[inline(always)]
fn link_bwd_with(d: usize, gs: &[f32], s: &[f32], gh: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    const BLOCK: usize = 256;
    let per = BLOCK / d.max(1);
    if per == 0 {
        // Wide heads: row by row.
        let rows = gh
            .chunks_exact_mut(2 * d)
            .zip(gs.chunks_exact(d).zip(s.chunks_exact(d)));
        for (hr, (gr, sr)) in rows {
            for ((a, g), sv) in hr[d..].iter_mut().zip(gr).zip(sr) {
                *a += f(*g, *sv);
            }
        }
        return;
    }
    let mut buf = [0.0f32; BLOCK];
    let blocks = gh
        .chunks_mut(2 * d * per)
        .zip(gs.chunks(d * per).zip(s.chunks(d * per)));
    for (hb, (gb, sb)) in blocks {
        let fb = &mut buf[..gb.len()];
        for ((v, g), sv) in fb.iter_mut().zip(gb).zip(sb) {
            *v = f(*g, *sv);
        }
        for (hr, fr) in hb.chunks_exact_mut(2 * d).zip(fb.chunks_exact(d)) {
            for (a, v) in hr[d..].iter_mut().zip(fr) {
                *a += v;
            }
        }
    }
}

/// [`unary_fwd_any`] in 16-lane AVX-512 loops where the CPU has them (the maps built on
/// `math::exp` are worth the wider vectors: W6's per-step tanh ran 1.8× faster).
#[inline(always)]
fn unary_fwd(op: Un, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::small512::available() {
        // SAFETY: the CPU has AVX-512F (checked at run time).
        unsafe { unary_fwd_512(op, x, y) };
        return;
    }
    unary_fwd_any(op, x, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn unary_fwd_512(op: Un, x: &[f32], y: &mut [f32]) {
    unary_fwd_any(op, x, y);
}

#[inline(always)]
fn unary_fwd_any(op: Un, x: &[f32], y: &mut [f32]) {
    macro_rules! map {
        ($f:expr) => {
            for (y, x) in y.iter_mut().zip(x) {
                *y = $f(*x);
            }
        };
    }
    match op {
        Un::Exp => map!(math::exp),
        Un::Log => map!(math::ln),
        Un::Softplus => map!(math::softplus),
        Un::Tanh => map!(math::tanh),
        Un::Sigmoid => map!(math::sigmoid),
        Un::Sin => map!(f32::sin),
        Un::Cos => map!(f32::cos),
        Un::Abs => map!(f32::abs),
        Un::Sqrt => map!(f32::sqrt),
        Un::Square => map!(|v: f32| v * v),
        Un::Relu => map!(|v: f32| v.max(0.0)),
        Un::Affine(a, c) => map!(|v: f32| a * v + c),
        Un::RDiv(c) => map!(|v: f32| c / v),
        Un::Clamp(lo, hi) => map!(|v: f32| v.clamp(lo, hi)),
        Un::StopGrad => y.copy_from_slice(x),
    }
}

#[inline(always)]
fn unary_bwd(op: Un, x: &[f32], y: &[f32], g: &[f32], gx: &mut [f32]) {
    macro_rules! acc {
        ($d:expr) => {
            for i in 0..gx.len() {
                gx[i] += g[i] * $d(x[i], y[i]);
            }
        };
    }
    match op {
        Un::Exp => acc!(|_x: f32, y: f32| y),
        Un::Log => acc!(|x: f32, _y: f32| 1.0 / x),
        Un::Softplus => acc!(|x: f32, _y: f32| math::sigmoid(x)),
        Un::Tanh => acc!(|_x: f32, y: f32| 1.0 - y * y),
        Un::Sigmoid => acc!(|_x: f32, y: f32| y * (1.0 - y)),
        Un::Sin => acc!(|x: f32, _y: f32| x.cos()),
        Un::Cos => acc!(|x: f32, _y: f32| -x.sin()),
        Un::Abs => acc!(|x: f32, _y: f32| if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }),
        Un::Sqrt => acc!(|_x: f32, y: f32| 0.5 / y),
        Un::Square => acc!(|x: f32, _y: f32| 2.0 * x),
        Un::Relu => acc!(|x: f32, _y: f32| f32::from(u8::from(x > 0.0))),
        Un::Affine(a, _) => acc!(|_x: f32, _y: f32| a),
        Un::RDiv(c) => acc!(|x: f32, _y: f32| -c / (x * x)),
        Un::Clamp(lo, hi) => acc!(|x: f32, _y: f32| f32::from(u8::from(x >= lo && x <= hi))),
        Un::StopGrad => {}
    }
}
