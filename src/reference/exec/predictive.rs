//! Posterior predictive draws for `vic sample --posterior`: q followed on every step of the
//! batch's data (latents and states from the posterior), then each observed variable drawn
//! from its p factor given them — the reconstructions x̃ ~ p(x | z), z ~ q(z | x) — or, for
//! one-step predictions, p run one step open loop from the posterior at t − 1 (the windows of
//! `overshoot.rs` with d = 1): x̃_t ~ p(x_t | z_t), z_t ~ p(z_t | z_{t−1}), z_{t−1} ~ q.
//! A chain summed out in training has its exact posterior here: drawn by forward filtering
//! and backward sampling for the predictive, and its marginals and Viterbi path
//! ([`ChainPosterior`]).

use super::*;

/// The posterior of one chain summed out, over a batch ([`Program::chain_posterior`]).
#[derive(Clone, Debug)]
pub struct ChainPosterior {
    /// The chain's latent.
    pub var: VarId,
    /// Its name.
    pub name: String,
    /// Sequences.
    pub b: usize,
    /// Steps.
    pub t: usize,
    /// States.
    pub k: usize,
    /// Batch-major `[(s·T + t)·K + j]`: p(k[t] = j | the sequence's data).
    pub marginals: Vec<f64>,
    /// Batch-major `[s·T + t]`: the most probable path's state at step t (Viterbi).
    pub viterbi: Vec<usize>,
}

impl ChainPosterior {
    /// Its arrays for an `.npz` beside the posterior predictive draws, the batch's rows read
    /// as `draws` blocks of `seqs` sequences: `<k>_marginals (draws, seqs, T, K)` and
    /// `<k>_viterbi (draws, seqs, T)` (states as floats).
    pub fn arrays(&self, draws: usize, seqs: usize) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let (t, k) = (self.t, self.k);
        vec![
            (
                format!("{}_marginals", self.name),
                vec![draws, seqs, t, k],
                self.marginals.iter().map(|x| *x as f32).collect(),
            ),
            (
                format!("{}_viterbi", self.name),
                vec![draws, seqs, t],
                self.viterbi.iter().map(|x| *x as f32).collect(),
            ),
        ]
    }
}

impl Program {
    /// q followed on every step of the batch's data; the context holds the posterior chain.
    fn posterior_pass<'a, P: Params<dfdx::prelude::NoneTape>>(
        &'a self,
        p: &'a P,
        batch: &Batch,
        rng: &mut Rng,
    ) -> Result<Ctx<'a, dfdx::prelude::NoneTape, P>, RtError> {
        self.chain_pass(p, batch, rng, false)
    }

    /// Why one-step predictions cannot be drawn for this model, if they cannot.
    pub fn one_step_blocker(&self) -> Option<String> {
        let m = &self.model;
        if !m.is_sequential() {
            return Some("the model is static (no steps to predict)".into());
        }
        if m.max_lag() > 1 {
            return Some("p reads further back than one step (lag > 1)".into());
        }
        let (_, timed) = crate::lower::plan::prior_order(m);
        for cv in &timed {
            if !cv
                .producers
                .iter()
                .any(|(c, _)| matches!(c, TimeCase::From(k) if *k <= 2))
            {
                return Some(format!(
                    "p has no general case `{}[t]` from step 2 on",
                    m.vars[cv.var].name
                ));
            }
        }
        None
    }

    /// One-step predictive draws of every time-indexed observed variable, batch-major
    /// `(b, t, size)`; step 1 (no posterior before it) is NaN. See [`Self::one_step_blocker`].
    pub fn one_step_predictive<P: Params<dfdx::prelude::NoneTape>>(
        &self,
        p: &P,
        batch: &Batch,
        rng: &mut Rng,
    ) -> Result<HashMap<VarId, Vec<f32>>, RtError> {
        if let Some(why) = self.one_step_blocker() {
            return Err(RtError::Shape(why));
        }
        let m = &self.model;
        let (b, tt) = (batch.b, batch.t.max(1));
        let cx = self.posterior_pass(p, batch, rng)?;
        let mut out = HashMap::new();
        let observed: Vec<VarId> = (0..m.vars.len())
            .filter(|&v| m.vars[v].role == Role::Observed && m.vars[v].timed)
            .collect();
        for &v in &observed {
            out.insert(v, vec![f32::NAN; b * tt * m.vars[v].ty.size()]);
        }
        if tt < 2 {
            return Ok(out);
        }
        let mut w = cx.window(batch, 1)?;
        for cv in &crate::lower::plan::open_loop_order(m, true) {
            w.produce(cv, At::Step(2), rng, false)?;
        }
        for &v in &observed {
            let size = m.vars[v].ty.size();
            let h = w.s.step(v, 2)?.as_vec();
            let host = out.get_mut(&v).expect("inserted above");
            // Window row (s − 1)·b + i predicts step s + 1 of sequence i.
            for s in 1..tt {
                for i in 0..b {
                    let src = ((s - 1) * b + i) * size;
                    let dst = (i * tt + s) * size;
                    host[dst..dst + size].copy_from_slice(&h[src..src + size]);
                }
            }
        }
        Ok(out)
    }

    /// The posterior of every chain summed out (`derive::marginal`) on `batch`'s data: its
    /// marginals p(k[t] | y) by forward–backward and its most probable path by max-product,
    /// in f64 on the host. In a switching model they are conditional on one draw of the
    /// switched latents from q (the posterior pass draws them from `rng`). Empty when the
    /// model sums out no chain.
    pub fn chain_posterior<P: Params<dfdx::prelude::NoneTape>>(
        &self,
        p: &P,
        batch: &Batch,
        rng: &mut Rng,
    ) -> Result<Vec<ChainPosterior>, RtError> {
        let chains = crate::derive::marginal::chains(&self.model);
        if chains.is_empty() {
            return Ok(Vec::new());
        }
        let mut cx = self.posterior_pass(p, batch, rng)?;
        let mut out = Vec::new();
        for ch in chains {
            let (marginals, viterbi) = cx.chain_posterior(&ch, batch.mask.as_deref())?;
            out.push(ChainPosterior {
                var: ch.var,
                name: self.model.vars[ch.var].name.clone(),
                b: batch.b,
                t: cx.s.tt,
                k: ch.classes,
                marginals,
                viterbi,
            });
        }
        Ok(out)
    }

    /// Posterior predictive draws of every observed variable, and the posterior's latents,
    /// batch-major `(b, t, size)` (or `(b, size)` for static variables). Inputs and
    /// observations come from `batch`; p's reads of other observed variables see the data.
    pub fn posterior_predictive<P: Params<dfdx::prelude::NoneTape>>(
        &self,
        p: &P,
        batch: &Batch,
        rng: &mut Rng,
    ) -> Result<HashMap<VarId, Vec<f32>>, RtError> {
        let m = &self.model;
        let (b, tt, k) = (batch.b, batch.t.max(1), self.lag_steps());
        let mut cx = self.posterior_pass(p, batch, rng)?;
        // A chain summed out in training is drawn from its exact posterior here.
        for ch in crate::derive::marginal::chains(m) {
            cx.sample_chain(&ch, batch.mask.as_deref(), rng)?;
        }
        let (prior_static, prior_timed) = crate::lower::plan::prior_order(m);
        let mut out = HashMap::new();
        for cv in prior_static
            .iter()
            .filter(|c| m.vars[c.var].role == Role::Observed)
        {
            if let Some(prod) = cv.at(1) {
                let (x, _) = cx.sample(cv.var, prod.factor, At::Static, rng)?;
                out.insert(cv.var, x.as_vec());
            }
        }
        for cv in prior_timed
            .iter()
            .filter(|c| m.vars[c.var].role == Role::Observed)
        {
            let size = m.vars[cv.var].ty.size();
            let mut host = vec![0.0f32; b * tt * size];
            for t in 0..tt {
                let Some(prod) = cv.at(t as u32 + 1) else {
                    continue;
                };
                let (x, _) = cx.sample(cv.var, prod.factor, At::Step(t as u32 + 1), rng)?;
                let h = x.as_vec();
                for i in 0..b {
                    host[(i * tt + t) * size..(i * tt + t + 1) * size]
                        .copy_from_slice(&h[i * size..(i + 1) * size]);
                }
            }
            out.insert(cv.var, host);
        }
        for (v, var) in m.vars.iter().enumerate() {
            if var.role != Role::Latent {
                continue;
            }
            let size = var.ty.size();
            if var.timed {
                let Some(steps) = cx.s.steps.get(&v) else {
                    continue;
                };
                let mut host = vec![0.0f32; b * tt * size];
                for t in 0..tt {
                    if let Some(x) = &steps[idx(k, t as i64 + 1)] {
                        let h = x.as_vec();
                        for i in 0..b {
                            host[(i * tt + t) * size..(i * tt + t + 1) * size]
                                .copy_from_slice(&h[i * size..(i + 1) * size]);
                        }
                    }
                }
                out.insert(v, host);
            } else if let Some(x) = cx.s.statics.get(&v) {
                out.insert(v, x.as_vec());
            }
        }
        Ok(out)
    }
}
