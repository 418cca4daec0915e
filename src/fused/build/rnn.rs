//! Lowering of the whole-sequence expressions: nets over time (`rnn`, forward and reverse)
//! and `clamp` with tensor bounds.
//!
//! Input: an `ExprKind::Rnn` (its argument expressions read sequences as `x[t:]` / `x[:t]`)
//! or a `clamp` whose bounds are not numbers. Output: a view of the values at the read's
//! `At` (a step, or steps `s ..= T`). Invariants: as the reference path
//! (`reference::exec::read` `rnn`), a net over time runs once per forward pass per call site
//! (keyed by the expression, cached in `precomp`), from a zero state, over the arguments
//! evaluated for every step (a sequence read at step t is that step's value), and step `t`
//! of a forward net has seen steps `1 ..= t`, of a reverse one steps `t ..= T`. The scan is
//! one [`Op::Rnn`] placed where the call is first built: its inputs are data (and
//! parameters), so every reader comes after it.

use super::*;

impl Builder<'_> {
    /// A net over time read at `at`.
    pub(super) fn rnn(&mut self, e: &Expr, at: At) -> R<View> {
        let ExprKind::Rnn { net, seqs } = &e.kind else {
            return unsup("a net over time");
        };
        let NetKind::Rnn {
            hidden: hd,
            reverse,
            ..
        } = self.m.nets[*net].kind
        else {
            return unsup("an rnn call of another net");
        };
        let (b, tt) = (self.b, self.tt);
        let key: *const Expr = e;
        let buf = match self.precomp.get(&key) {
            Some(buf) => *buf,
            None => {
                let all = At::Range(1);
                let rows = tt * b;
                let mut xs = Vec::with_capacity(seqs.len());
                let mut off = 0;
                for sq in seqs {
                    let n = sq.shape.numel();
                    let v = self.eval(sq, all)?;
                    xs.push((self.as_rows(v, rows, n)?, off));
                    off += n;
                }
                let prefix = net_prefix(self.m, *net);
                let wi = self.param(&format!("{prefix}.w_i"))?;
                let wh = self.param(&format!("{prefix}.w_h"))?;
                let bi = self.param(&format!("{prefix}.b_i"))?;
                let bh = self.param(&format!("{prefix}.b_h"))?;
                if self.g.bufs[wi].cols != 3 * hd || self.g.bufs[wh].rows != hd {
                    return unsup(format!("the shapes of `{prefix}`"));
                }
                let out = self.g.buf((tt + 1) * b, hd, BufKind::Temp, true);
                let out = self.g.all(out);
                let gates = self.temp(rows, 3 * hd, false);
                let ghn = self.temp(rows, hd, false);
                let gi = self.temp(rows, 3 * hd, false);
                let gh = self.temp(rows, 3 * hd, false);
                let wht = self.temp(3 * hd, hd, false);
                self.op(Op::Rnn {
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
                });
                self.precomp.insert(key, out.buf);
                out.buf
            }
        };
        // Step t lives at block t (forward: block 0 is the zero state) or t − 1 (reverse).
        let block = |t: u32| t as usize - usize::from(reverse);
        match at {
            At::Step(t) if (1..=tt).contains(&(t as usize)) => Ok(View {
                buf,
                r0: block(t) * b,
                rows: b,
            }),
            At::Range(s) if (1..=tt).contains(&(s as usize)) => Ok(View {
                buf,
                r0: block(s) * b,
                rows: self.rows(at),
            }),
            _ => unsup("a net over time read outside the steps"),
        }
    }

    /// `clamp(arg, lo, hi)` with a tensor bound: `min(max(arg, lo), hi)` over rows.
    pub(super) fn clamp_tensor(&mut self, arg: &Expr, lo: Val, hi: Val, at: At) -> R<View> {
        let rows = self.rows(at);
        let n = arg.shape.numel();
        let x = self.eval(arg, at)?;
        let x = self.as_rows(x, rows, n)?;
        let mut lo = self.as_rows(lo, rows, n)?;
        let mut hi = self.as_rows(hi, rows, n)?;
        // The kernel accumulates each operand's gradient through its own slice: give a
        // repeated operand its own copy.
        if lo == x {
            let c = self.temp(rows, n, self.g.grad(lo));
            self.copy_into(lo, c);
            lo = c;
        }
        if hi == x || hi == lo {
            let c = self.temp(rows, n, self.g.grad(hi));
            self.copy_into(hi, c);
            hi = c;
        }
        let grad = [x, lo, hi].iter().any(|v| self.g.grad(*v));
        let out = self.temp(rows, n, grad);
        self.op(Op::ClampT { x, lo, hi, out });
        Ok(out)
    }
}
