//! Latent overshooting (PlaNet: Hafner et al. 2019, "Learning Latent Dynamics for Planning
//! from Pixels", §4), the definition; the fused runtime lowers the same windows
//! (`fused/build/overshoot.rs`, checked against this by `tests/fused.rs`).
//!
//! For a distance `d ≥ 2` and every step `t > d`, the d-step open-loop prior of a latent is
//! p's transition applied `d` times from the posterior sample at `t − d`: the chain variables
//! (latents and p's deterministic states) at `t − d` are taken from q's chain, steps
//! `t − d + 1 … t − 1` are sampled from p, and step `t`'s p distribution is the prior. The
//! term is `KL(sg(q(s_t | …)) ‖ p_d(s_t))` (q's recorded parameters at `t`, with PlaNet's
//! stop-gradient on the posterior), summed over steps and latents per sequence. At step t
//! itself, p's chain variables that precede the first target in sampling order (an RSSM's
//! deterministic h_t) are computed from the open-loop values first. All starts
//! run at once: a window batch of `(T − d)·B` rows whose sequence `(s − 1)·B + i` is steps
//! `s … s + d` of sequence `i`, so its rows line up with q's time-major records at `d+1 … T`.
//!
//! The terms are not part of the ELBO: the training objective subtracts
//! `kl_weight / D · Σ_{d=2..D} KL_d` (the one-step KL keeps its own weight), and
//! [`super::Forward::overshooting`] reports each distance's value per sequence.

use super::*;
use crate::lower::overshoot::targets;

impl<'a, T: LTape, P: Params<T>> Ctx<'a, T, P> {
    /// A window batch of `(T − d)·B` rows and `d + 1` steps: sequence `(s − 1)·B + i` is steps
    /// `s … s + d` of sequence `i` (data and inputs windowed, statics repeated), with window
    /// step 1 holding the posterior chain at step `s`. Needs `T > d`.
    pub(super) fn window(&self, batch: &Batch, d: usize) -> Result<Ctx<'a, T, P>, RtError> {
        let m = self.m();
        let (b, tt, k) = (self.s.b, self.s.tt, self.s.k);
        let starts = tt - d;
        let bw = starts * b;
        let mut w: Ctx<'_, T, P> = self.prog.context(self.p, bw, d + 1);
        // Data and inputs, windowed: window step u (1-based) of start s is step s + u − 1.
        for (v, var) in m.vars.iter().enumerate() {
            if !matches!(var.role, Role::Observed | Role::Input) {
                continue;
            }
            let Some(host) = batch.data.get(&v) else {
                continue;
            };
            let size = var.ty.size();
            let out = if var.timed {
                let mut out = Vec::with_capacity((d + 1) * bw * size);
                for u in 0..=d {
                    for s in 0..starts {
                        let lo = (s + u) * b * size;
                        out.extend_from_slice(&host[lo..lo + b * size]);
                    }
                }
                out
            } else {
                host.repeat(starts)
            };
            w.load(v, out, |_| true)?;
        }
        // Static chain values, repeated for every start.
        for (v, x) in &self.s.statics {
            if !w.s.statics.contains_key(v) {
                w.s.statics.insert(*v, tile(x.clone(), starts));
            }
        }
        // Window step 1: the posterior chain at steps 1 … T − d.
        for (v, steps) in &self.s.steps {
            if !matches!(m.vars[*v].role, Role::Latent | Role::State) {
                continue;
            }
            let parts: Option<Vec<T2<T>>> = (1..=starts as i64)
                .map(|s| steps.get(idx(k, s)).cloned().flatten())
                .collect();
            let Some(parts) = parts else { continue };
            let slot =
                w.s.steps
                    .entry(*v)
                    .or_insert_with(|| (0..d + 1 + k).map(|_| None).collect());
            slot[idx(k, 1)] = Some(stack(parts)?);
        }
        Ok(w)
    }

    /// The distance-`d` terms, `(b, 1)` per sequence summed over steps and target latents;
    /// `None` when the sequences are too short (T ≤ d).
    pub(super) fn overshooting(
        &mut self,
        batch: &Batch,
        d: usize,
        rng: &mut Rng,
    ) -> Result<Option<T2<T>>, RtError> {
        let m = self.m();
        let (b, tt) = (self.s.b, self.s.tt);
        if tt <= d {
            return Ok(None);
        }
        let starts = tt - d;
        let bw = starts * b;
        let mut w = self.window(batch, d)?;
        // Open loop: p's general cases at window steps 2 … d.
        let order = crate::lower::plan::open_loop_order(m, false);
        for u in 2..=d as u32 {
            for cv in &order {
                w.produce(cv, At::Step(u), rng, false)?;
            }
        }
        // Window step d + 1: what precedes the first target in sampling order (p's
        // deterministic states, such as an RSSM's h_t, that the transition reads).
        let targets = targets(m);
        for cv in &order {
            if targets.iter().any(|(v, _)| *v == cv.var) {
                break;
            }
            w.produce(cv, At::Step(d as u32 + 1), rng, false)?;
        }
        // The d-step priors at window step d + 1 against q's records at steps d + 1 … T.
        let mut total: Option<T2<T>> = None;
        for (v, pf) in targets {
            let FactorBody::Sample(pd) = &m.factors[pf].body else {
                continue;
            };
            let size = m.vars[v].ty.size();
            let pdist = w.dist(pd, At::Step(d as u32 + 1), size)?.fresh();
            let (_, qdist, _) = self.recorded(v, Range::From { t: d as u32 + 1 })?;
            // `targets` keeps Normal latents only.
            let (mut r, _) = kl_rows(
                crate::derive::KlForm::NormalNormal,
                qdist.stop(self.p),
                pdist,
                1,
                false,
            )?;
            if let Some(mk) = &batch.mask {
                let mk = mk[d * b..tt * b].to_vec();
                r = r * self.p.input(ops::from_host(self.p.device(), mk, bw, 1));
            }
            let r = per_seq(r, b, starts);
            total = Some(match total.take() {
                None => r,
                Some(a) => a + r,
            });
        }
        Ok(total)
    }
}
