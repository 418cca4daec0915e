//! The reference forward pass, part 2: every ELBO term once over its whole time range
//! (rows = steps × sequences), dispatched on the computation derive chose for it
//! (`derive::Compute`), and the training objective: the objective modifiers of
//! `crate::objective` applied to exactly the terms they are attached to, then enumeration,
//! the score-function surrogate, IWAE, overshooting and the SAC temperature.

use super::*;
use crate::derive::{Compute, KlForm, TermKind};
use crate::objective::{shaping, Floor, Shaping};

/// Repeat every sequence of a batch `n` times, block-major (block k = copy k).
fn tile_batch(m: &Model, batch: &Batch, n: usize) -> Batch {
    let (b, t) = (batch.b, batch.t.max(1));
    let mut data = HashMap::new();
    for (v, host) in &batch.data {
        let size = m.vars[*v].ty.size();
        let steps = if m.vars[*v].timed { t } else { 1 };
        let mut out = Vec::with_capacity(host.len() * n);
        for s in 0..steps {
            let block = &host[s * b * size..(s + 1) * b * size];
            for _ in 0..n {
                out.extend_from_slice(block);
            }
        }
        data.insert(*v, out);
    }
    let mask = batch.mask.as_ref().map(|mk| {
        let mut out = Vec::with_capacity(mk.len() * n);
        for s in 0..t {
            for _ in 0..n {
                out.extend_from_slice(&mk[s * b..(s + 1) * b]);
            }
        }
        out
    });
    Batch {
        b: b * n,
        t: batch.t,
        data,
        mask,
    }
}

/// `(n·b, 1)` → `(b, 1)`, summing the `n` blocks of a tiled batch.
fn fold_blocks<T: LTape>(x: T2<T>, n: usize) -> T2<T> {
    let orig = x.shape().0 / n;
    x.reshape_like(&(n, orig))
        .sum::<(usize,), Axis<0>>()
        .reshape_like(&(orig, 1))
}

impl Program {
    /// One forward pass. `step` drives KL annealing; `baseline` is the score-function baseline.
    pub fn forward<T: LTape, P: Params<T>>(
        &self,
        p: &P,
        batch: &Batch,
        rng: &mut Rng,
        step: u64,
        baseline: f32,
    ) -> Result<Forward<T>, RtError> {
        let enumerated = self.enumerated();
        let tiled;
        let batch = match enumerated {
            Some((_, n)) => {
                tiled = tile_batch(&self.model, batch, n);
                &tiled
            }
            None => batch,
        };
        let m = &self.model;
        let (b, tt) = (batch.b, batch.t.max(1));
        let dev = p.device().clone();
        let mut cx = self.chain_pass(p, batch, rng, true)?;
        // The terms, each once over its range.
        let elbo = &self.elbo;
        let mut seqs: Vec<T2<T>> = Vec::with_capacity(elbo.terms.len());
        let mut objective: Option<T0<T>> = None;
        let mut add = |x: T0<T>| {
            objective = Some(match objective.take() {
                None => x,
                Some(a) => a + x,
            })
        };
        let mut entropy_sum = 0.0f32;
        let mut entropy_rows_n = 0usize;
        let weight = self.kl_weight(step) as f32;
        let mut total: Option<T2<T>> = None;
        for term in &elbo.terms {
            let at = match term.range {
                Range::Static => At::Static,
                Range::At { t } if (t as usize) <= tt => At::Step(t),
                Range::From { t } if (t as usize) <= tt => At::Range(t),
                _ => {
                    seqs.push(p.input(ops::full(&dev, b, 1, 0.0)));
                    continue;
                }
            };
            let tp = match at {
                At::Range(s) => tt + 1 - s as usize,
                _ => 1,
            };
            let rows = tp * b;
            let owner_timed = match term.owner_id {
                VarOrOpt::Var(v) => m.vars[v].timed,
                VarOrOpt::Opt(_) => true,
            };
            let mask = batch
                .mask
                .as_ref()
                .filter(|_| owner_timed && !matches!(term.range, Range::Static))
                .map(|mk| {
                    let lo = match at {
                        At::Step(t) | At::Range(t) => (t as usize - 1) * b,
                        At::Static => 0,
                    };
                    p.input(ops::from_host(&dev, mk[lo..lo + rows].to_vec(), rows, 1))
                });
            let masked = |x: T2<T>| match &mask {
                Some(mk) => x * mk.clone(),
                None => x,
            };
            // Every modifier's effect, each field applied below.
            let Shaping {
                factor,
                floor,
                balance,
            } = shaping(&term.modifiers, weight);
            let (value, obj): (T2<T>, Option<T0<T>>) = match (term.compute, &term.kind) {
                (Compute::LogLikelihood, TermKind::LogLikelihood { p: pv }) => {
                    let f = &m.factors[pv.factor];
                    let FactorBody::Sample(d) = &f.body else {
                        return Err(RtError::Shape("likelihood of a definition".into()));
                    };
                    let size = m.vars[f.var].ty.size();
                    let dist = cx.dist(d, at, size)?;
                    let x = cx.values(f.var, term.range)?;
                    let lp = masked(log_prob(d.family, x, dist, cx.classes(f.var), None)?);
                    (per_seq(lp, b, tp), None)
                }
                (Compute::Kl(form), TermKind::Kl { p: pv, .. }) => {
                    let (v, _, kk, pdist) = cx.prior_of(pv.factor, at)?;
                    let (_, qdist, _) = cx.recorded(v, term.range)?;
                    let plain = {
                        let (r, el) =
                            kl_rows(form, qdist.clone_vals(), pdist.clone_vals(), kk, false)?;
                        debug_assert!(!el);
                        masked(r)
                    };
                    let total_kl =
                        kl_objective(p, form, qdist, pdist, kk, floor, balance, &masked)?;
                    (per_seq(plain, b, tp), Some(total_kl.negate() * factor))
                }
                (Compute::LogRatio, TermKind::LogRatio { p: pv, .. }) => {
                    let (v, pfam, kk, pdist) = cx.prior_of(pv.factor, at)?;
                    let (qfam, qdist, pre) = cx.recorded(v, term.range)?;
                    let z = cx.values(v, term.range)?;
                    let lp = log_prob(pfam, z.clone(), pdist, kk, None)?;
                    let lq = log_prob(qfam, ops::fresh(z), qdist, kk, pre)?;
                    (per_seq(masked(lp - lq), b, tp), None)
                }
                (Compute::Entropy(_) | Compute::EntropyMc, TermKind::Entropy { q: qv, .. }) => {
                    let form = match term.compute {
                        Compute::Entropy(f) => Some(f),
                        _ => None,
                    };
                    let v = m.factors[qv.factor].var;
                    let kk = cx.classes(v);
                    let (qfam, qdist, pre) = cx.recorded(v, term.range)?;
                    let z = cx.values(v, term.range)?;
                    let h = masked(entropy_rows(form, qfam, qdist, z, kk, pre)?);
                    if self.auto_alpha.is_some() {
                        entropy_sum += ops::to_host(&ops::row_sum(
                            ops::stop_gradient(&h).reshape_like(&(1, rows)),
                        ))
                        .iter()
                        .sum::<f32>();
                        entropy_rows_n += rows;
                    }
                    (per_seq(h, b, tp), None)
                }
                (Compute::Reward, TermKind::Reward { opt, alpha, .. }) => {
                    let o = &m.optimality[*opt];
                    let r = masked(cx.eval_rows(&o.reward, at, 1)?);
                    let a = match alpha {
                        Alpha::Fixed(a) => *a as f32,
                        Alpha::Auto { .. } => self.alpha_value(p)?,
                    };
                    (per_seq(r / a, b, tp), None)
                }
                (Compute::Forward, TermKind::Marginal { .. }) => {
                    let VarOrOpt::Var(v) = term.owner_id else {
                        return Err(RtError::Shape(
                            "a chain term of an optimality variable".into(),
                        ));
                    };
                    let Ok(Some(ch)) = crate::derive::marginal::chain(m, v) else {
                        return Err(RtError::Shape("a chain that is not summed out".into()));
                    };
                    let mask = batch.mask.as_deref();
                    match ch.q {
                        Some(q) => (cx.q_chain_bound(&ch, q, mask)?, None),
                        None => (cx.forward_algorithm(&ch, mask)?, None),
                    }
                }
                (c, k) => {
                    return Err(RtError::Shape(format!(
                        "a {} term computed as {c:?}",
                        k.name()
                    )))
                }
            };
            // Enumeration: Σ_k q(c = k | x)·term_k for every term but c's own, which is the
            // same in every block and counted once.
            let (value, obj) = match (&cx.s.enum_weight, enumerated) {
                (Some(w), Some((c, n))) => {
                    let own = term.compute.is_kl_like() && term.owner_id == VarOrOpt::Var(c);
                    let weighted = if own {
                        value * (1.0 / n as f32)
                    } else {
                        value * w.clone()
                    };
                    (weighted, None)
                }
                _ => (value, obj),
            };
            let sign = f32::from(term.kind.sign());
            let signed = value.clone() * sign;
            total = Some(match total.take() {
                None => signed,
                Some(acc) => acc + signed,
            });
            match obj {
                Some(o) => add(o),
                None => add(ops::sum_all(value.clone()) * (sign * factor)),
            }
            seqs.push(value);
        }
        let mut elbo_seq = total.unwrap_or_else(|| p.input(ops::full(&dev, b, 1, 0.0)));
        if let Some((_, n)) = enumerated {
            elbo_seq = fold_blocks(elbo_seq, n);
            seqs = seqs.into_iter().map(|x| fold_blocks(x, n)).collect();
        }
        let mut objective =
            objective.unwrap_or_else(|| ops::sum_all(p.input(ops::full(&dev, 1, 1, 0.0))));
        // Score-function surrogate: (sg(ELBO) − baseline) · log q, per sequence. The baseline
        // is the trainer's moving average plus a learned offset β, which is fitted by
        // regressing the remaining signal (β's own loss; it does not bias the estimator).
        if let Some(lq) = cx.s.sf_logq.take() {
            let beta = p
                .vector(super::super::BASELINE_PARAM)?
                .reshape_like(&(1, 1));
            let rows = elbo_seq.shape().0;
            let beta_rows = ops::broadcast_rows(beta.reshape_like(&(1,)), rows);
            let centred = p.input(ops::stop_gradient(&elbo_seq)) - baseline;
            let beta_sg = p.input(ops::stop_gradient(&beta_rows));
            let signal = p.input(ops::stop_gradient(&centred)) - beta_sg;
            objective = objective + ops::sum_all(signal * lq);
            objective = objective - ops::sum_all((centred - beta_rows).square()) * 0.5;
        }
        // IWAE: K copies of each sequence → log mean exp of the log weights.
        if self.model.objective.iwae > 1 {
            let kk = self.model.objective.iwae as usize;
            let n = b / kk;
            let lw = elbo_seq
                .reshape_like(&(kk, n))
                .logsumexp::<(usize,), Axis<0>>()
                - (kk as f32).ln();
            elbo_seq = lw.reshape_like(&(n, 1));
            let (e1, e2) = crate::runtime::tape::fork(elbo_seq);
            elbo_seq = e1;
            objective = ops::sum_all(e2);
        }
        // Latent overshooting (overshoot.rs): subtracted from the objective only.
        let mut overshooting = Vec::new();
        let dmax = self.model.objective.overshooting as usize;
        for d in 2..=dmax {
            let kl = match cx.overshooting(batch, d, rng)? {
                Some(kl) => kl,
                None => p.input(ops::full(&dev, b, 1, 0.0)),
            };
            objective = objective - ops::sum_all(kl.clone()) * (weight / dmax as f32);
            overshooting.push(kl);
        }
        let policy_entropy = (entropy_rows_n > 0).then(|| entropy_sum / entropy_rows_n as f32);
        // SAC temperature: minimise α·(H − target) over log α (α's own loss, added to the
        // maximised objective with a minus sign; the policy sees α as a constant).
        if let (Some(target), Some(h)) = (self.auto_alpha, policy_entropy) {
            let la = p.vector(super::super::ALPHA_PARAM)?;
            let alpha = la.reshape_like(&(1, 1)).exp();
            objective = objective - ops::sum_all(alpha) * (h - target as f32);
        }
        Ok(Forward {
            terms: seqs,
            elbo: elbo_seq,
            objective,
            policy_entropy,
            overshooting,
        })
    }
}

/// The training form of a closed-form KL term, summed (to be subtracted): KL balancing and
/// free nats as the term's [`Shaping`] says (`crate::objective`), the batch mask through
/// `masked`.
#[allow(clippy::too_many_arguments)]
fn kl_objective<T: LTape, P: Params<T>>(
    p: &P,
    form: KlForm,
    qdist: DistVals<T>,
    pdist: DistVals<T>,
    kk: usize,
    floor: Option<Floor>,
    balance: Option<(f32, f32)>,
    masked: &dyn Fn(T2<T>) -> T2<T>,
) -> Result<T0<T>, RtError> {
    let per_el = match floor {
        Some(Floor::Element(n)) => Some(n),
        _ => None,
    };
    let per_step = match floor {
        Some(Floor::Row(n)) => Some(n),
        _ => None,
    };
    let train_rows = |q: DistVals<T>, pp: DistVals<T>| -> Result<T2<T>, RtError> {
        let (r, elementwise) = kl_rows(form, q, pp, kk, per_el.is_some())?;
        let r = match (per_el, per_step) {
            (Some(nats), _) if elementwise => ops::row_sum(r.clamp(nats, f32::MAX)),
            (_, Some(nats)) => r.clamp(nats, f32::MAX),
            _ if elementwise => ops::row_sum(r),
            _ => r,
        };
        Ok(masked(r))
    };
    let trained = match balance {
        Some((on_q, on_p)) => {
            let lhs = train_rows(qdist.stop(p), pdist.clone_vals())?;
            let rhs = train_rows(qdist, pdist.stop(p))?;
            lhs * on_p + rhs * on_q
        }
        None => train_rows(qdist, pdist)?,
    };
    Ok(match floor {
        Some(Floor::Mean(nats)) => {
            let n = trained.shape().0 as f32;
            ops::mean_all(trained).clamp(nats as f32, f32::MAX) * n
        }
        _ => ops::sum_all(trained),
    })
}
