//! The reference forward algorithm: a discrete chain summed out of p exactly
//! (`derive::marginal`, `Compute::Forward`), on dfdx ops so the tape gives the gradients.
//!
//! The emission table `e[t, b, j]` is every emission factor's log-density with the chain's
//! one-hot value set to state `j` at every step (masked steps contribute 0); the transition
//! `log A[b, i, j]` is the transition factor's log-softmax with `k[t-1]` set to state `i`;
//! then `α₁ = log π + e₁`, `α_t[j] = e_t[j] + logsumexp_i(α_{t-1}[i] + log A[i, j])`,
//! `log p(y) = logsumexp_j α_T[j]`, in log space throughout.

use super::*;
use crate::derive::marginal::Chain;

/// `x − logsumexp(x)` over the columns of a `(rows, K)` tensor.
fn log_softmax<T: LTape>(x: T2<T>) -> T2<T> {
    let (r, k) = *x.shape();
    let lse = x.clone().logsumexp::<(usize,), Axis<1>>();
    x - lse.broadcast_like::<_, Axis<1>>(&(r, k))
}

impl<T: LTape, P: Params<T>> Ctx<'_, T, P> {
    /// Set every step of the chain `v` to the one-hot state `j` (`b` rows per step).
    fn set_state(&mut self, v: VarId, k: usize, j: usize) {
        let (b, tt, lag) = (self.s.b, self.s.tt, self.s.k);
        let mut row = vec![0.0f32; k];
        row[j] = 1.0;
        let host: Vec<f32> = (0..b).flat_map(|_| row.clone()).collect();
        // A tensor per step: two operands of one op never share an id.
        let steps = (0..tt + lag)
            .map(|_| {
                Some(
                    self.p
                        .input(ops::from_host(self.p.device(), host.clone(), b, k)),
                )
            })
            .collect();
        self.s.steps.insert(v, steps);
        self.s.padded.remove(&v);
    }

    /// `log p(y[1:T])` per sequence, `(b, 1)`, with the chain summed out.
    pub(super) fn forward_algorithm(
        &mut self,
        ch: &Chain,
        mask: Option<&[f32]>,
    ) -> Result<T2<T>, RtError> {
        let m = self.m();
        let (b, tt, k, v) = (self.s.b, self.s.tt, ch.classes, ch.var);
        let dev = self.p.device().clone();
        let logits = |f: FactorId| -> Result<&Expr, RtError> {
            match &m.factors[f].body {
                FactorBody::Sample(Dist {
                    args: DistArgs::Logits(l),
                    ..
                }) => Ok(l),
                _ => Err(RtError::Shape("a chain factor without logits".into())),
            }
        };
        // log π: the initial logits read no variable.
        let init = self.eval_rows(logits(ch.init)?, At::Step(1), k)?;
        let log_pi = log_softmax(init);
        // log A[b, i·K + j] = log p(k[t] = j | k[t-1] = i).
        let mut log_a: Option<T2<T>> = None;
        let mut table: Option<T2<T>> = None;
        for i in 0..k {
            self.set_state(v, k, i);
            let l = if tt >= 2 {
                self.eval_rows(logits(ch.trans)?, At::Step(2), k)?
            } else {
                self.p.input(ops::full(&dev, b, k, 0.0))
            };
            let row = log_softmax(l);
            log_a = Some(match log_a.take() {
                None => row,
                Some(a) => ops::cat_cols(a, row),
            });
            // Emissions with k[t] = i at every step, `(T·b, 1)`.
            let mut col: Option<T2<T>> = None;
            for &fi in &ch.emissions {
                let f = &m.factors[fi];
                let FactorBody::Sample(d) = &f.body else {
                    return Err(RtError::Shape("an emission that is a definition".into()));
                };
                let size = m.vars[f.var].ty.size();
                let dist = self.dist(d, At::Range(1), size)?;
                let x = self.values(f.var, Range::From { t: 1 })?;
                let lp = log_prob(d.family, x, dist, self.classes(f.var), None)?;
                col = Some(match col.take() {
                    None => lp,
                    Some(c) => c + lp,
                });
            }
            let col = match col {
                Some(c) => c,
                None => self.p.input(ops::full(&dev, tt * b, 1, 0.0)),
            };
            let col = match mask {
                Some(mk) => col * self.p.input(ops::from_host(&dev, mk.to_vec(), tt * b, 1)),
                None => col,
            };
            table = Some(match table.take() {
                None => col,
                Some(t) => ops::cat_cols(t, col),
            });
        }
        self.s.steps.remove(&v);
        self.s.padded.remove(&v);
        let (Some(log_a), Some(table)) = (log_a, table) else {
            return Err(RtError::Shape("a chain with no states".into()));
        };
        let mut alpha = log_pi + ops::rows(table.clone(), 0, b);
        for t in 1..tt {
            let prev = alpha.broadcast_like::<_, Axis<2>>(&(b, k, k))
                + ops::fresh(log_a.clone()).reshape_like(&(b, k, k));
            alpha = prev.logsumexp::<(usize, usize), Axis<1>>()
                + ops::rows(ops::fresh(table.clone()), t * b, (t + 1) * b);
        }
        Ok(alpha.logsumexp::<(usize,), Axis<1>>().reshape_like(&(b, 1)))
    }
}
