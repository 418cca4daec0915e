//! Lowering of a discrete chain summed out of p (`derive::marginal`, `Compute::Forward`) to
//! one [`HmmOp`]: the initial logits (one row), the transition logits with `k[t-1]` set to
//! each state (the `K` states are the rows of one evaluation: an identity buffer stands for
//! the chain while `b = K`), and the emission log-densities with `k[t]` set to each state in
//! turn (`K` evaluations of the emission factors over all steps, each reading a constant
//! one-hot buffer in place of the chain). A chain with a q chain lowers the same p side and
//! q's logits (the transition's with `k[t-1]` at each state) to one [`QChainOp`] instead.
//! Semantics: the reference's `reference/exec/forward.rs`.

use super::*;
use crate::derive::marginal::Chain;
use crate::fused::hmm::{HmmOp, NormalEmit, QChainOp, MAX_STATES};

impl Builder<'_> {
    /// A constant buffer standing for the chain `(self.k + tt)` steps of `rows` rows: row `r`
    /// of every step is `value(r)`'s one-hot.
    fn onehot_steps(&mut self, rows: usize, k: usize, value: impl Fn(usize) -> usize) -> BufId {
        let steps = self.k + self.tt;
        let mut init = vec![0.0f32; steps * rows * k];
        for s in 0..steps {
            for r in 0..rows {
                init[(s * rows + r) * k + value(r)] = 1.0;
            }
        }
        let buf = self.g.buf(steps * rows, k, BufKind::Const, false);
        self.g.bufs[buf].init = Some(init);
        buf
    }

    /// The term of a chain summed out: `log p(y[1:T])` per sequence, `(b, 1)`.
    pub(super) fn marginal_term(&mut self, term: &crate::derive::Term) -> R<View> {
        let VarOrOpt::Var(v) = term.owner_id else {
            return unsup("a chain term of an optimality variable");
        };
        let Ok(Some(ch)) = crate::derive::marginal::chain(self.m, v) else {
            return unsup("a time-indexed latent that is not a chain summed out");
        };
        self.chain_forward(&ch)
    }

    fn chain_forward(&mut self, ch: &Chain) -> R<View> {
        let m = self.m;
        let (b, tt, k, v) = (self.b, self.tt, ch.classes, ch.var);
        if k > MAX_STATES {
            return unsup(format!("a chain of more than {MAX_STATES} states"));
        }
        let dist = |f: FactorId| -> R<&Dist> {
            match &m.factors[f].body {
                FactorBody::Sample(d) => Ok(d),
                FactorBody::Define(_) => unsup("a chain factor that is a definition"),
            }
        };
        if self.tt < 2 {
            // The reference refuses it too (`reference/exec/forward.rs`); the data loader's
            // shortest sequence is 2 steps.
            return unsup("a chain of one step");
        }
        let saved = self.vars.remove(&v);
        // log π's logits: they read no variable, so one row serves every sequence.
        let init = self.cat_logits(dist(ch.init)?, At::Step(1), k, false, true)?;
        // Transition logits: row i with k[t-1] = state i (the K states as the rows, b = K).
        let id = self.onehot_steps(k, k, |r| r);
        self.vars.insert(v, id);
        self.b = k;
        let trans = self.cat_logits(dist(ch.trans)?, At::Step(2), k, false, false);
        // Normal emissions whose parameters read only k[t]: their (K, D) tables, on the same
        // K identity rows; the op evaluates every row at every state from them.
        let mut tables = Vec::new();
        let mut general = Vec::new();
        for &fi in &ch.emissions {
            let f = &m.factors[fi];
            let d = dist(fi)?;
            let only_k = |e: &Expr| {
                e.reads()
                    .iter()
                    .all(|r| r.var == v && r.time == TimeRef::Lag(0))
            };
            match &d.args {
                DistArgs::LocScale { loc, scale }
                    if d.family == Family::Normal
                        && f.case == TimeCase::From(1)
                        // The tables' backward has no gradient for the variable itself: a
                        // switched latent (drawn from q) takes the general path.
                        && m.vars[f.var].role == Role::Observed
                        && only_k(loc)
                        && only_k(scale) =>
                {
                    let size = m.vars[f.var].ty.size();
                    match self.dist(d, At::Step(1), size, None) {
                        Ok((l, Some(s))) => tables.push((f.var, l, s)),
                        Ok(_) => general.push(fi),
                        Err(e) => {
                            self.b = b;
                            return Err(e);
                        }
                    }
                }
                _ => general.push(fi),
            }
        }
        self.b = b;
        let trans = trans?;
        let mut normal = Vec::with_capacity(tables.len());
        for (y, loc, scale) in tables {
            let y = self.values(y, Range::From { t: 1 })?;
            let d = self.g.cols(loc);
            let aux = self.temp(k, 2 * d, false);
            let yt = self.temp(tt * d, b, false);
            normal.push(NormalEmit {
                y,
                loc,
                scale,
                aux,
                yt,
            });
        }
        // The other emissions: K evaluations over all steps, the chain at state j in every row.
        let mut em = Vec::with_capacity(k);
        for j in 0..k {
            if general.is_empty() {
                break;
            }
            let buf = self.onehot_steps(b, k, |_| j);
            self.vars.insert(v, buf);
            let mut acc: Option<View> = None;
            for &fi in &general {
                let f = &m.factors[fi];
                let d = dist(fi)?;
                let size = m.vars[f.var].ty.size();
                let range = crate::derive::marginal::range(m, fi);
                let at = match range {
                    Range::At { t } => At::Step(t),
                    Range::From { t } => At::Range(t),
                    Range::Static => return unsup("a static emission"),
                };
                let lp = if d.family == Family::Categorical {
                    let logits = self.cat_logits(d, at, size, false, false)?;
                    let x = self.values(f.var, range)?;
                    let classes = match m.vars[f.var].ty {
                        VarType::OneHot { classes, .. } => classes,
                        _ => return unsup("a categorical emission of a non-one-hot variable"),
                    };
                    let grad = self.g.grad(logits);
                    let out = self.temp(x.rows, 1, grad);
                    self.op(Op::CatLogProb {
                        x,
                        logits,
                        classes,
                        out,
                    });
                    out
                } else {
                    let (l, s) = self.dist(d, at, size, None)?;
                    let x = self.values(f.var, range)?;
                    self.log_prob(d.family, x, l, s, None)?
                };
                let lp = self.pad_steps(lp, range);
                acc = Some(match acc {
                    None => lp,
                    Some(a) => {
                        let rows = a.rows;
                        self.bin_views(Bin::Add, a, Bc::Full, lp, Bc::Full, rows, 1)
                    }
                });
            }
            em.push(match acc {
                Some(a) => a,
                None => self.fill(tt * b, 1, 0.0),
            });
        }
        // A q chain: q's initial logits (they read data only) and its transition logits with
        // k[t-1] at each state in turn.
        let qviews = match ch.q {
            Some(q) => {
                let q1 = self.cat_logits(dist(q.init)?, At::Step(1), k, false, false)?;
                let mut qt = Vec::with_capacity(k);
                for i in 0..k {
                    let buf = self.onehot_steps(b, k, |_| i);
                    self.vars.insert(v, buf);
                    qt.push(self.cat_logits(dist(q.trans)?, At::Range(2), k, false, false)?);
                }
                Some((q1, qt))
            }
            None => None,
        };
        self.vars.remove(&v);
        if let Some(s) = saved {
            self.vars.insert(v, s);
        }
        let mask = self.mask_view();
        if let Some((q1, qt)) = qviews {
            let grad = em.iter().any(|e| self.g.grad(*e))
                || normal
                    .iter()
                    .any(|n| self.g.grad(n.loc) || self.g.grad(n.scale))
                || self.g.grad(init)
                || self.g.grad(trans)
                || self.g.grad(q1)
                || qt.iter().any(|x| self.g.grad(*x));
            let op = QChainOp {
                em,
                normal,
                init,
                trans,
                mask,
                q1,
                qt,
                lpi: self.temp(init.rows, k, false),
                la: self.temp(k, k, false),
                lq1: self.temp(b, k, false),
                lqt: self.temp((tt - 1) * b, k * k, false),
                e: self.temp(tt * b, k, false),
                gamma: self.temp(tt * b, k, false),
                gl: self.temp(tt * b, k, false),
                ga: self.temp(k, k, false),
                out: self.temp(b, 1, grad),
                b,
                t: tt,
                k,
            };
            let out = op.out;
            self.op(Op::QChain(Box::new(op)));
            return Ok(out);
        }
        let grad = em.iter().any(|e| self.g.grad(*e))
            || normal
                .iter()
                .any(|n| self.g.grad(n.loc) || self.g.grad(n.scale))
            || self.g.grad(init)
            || self.g.grad(trans);
        let pi = self.temp(init.rows, k, false);
        let a = self.temp(k, k, false);
        let e = self.temp(tt * b, k, false);
        let alpha = self.temp(tt * b, k, false);
        let c = self.temp(tt * b, 1, false);
        let beta = self.temp(tt * b, k, false);
        let gl = self.temp(tt * b, k, false);
        let w = self.temp(b, k.max(1), false);
        let nacc = self.temp(k * k, b, false);
        let dacc = self.temp(k, b, false);
        let out = self.temp(b, 1, grad);
        self.op(Op::Hmm(Box::new(HmmOp {
            em,
            normal,
            gl,
            w,
            nacc,
            dacc,
            init,
            trans,
            mask: Some(mask),
            pi,
            a,
            e,
            alpha,
            c,
            beta,
            out,
            b,
            t: tt,
            k,
        })));
        Ok(out)
    }

    /// A factor's log-densities over its range as `(T·b, 1)`: zeros at the steps it does not
    /// cover (before step `t` of a general case `From(t)`, after the step of a base case).
    fn pad_steps(&mut self, lp: View, range: Range) -> View {
        let (b, tt) = (self.b, self.tt);
        if lp.rows == tt * b {
            return lp;
        }
        let grad = self.g.grad(lp);
        let out = self.temp(tt * b, 1, grad);
        let buf = out.buf;
        let (r0, rows) = match range {
            Range::At { t } => ((t as usize - 1) * b, b),
            Range::From { t } => ((t as usize - 1) * b, (tt + 1 - t as usize) * b),
            Range::Static => (0, lp.rows),
        };
        let zero = self.fill(tt * b, 1, 0.0);
        self.copy_into(zero, out);
        self.copy_into(lp, View { buf, r0, rows });
        out
    }

    /// The batch mask `(T·b, 1)`, filled by the engine before each pass (1s without one).
    fn mask_view(&mut self) -> View {
        let buf = match self.mask {
            Some(m) => m,
            None => {
                let m = self.g.buf(self.tt * self.b, 1, BufKind::Data, false);
                self.g.bufs[m].init = Some(vec![1.0; self.tt * self.b]);
                self.mask = Some(m);
                m
            }
        };
        self.g.all(buf)
    }
}
