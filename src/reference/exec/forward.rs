//! The reference forward algorithm: a discrete chain summed out of p exactly
//! (`derive::marginal`, `Compute::Forward`), on dfdx ops so the tape gives the gradients.
//!
//! The emission table `e[t, b, j]` is every emission factor's log-density with the chain's
//! one-hot value set to state `j` at every step (0 at the steps its time case does not cover
//! and at masked steps); a switched latent's prior is evaluated at q's draw. The transition
//! `log A[b, i, j]` is the transition factor's log-softmax with `k[t-1]` set to state `i`;
//! then `α₁ = log π + e₁`, `α_t[j] = e_t[j] + logsumexp_i(α_{t-1}[i] + log A[i, j])`,
//! `log p(y) = logsumexp_j α_T[j]`, in log space throughout. A chain with a q chain
//! (`Ctx::q_chain_bound`) takes `𝔼_q[log p − log q]` over the same tables weighted by q's
//! forward marginals. On the host in f64 (`HostChain`): backward sampling for the posterior
//! predictive, forward–backward marginals and the Viterbi path for `vic sample --posterior`.

use super::*;
use crate::derive::marginal::Chain;

/// The logits of a chain's Categorical factor.
fn logits_of(m: &Model, f: FactorId) -> Result<&Expr, RtError> {
    match &m.factors[f].body {
        FactorBody::Sample(Dist {
            args: DistArgs::Logits(l),
            ..
        }) => Ok(l),
        _ => Err(RtError::Shape("a chain factor without logits".into())),
    }
}

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
        let (b, tt, k) = (self.s.b, self.s.tt, ch.classes);
        let (log_pi, log_a, table) = self.chain_tables(ch, mask)?;
        let mut alpha = log_pi + ops::rows(table.clone(), 0, b);
        for t in 1..tt {
            let prev = alpha.broadcast_like::<_, Axis<2>>(&(b, k, k))
                + ops::fresh(log_a.clone()).reshape_like(&(b, k, k));
            alpha = prev.logsumexp::<(usize, usize), Axis<1>>()
                + ops::rows(ops::fresh(table.clone()), t * b, (t + 1) * b);
        }
        Ok(alpha.logsumexp::<(usize,), Axis<1>>().reshape_like(&(b, 1)))
    }

    /// The chain's tables on the host in f64 (at q's draw of any switched latent).
    fn host_chain(&mut self, ch: &Chain, mask: Option<&[f32]>) -> Result<HostChain, RtError> {
        let (b, tt, k) = (self.s.b, self.s.tt, ch.classes);
        let (log_pi, log_a, table) = self.chain_tables(ch, mask)?;
        let host = |x: &T2<T>| -> Vec<f64> { ops::to_host(x).into_iter().map(f64::from).collect() };
        Ok(HostChain {
            b,
            tt,
            k,
            lp: host(&log_pi),
            la: host(&log_a),
            e: host(&table),
        })
    }

    /// `𝔼_q[log p(k, y) − log q(k)]` per sequence, `(b, 1)`, for a chain whose q is a Markov
    /// chain: exact over q's chain with q's forward marginals γ_t (γ_1 = q(k[1]),
    /// ξ_t(i, j) = γ_{t-1}(i) q(k[t] = j | k[t-1] = i), γ_t = Σ_i ξ_t), T·K² per sequence:
    /// `Σ_j γ_1 (log π − log q₁ + e_1) + Σ_{t≥2} [Σ_{ij} ξ_t (log A − log Q_t) + Σ_j γ_t e_t]`.
    /// A masked step emits nothing and its transitions count for nothing (past the end of a
    /// sequence both chains sum to 1).
    pub(super) fn q_chain_bound(
        &mut self,
        ch: &Chain,
        q: crate::derive::marginal::QChain,
        mask: Option<&[f32]>,
    ) -> Result<T2<T>, RtError> {
        let m = self.m();
        let (b, tt, k, v) = (self.s.b, self.s.tt, ch.classes, ch.var);
        let dev = self.p.device().clone();
        let (log_pi, log_a, table) = self.chain_tables(ch, mask)?;
        let lq1 = log_softmax(self.eval_rows(logits_of(m, q.init)?, At::Step(1), k)?);
        // log Q[(t-2)·b + s, i·K + j] = log q(k[t] = j | k[t-1] = i) for t ≥ 2.
        let mut lqt: Option<T2<T>> = None;
        if tt >= 2 {
            for i in 0..k {
                self.set_state(v, k, i);
                let row = log_softmax(self.eval_rows(logits_of(m, q.trans)?, At::Range(2), k)?);
                lqt = Some(match lqt.take() {
                    None => row,
                    Some(a) => ops::cat_cols(a, row),
                });
            }
            self.s.steps.remove(&v);
            self.s.padded.remove(&v);
        }
        let mut gamma = ops::fresh(lq1.clone()).exp();
        let first = log_pi - lq1 + ops::rows(ops::fresh(table.clone()), 0, b);
        let mut total = ops::row_sum(gamma.clone() * first);
        for t in 1..tt {
            let Some(lqt) = &lqt else { break };
            let lq = ops::rows(ops::fresh(lqt.clone()), (t - 1) * b, t * b);
            let xi = gamma.broadcast_like::<_, Axis<2>>(&(b, k, k))
                * ops::fresh(lq.clone()).exp().reshape_like(&(b, k, k));
            let ratio = ops::fresh(log_a.clone()) - lq;
            let flat: T2<T> = xi.clone().reshape_like(&(b, k * k));
            let mut step = ops::row_sum(ops::fresh(flat) * ratio);
            if let Some(mk) = mask {
                step = step
                    * self
                        .p
                        .input(ops::from_host(&dev, mk[t * b..(t + 1) * b].to_vec(), b, 1));
            }
            gamma = xi.sum::<(usize, usize), Axis<1>>();
            let em = ops::rows(ops::fresh(table.clone()), t * b, (t + 1) * b);
            total = total + step + ops::row_sum(gamma.clone() * em);
        }
        Ok(total)
    }

    /// Draw the chain from its posterior p(k[1:T] | y) (forward filtering, backward sampling,
    /// in f64 on the host) and store the draws as its values at every step, `(b, K)` one-hots:
    /// the posterior predictive then draws the emissions given them.
    pub(super) fn sample_chain(
        &mut self,
        ch: &Chain,
        mask: Option<&[f32]>,
        rng: &mut Rng,
    ) -> Result<(), RtError> {
        let (b, tt, k, lag) = (self.s.b, self.s.tt, ch.classes, self.s.k);
        let states = self.host_chain(ch, mask)?.sample(rng);
        let dev = self.p.device().clone();
        let mut steps: Vec<Option<T2<T>>> = (0..tt + lag).map(|_| None).collect();
        for t in 0..tt {
            let mut h = vec![0.0f32; b * k];
            for s in 0..b {
                h[s * k + states[t * b + s]] = 1.0;
            }
            steps[lag + t] = Some(self.p.input(ops::from_host(&dev, h, b, k)));
        }
        self.s.steps.insert(ch.var, steps);
        self.s.padded.remove(&ch.var);
        Ok(())
    }

    /// The chain's posterior marginals and most probable path (forward–backward and
    /// max-product in f64 on the host).
    pub(super) fn chain_posterior(
        &mut self,
        ch: &Chain,
        mask: Option<&[f32]>,
    ) -> Result<(Vec<f64>, Vec<usize>), RtError> {
        let hc = self.host_chain(ch, mask)?;
        Ok((hc.marginals(), hc.viterbi()))
    }

    /// The chain's pieces: log π `(b, K)`, log A `(b, K·K)` (`[i·K + j]`: from i to j) and
    /// the emission table `(T·b, K)` (masked steps 0).
    #[allow(clippy::type_complexity)]
    fn chain_tables(
        &mut self,
        ch: &Chain,
        mask: Option<&[f32]>,
    ) -> Result<(T2<T>, T2<T>, T2<T>), RtError> {
        let m = self.m();
        let (b, tt, k, v) = (self.s.b, self.s.tt, ch.classes, ch.var);
        let dev = self.p.device().clone();
        let logits = |f: FactorId| logits_of(m, f);
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
                let range = crate::derive::marginal::range(m, fi);
                let at = match range {
                    Range::At { t } => At::Step(t),
                    Range::From { t } => At::Range(t),
                    Range::Static => return Err(RtError::Shape("a static emission".into())),
                };
                let dist = self.dist(d, at, size)?;
                let x = self.values(f.var, range)?;
                let lp = log_prob(d.family, x, dist, self.classes(f.var), None)?;
                // Zeros at the steps the factor does not cover (before step 2, after step 1).
                let zeros = |s: &mut Self, rows: usize| s.p.input(ops::full(&dev, rows, 1, 0.0));
                let lp = match range {
                    Range::From { t } if t > 1 => {
                        let pad = zeros(self, (t as usize - 1).min(tt) * b);
                        ops::cat_rows(pad, lp)
                    }
                    Range::At { .. } if tt > 1 => {
                        let pad = zeros(self, (tt - 1) * b);
                        ops::cat_rows(lp, pad)
                    }
                    _ => lp,
                };
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
        Ok((log_pi, log_a, table))
    }
}

/// A chain's tables on the host in f64, time-major: `lp[s·K + j]` = log π, `la[s·K² + i·K + j]`
/// = log p(k[t] = j | k[t-1] = i), `e[(t·b + s)·K + j]` the emission log-potential (0 at masked
/// steps). The one home of the f64 recursions (sampling, marginals, Viterbi).
struct HostChain {
    b: usize,
    tt: usize,
    k: usize,
    lp: Vec<f64>,
    la: Vec<f64>,
    e: Vec<f64>,
}

fn lse(x: &[f64]) -> f64 {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

impl HostChain {
    fn at(&self, t: usize, s: usize) -> usize {
        (t * self.b + s) * self.k
    }
    fn trans(&self, s: usize, i: usize, j: usize) -> f64 {
        self.la[s * self.k * self.k + i * self.k + j]
    }
    /// `α[(t·b + s)·K + j]` = log p(y[1:t], k[t] = j) of sequence s.
    fn alpha(&self) -> Vec<f64> {
        let (b, tt, k) = (self.b, self.tt, self.k);
        let mut alpha = vec![0.0f64; tt * b * k];
        for s in 0..b {
            for j in 0..k {
                alpha[s * k + j] = self.lp[s * k + j] + self.e[s * k + j];
            }
        }
        let mut buf = vec![0.0f64; k];
        for t in 1..tt {
            for s in 0..b {
                for j in 0..k {
                    for (i, v) in buf.iter_mut().enumerate() {
                        *v = alpha[self.at(t - 1, s) + i] + self.trans(s, i, j);
                    }
                    alpha[self.at(t, s) + j] = lse(&buf) + self.e[self.at(t, s) + j];
                }
            }
        }
        alpha
    }
    /// `β[(t·b + s)·K + i]` = log p(y[t+1:T] | k[t] = i).
    fn beta(&self) -> Vec<f64> {
        let (b, tt, k) = (self.b, self.tt, self.k);
        let mut beta = vec![0.0f64; tt * b * k];
        let mut buf = vec![0.0f64; k];
        for t in (0..tt.saturating_sub(1)).rev() {
            for s in 0..b {
                for i in 0..k {
                    for (j, v) in buf.iter_mut().enumerate() {
                        *v = self.trans(s, i, j)
                            + self.e[self.at(t + 1, s) + j]
                            + beta[self.at(t + 1, s) + j];
                    }
                    beta[self.at(t, s) + i] = lse(&buf);
                }
            }
        }
        beta
    }
    /// Batch-major posterior marginals `[(s·T + t)·K + j]` = p(k[t] = j | y).
    fn marginals(&self) -> Vec<f64> {
        let (b, tt, k) = (self.b, self.tt, self.k);
        let (alpha, beta) = (self.alpha(), self.beta());
        let mut out = vec![0.0f64; b * tt * k];
        let mut buf = vec![0.0f64; k];
        for t in 0..tt {
            for s in 0..b {
                for (j, v) in buf.iter_mut().enumerate() {
                    *v = alpha[self.at(t, s) + j] + beta[self.at(t, s) + j];
                }
                let z = lse(&buf);
                for (j, v) in buf.iter().enumerate() {
                    out[(s * tt + t) * k + j] = (v - z).exp();
                }
            }
        }
        out
    }
    /// Batch-major most probable path `[s·T + t]` (max-product; ties to the lower state).
    fn viterbi(&self) -> Vec<usize> {
        let (b, tt, k) = (self.b, self.tt, self.k);
        let mut out = vec![0usize; b * tt];
        for s in 0..b {
            let mut delta: Vec<f64> = (0..k)
                .map(|j| self.lp[s * k + j] + self.e[s * k + j])
                .collect();
            let mut back = vec![0usize; tt * k];
            for t in 1..tt {
                let mut next = vec![0.0f64; k];
                for j in 0..k {
                    let mut best = (f64::NEG_INFINITY, 0);
                    for (i, d) in delta.iter().enumerate() {
                        let v = d + self.trans(s, i, j);
                        if v > best.0 {
                            best = (v, i);
                        }
                    }
                    back[t * k + j] = best.1;
                    next[j] = best.0 + self.e[self.at(t, s) + j];
                }
                delta = next;
            }
            let mut state = (0..k).fold(0, |m, j| if delta[j] > delta[m] { j } else { m });
            for t in (0..tt).rev() {
                out[s * tt + t] = state;
                state = back[t * k + state];
            }
        }
        out
    }
    /// Time-major draws `[t·b + s]` from the posterior (forward filtering, backward sampling).
    fn sample(&self, rng: &mut Rng) -> Vec<usize> {
        use rand::Rng as _;
        let (b, tt, k) = (self.b, self.tt, self.k);
        let alpha = self.alpha();
        let draw = |w: &[f64], u: f64| -> usize {
            let z = lse(w);
            let mut c = 0.0;
            for (j, x) in w.iter().enumerate() {
                c += (x - z).exp();
                if u < c {
                    return j;
                }
            }
            w.len() - 1
        };
        let mut buf = vec![0.0f64; k];
        let mut states = vec![0usize; tt * b];
        for t in (0..tt).rev() {
            for s in 0..b {
                for (i, v) in buf.iter_mut().enumerate() {
                    *v = alpha[self.at(t, s) + i];
                    if t + 1 < tt {
                        *v += self.trans(s, i, states[(t + 1) * b + s]);
                    }
                }
                states[t * b + s] = draw(&buf, rng.gen::<f64>());
            }
        }
        states
    }
}
