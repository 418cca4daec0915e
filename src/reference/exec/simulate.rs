//! Draws from p (`vic sample`): the prior predictive, or q on the first `k` observed steps and
//! p open loop after. Runs the chain of `exec.rs` with enumerated latents drawn, not summed.

use super::*;

impl Program {
    /// Draw from p. Inputs come from `batch` (zeros where it has none). With `condition = k`,
    /// steps `1..=k` follow q on the batch's observed data (a posterior state) and p runs open
    /// loop after; `k = 0` is the prior predictive. Returns every latent, state and observed
    /// variable, batch-major `(b, t, size)` (or `(b, size)` for static ones).
    pub fn simulate<P: Params<dfdx::prelude::NoneTape>>(
        &self,
        p: &P,
        batch: &Batch,
        condition: usize,
        rng: &mut Rng,
    ) -> Result<HashMap<VarId, Vec<f32>>, RtError> {
        type N = dfdx::prelude::NoneTape;
        let m = &self.model;
        let (b, tt, k) = (batch.b, batch.t.max(1), self.lag_steps());
        let mut cx: Ctx<'_, N, P> = self.context(p, b, tt);
        // Draws are draws: an enumerated latent is sampled, not summed over.
        cx.s.enumerate = false;
        for (v, var) in m.vars.iter().enumerate() {
            let size = var.ty.size();
            let observed_part = var.role == Role::Observed && condition > 0;
            if !(var.role == Role::Input || observed_part) {
                continue;
            }
            let host = batch
                .data
                .get(&v)
                .cloned()
                .unwrap_or_else(|| vec![0.0; if var.timed { tt * b * size } else { b * size }]);
            let input = var.role == Role::Input;
            cx.load(v, host, |t| input || t < condition)?;
        }
        cx.load_inits()?;
        let (prior_static, prior_timed) = crate::lower::plan::prior_order(m);
        let conditioned = condition > 0;
        let statics: Vec<crate::lower::plan::ChainVar> = if conditioned {
            self.plan.statics.clone()
        } else {
            prior_static.clone()
        };
        for cv in statics.iter().chain(if conditioned {
            prior_static
                .iter()
                .filter(|c| {
                    m.vars[c.var].role == Role::Observed && !cx.s.statics.contains_key(&c.var)
                })
                .collect::<Vec<_>>()
        } else {
            vec![]
        }) {
            cx.produce(cv, At::Static, rng, false)?;
        }
        for t in 1..=tt as u32 {
            let order = if (t as usize) <= condition {
                &self.plan.timed
            } else {
                &prior_timed
            };
            for cv in order {
                cx.produce(cv, At::Step(t), rng, false)?;
            }
        }
        let mut out = HashMap::new();
        for (v, var) in m.vars.iter().enumerate() {
            let size = var.ty.size();
            if var.timed {
                let Some(steps) = cx.s.steps.get(&v) else {
                    continue;
                };
                let mut host = vec![0.0f32; b * tt * size];
                let mut any = false;
                for t in 0..tt {
                    if let Some(x) = &steps[idx(k, t as i64 + 1)] {
                        any = true;
                        let h = x.as_vec();
                        for i in 0..b {
                            host[(i * tt + t) * size..(i * tt + t + 1) * size]
                                .copy_from_slice(&h[i * size..(i + 1) * size]);
                        }
                    }
                }
                if any {
                    out.insert(v, host);
                }
            } else if let Some(x) = cx.s.statics.get(&v) {
                out.insert(v, x.as_vec());
            }
        }
        Ok(out)
    }
}
