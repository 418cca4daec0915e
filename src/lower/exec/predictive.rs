//! Posterior predictive draws for `vic sample --posterior`: q followed on every step of the
//! batch's data (latents and states from the posterior), then each observed variable drawn
//! from its p factor given them — the reconstructions x̃ ~ p(x | z), z ~ q(z | x).

use super::*;

impl Program {
    /// Posterior predictive draws of every observed variable, and the posterior's latents,
    /// batch-major `(b, t, size)` (or `(b, size)` for static variables). Inputs and
    /// observations come from `batch`; p's reads of other observed variables see the data.
    pub fn posterior_predictive<P: Params<dfdx::prelude::NoneTape>>(
        &self,
        p: &P,
        batch: &Batch,
        rng: &mut Rng,
    ) -> Result<HashMap<VarId, Vec<f32>>, RtError> {
        type N = dfdx::prelude::NoneTape;
        let m = &self.model;
        let (b, tt, k) = (batch.b, batch.t.max(1), self.lag_steps());
        let mut cx: Ctx<'_, N, P> = self.context(p, b, tt);
        for (v, var) in m.vars.iter().enumerate() {
            if !matches!(var.role, Role::Observed | Role::Input) {
                continue;
            }
            let host = batch
                .data
                .get(&v)
                .ok_or_else(|| RtError::Shape(format!("no data for `{}`", var.name)))?;
            cx.load(v, host.clone(), |_| true)?;
        }
        cx.load_inits()?;
        for cv in &self.plan.statics {
            cx.produce(cv, At::Static, rng, false)?;
        }
        for t in 1..=tt as u32 {
            for cv in &self.plan.timed {
                cx.produce(cv, At::Step(t), rng, false)?;
            }
        }
        let (prior_static, prior_timed) = super::super::plan::prior_order(m);
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
