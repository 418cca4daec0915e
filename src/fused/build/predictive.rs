//! Posterior predictive programs: q's chain on the data, lowered exactly as training lowers
//! it, then each observed variable drawn from its p factor given the posterior — the
//! reconstructions x̃ ~ p(x | z), z ~ q(z | x) of `vic sample --posterior`.
//!
//! Input: the builder after [`Builder::run`] (the chain). Output: per observed variable one
//! draw view per step (static: one), and the latents' buffers. Invariants: the draws' noise
//! is pushed after the chain's, static variables first, then each timed one step by step —
//! the reference's order ([`crate::lower::Program::posterior_predictive`]) — so the same seed
//! gives the same draws on both runtimes; p's reads of observed variables see the data.

use super::*;
use crate::fused::families::{FamOp, Noise};
use crate::lower::plan::prior_order;

/// A lowered posterior predictive program.
pub struct Predictive {
    /// The program (no terms: nothing is trained).
    pub built: Built,
    /// Per observed variable: its draw at each step `1..=T` (`None` where p has no factor),
    /// one for a static variable.
    pub draws: Vec<(VarId, Vec<Option<View>>)>,
    /// Each latent's buffer (a timed one padded as the chain's, `k` steps first).
    pub latents: Vec<(VarId, BufId)>,
}

/// Lower `prog`'s posterior predictive for `b` sequences of `tt` steps.
pub fn build_predictive(prog: &Program, params: &ParamIndex, b: usize, tt: usize) -> R<Predictive> {
    let disc = discrete::Disc::new(prog, b)?;
    if disc.en.is_some() {
        return unsup("posterior predictive draws of a model with an enumerated latent");
    }
    let mut bd = Builder::blank(prog, params, b, tt, disc);
    bd.run()?;
    let draws = bd.predictive_draws()?;
    let mut latents: Vec<(VarId, BufId)> = (bd.vars.iter())
        .filter(|(v, _)| bd.m.vars[**v].role == Role::Latent)
        .map(|(v, b)| (*v, *b))
        .collect();
    latents.sort();
    Ok(Predictive {
        built: bd.finish(Vec::new()),
        draws,
        latents,
    })
}

impl Builder<'_> {
    fn predictive_draws(&mut self) -> R<Vec<(VarId, Vec<Option<View>>)>> {
        let m = self.m;
        let (statics, timed) = prior_order(m);
        let observed = |cv: &&ChainVar| m.vars[cv.var].role == Role::Observed;
        let mut out = Vec::new();
        for cv in statics.iter().filter(observed) {
            if let Some(prod) = cv.at(1) {
                let x = self.observed_draw(cv.var, prod.factor, At::Static)?;
                out.push((cv.var, vec![Some(x)]));
            }
        }
        for cv in timed.iter().filter(observed) {
            let mut steps = Vec::with_capacity(self.tt);
            for t in 1..=self.tt as u32 {
                steps.push(match cv.at(t) {
                    Some(prod) => Some(self.observed_draw(cv.var, prod.factor, At::Step(t))?),
                    None => None,
                });
            }
            out.push((cv.var, steps));
        }
        Ok(out)
    }

    /// A draw of observed `v` from factor `f` at `at` (no gradient).
    fn observed_draw(&mut self, v: VarId, f: FactorId, at: At) -> R<View> {
        let m = self.m;
        let FactorBody::Sample(d) = &m.factors[f].body else {
            return unsup(format!("a draw of `{}` from a definition", m.vars[v].name));
        };
        let size = m.vars[v].ty.size();
        let rows = self.rows(at);
        let out = self.temp(rows, size, false);
        match (d.family, &d.args, m.vars[v].ty) {
            (Family::Bernoulli, DistArgs::Logits(l), _) => {
                let lv = self.eval(l, at)?;
                let logits = self.as_rows(lv, rows, size)?;
                let u = self.fresh_noise(rows, size, Noise::Uniform);
                self.op(Op::Fam(FamOp::BernSample {
                    logits,
                    u,
                    out,
                    st: false,
                }));
            }
            (Family::Categorical, DistArgs::Logits(l), VarType::OneHot { groups, classes }) => {
                let lv = self.eval(l, at)?;
                let logits = self.as_rows(lv, rows, size)?;
                let u = self.fresh_noise(rows, groups, Noise::Uniform);
                let probs = self.temp(rows, size, false);
                self.op(Op::CatSample {
                    logits,
                    u,
                    probs,
                    out,
                    classes,
                    st: false,
                });
            }
            (Family::Poisson, DistArgs::Params(_), _) => {
                let (rate, _) = self.dist(d, at, size, None)?;
                let u = self.fresh_noise(rows, size, Noise::Uniform);
                self.op(Op::Fam(FamOp::Special(
                    crate::fused::special::SpecialOp::PoissonSample { rate, u, out },
                )));
            }
            (fam, _, _) => {
                let (Some(kind), (l, Some(s))) =
                    (families::noise_of(fam), self.dist(d, at, size, None)?)
                else {
                    return unsup(format!("drawing `{}` from {}", m.vars[v].name, fam.name()));
                };
                let eps = self.fresh_noise(rows, size, kind);
                let pre = match fam {
                    Family::TanhNormal => Some(self.temp(rows, size, false)),
                    _ => self.third(d, at, size, None)?,
                };
                self.draw(fam, (l, s), eps, out, pre)?;
            }
        }
        Ok(out)
    }
}
