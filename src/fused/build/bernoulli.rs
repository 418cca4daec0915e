//! Lowering of Bernoulli (`binary[D]`) latents to the fused program: draws with
//! straight-through or score-function gradients, and their terms (closed-form
//! Bernoulli ‖ Bernoulli KL and entropy, Monte Carlo log-ratios and entropies).
//!
//! Input: the [`Builder`] at a Bernoulli latent's factor or at one of its terms. Output: ops
//! of `fused::families` (`BernSample`, `BernKl`, `BernEntropy`) and the shared
//! `BernoulliLogProb`; the logits are recorded beside the categorical ones (`Disc::cats`) and
//! a score-function draw's `Σ log q` rows join [`super::discrete::Disc::sf`].
//! Invariants: the semantics are the reference path's (`reference/exec/dist.rs`,
//! `runtime/dist/bernoulli.rs`): one uniform per element in row-major order, `1` where
//! `u < σ(l)`; a closed-form KL takes balancing and free nats as a Normal one does. Exact
//! enumeration is not lowered (`fused::caps` sends it to the reference path).

use super::*;
use crate::fused::families::FamOp;

impl Builder<'_> {
    /// Whether `v` is a Bernoulli (binary) latent.
    pub(super) fn is_bernoulli(&self, v: VarId) -> bool {
        matches!(self.m.vars[v].ty, VarType::Binary { .. })
    }

    /// Draw a Bernoulli latent at `at` into `slot`.
    pub(super) fn produce_bernoulli(&mut self, v: VarId, d: &Dist, at: At, slot: View) -> R<()> {
        let var = &self.m.vars[v];
        let VarType::Binary { size } = var.ty else {
            return unsup(format!("a Bernoulli draw of `{}`", var.name));
        };
        let DistArgs::Logits(l) = &d.args else {
            return unsup("Bernoulli parameters");
        };
        let est = (self.prog.estimators.get(&v).copied()).unwrap_or(Estimator::Reparam);
        let st = match est {
            Estimator::StraightThrough => true,
            Estimator::ScoreFunction => false,
            _ => return unsup(format!("the estimator of `{}`", var.name)),
        };
        let rows = self.rows(at);
        let lv = self.eval(l, at)?;
        let lv = self.as_rows(lv, rows, size)?;
        let logits = self.record_logits(v, lv, at);
        let u = self.draw_uniforms(v, size, at);
        if u.rows != slot.rows || self.g.cols(u) != self.g.cols(slot) {
            return unsup(format!("the draw of `{}`", self.m.vars[v].name));
        }
        self.g.bufs[slot.buf].grad = st;
        self.op(Op::Fam(FamOp::BernSample {
            logits,
            u,
            out: slot,
            st,
        }));
        if !st {
            let lq = self.bern_log_prob(slot, logits);
            self.disc.sf.push(lq);
        }
        Ok(())
    }

    /// `Σ_cols log Bern(x; σ(l))` per row.
    fn bern_log_prob(&mut self, x: View, logits: View) -> View {
        let grad = self.g.grad(x) || self.g.grad(logits);
        let out = self.temp(x.rows, 1, grad);
        self.op(Op::BernoulliLogProb { x, logits, out });
        out
    }

    /// A KL-like or entropy term of a Bernoulli latent: its rows and head.
    pub(super) fn bernoulli_term(&mut self, term: &crate::derive::Term, at: At) -> R<(View, Head)> {
        let m = self.m;
        match &term.kind {
            TermKind::Kl { p, .. } | TermKind::LogRatio { p, .. } => {
                let f = &m.factors[p.factor];
                let v = f.var;
                let FactorBody::Sample(pd) = &f.body else {
                    return unsup("a KL against a definition");
                };
                if pd.family != Family::Bernoulli {
                    return unsup(format!("a KL of a Bernoulli against {}", pd.family.name()));
                }
                let size = m.vars[v].ty.size();
                let Some(q) = self.cat_rows(v, at) else {
                    return unsup("a KL of an unsampled latent");
                };
                let pl = self.cat_logits(pd, at, size, false, false)?;
                if pl.rows != q.rows {
                    return unsup("a Bernoulli KL's rows");
                }
                match term.compute {
                    Compute::Kl(KlForm::BernoulliBernoulli) => {
                        // Balancing and per-element free nats here; the factor and the
                        // other floors are the loss head's (`engine`), as for a Normal KL.
                        let sh = shaping(&term.modifiers, 1.0);
                        let (gq, gp) = sh.balance.unwrap_or((1.0, 1.0));
                        let floor = match sh.floor {
                            Some(Floor::Element(n)) => Some(n),
                            Some(Floor::Row(_) | Floor::Mean(_)) | None => None,
                        };
                        let out = self.temp(q.rows, 1, true);
                        self.op(Op::Fam(FamOp::BernKl {
                            q,
                            p: pl,
                            out,
                            gq,
                            gp,
                            floor,
                        }));
                        Ok((out, Head::Kl))
                    }
                    Compute::LogRatio => {
                        let z = self.values(v, term.range)?;
                        let lp = self.bern_log_prob(z, pl);
                        let lq = self.bern_log_prob(z, q);
                        let rows = lp.rows;
                        Ok((
                            self.bin_views(Bin::Sub, lp, Bc::Full, lq, Bc::Full, rows, 1),
                            Head::Plain,
                        ))
                    }
                    c => unsup(format!("the Bernoulli term {c:?}")),
                }
            }
            TermKind::Entropy { q, .. } => {
                let v = m.factors[q.factor].var;
                let Some(ql) = self.cat_rows(v, at) else {
                    return unsup("an entropy of an unsampled latent");
                };
                let rows = match term.compute {
                    Compute::Entropy(EntropyForm::Bernoulli) => {
                        let out = self.temp(ql.rows, 1, true);
                        self.op(Op::Fam(FamOp::BernEntropy { logits: ql, out }));
                        out
                    }
                    Compute::EntropyMc => {
                        let z = self.values(v, term.range)?;
                        let lq = self.bern_log_prob(z, ql);
                        self.unary(Un::Affine(-1.0, 0.0), lq)
                    }
                    c => return unsup(format!("the entropy {c:?}")),
                };
                Ok((rows, Head::Entropy))
            }
            _ => unsup("a Bernoulli latent's term"),
        }
    }
}
