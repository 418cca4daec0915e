//! Posterior predictive programs: q's chain on the data, lowered exactly as training lowers
//! it, then each observed variable drawn from its p factor given the posterior — the
//! reconstructions x̃ ~ p(x | z), z ~ q(z | x) of `vic sample --posterior`.
//!
//! One-step predictions (`--one-step`) are a window of distance 1 after the chain (the
//! windows of `overshoot.rs`): p run one step open loop from the posterior at `t − 1`.
//!
//! Input: the builder after [`Builder::run`] (the chain). Output: per observed variable one
//! draw view per step (static: one), and the latents' buffers. Invariants: the draws' noise
//! is pushed after the chain's, static variables first, then each timed one step by step —
//! the reference's order ([`crate::lower::Program::posterior_predictive`]) — so the same seed
//! gives the same draws on both runtimes; p's reads of observed variables see the data.

use super::*;
use crate::fused::families::{FamOp, Noise};
use crate::lower::plan::{open_loop_order, prior_order};

/// A lowered posterior predictive program.
pub struct Predictive {
    /// The program (no terms: nothing is trained).
    pub built: Built,
    /// Per observed variable: its draw at each step `1..=T` (`None` where p has no factor),
    /// one for a static variable.
    pub draws: Vec<(VarId, Vec<Option<View>>)>,
    /// The buffers read out whole: the latents (reconstructions) or every variable (draws
    /// from p); a timed one padded as the chain's, `k` steps first.
    pub values: Vec<(VarId, BufId)>,
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
        values: latents,
    })
}

/// Lower `prog`'s one-step predictive for `b` sequences of `tt` steps: a fresh posterior
/// chain, then p one step open loop from each of its steps `s < T`; each draw (`draws`: one
/// per time-indexed observed variable p draws) has `(T − 1)·b` rows, row `(s − 1)·b + i`
/// predicting step `s + 1` of sequence `i` (none when `tt < 2`).
pub fn build_one_step(prog: &Program, params: &ParamIndex, b: usize, tt: usize) -> R<Predictive> {
    let disc = discrete::Disc::new(prog, b)?;
    if disc.en.is_some() {
        return unsup("one-step predictions of a model with an enumerated latent");
    }
    let mut bd = Builder::blank(prog, params, b, tt, disc);
    bd.run()?;
    let draws = if tt < 2 { Vec::new() } else { bd.one_step()? };
    Ok(Predictive {
        built: bd.finish(Vec::new()),
        draws: draws.into_iter().map(|(v, x)| (v, vec![Some(x)])).collect(),
        values: Vec::new(),
    })
}

/// Lower draws from p for `b` sequences of `tt` steps (`vic sample`): with `condition = k`,
/// q's chain on the first `k` steps of the data and p open loop after; `k = 0` is the prior
/// predictive. Every variable with a buffer is in `values` (inputs and observed ones too):
/// the reference's [`crate::lower::Program::simulate`] returns them all.
pub fn build_draws(
    prog: &Program,
    params: &ParamIndex,
    b: usize,
    tt: usize,
    condition: usize,
) -> R<Predictive> {
    let m = &prog.model;
    if let Some(why) = draws_lack(m) {
        return unsup(format!("draws with {why}"));
    }
    // Draws are draws: an enumerated latent is sampled, not summed over.
    let mut bd = Builder::blank(prog, params, b, tt, Default::default());
    bd.sampling = true;
    let (prior_static, prior_timed) = prior_order(m);
    let plan = &prog.plan;
    if condition > 0 {
        // Conditioned: static observed variables are the data's, never drawn.
        bd.chain(&plan.statics, |t| {
            if (t as usize) <= condition {
                &plan.timed
            } else {
                &prior_timed
            }
        })?;
    } else {
        bd.chain(&prior_static, |_| &prior_timed)?;
    }
    let mut values: Vec<(VarId, BufId)> = bd.vars.iter().map(|(v, b)| (*v, *b)).collect();
    values.sort();
    Ok(Predictive {
        built: bd.finish(Vec::new()),
        draws: Vec::new(),
        values,
    })
}

/// What keeps the fused runtime from drawing from `m`, decided before anything is built: a
/// net over time reads whole sequences, which a draw writes step by step; an improper (Flat)
/// factor of p has no draws on any runtime (the reference says so).
pub fn draws_lack(m: &Model) -> Option<&'static str> {
    if m.nets.iter().any(|n| matches!(n.kind, NetKind::Rnn { .. })) {
        return Some("nets over time");
    }
    let flat = |f: &Factor| matches!(&f.body, FactorBody::Sample(d) if d.family == Family::Flat);
    (m.factors.iter().any(|f| f.block == Block::P && flat(f))).then_some("a Flat prior")
}

/// What keeps the fused runtime from drawing `m`'s one-step predictions (its windows read
/// no static variables and no nets over time), decided before anything is built.
pub fn one_step_lacks(m: &Model) -> Option<&'static str> {
    if m.vars.iter().any(|v| !v.timed) {
        return Some("static variables");
    }
    if m.nets.iter().any(|n| matches!(n.kind, NetKind::Rnn { .. })) {
        return Some("nets over time");
    }
    None
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
    pub(super) fn observed_draw(&mut self, v: VarId, f: FactorId, at: At) -> R<View> {
        let m = self.m;
        let FactorBody::Sample(d) = &m.factors[f].body else {
            return unsup(format!("a draw of `{}` from a definition", m.vars[v].name));
        };
        let out = self.temp(self.rows(at), m.vars[v].ty.size(), false);
        self.draw_into(v, d, at, out)?;
        Ok(out)
    }

    /// A draw of `v` from `d` at `at` into `out`, with fresh noise and no gradient: a
    /// continuous family reparameterised, a Bernoulli or categorical one by inverse CDF (as
    /// the reference draws them: one uniform per element, or per row and group).
    pub(super) fn draw_into(&mut self, v: VarId, d: &Dist, at: At, out: View) -> R<()> {
        let m = self.m;
        let size = m.vars[v].ty.size();
        let rows = self.rows(at);
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
        Ok(())
    }

    /// One-step predictions: p one step open loop from the posterior at every step `s < T`
    /// (a window of distance 1, nothing shared), each time-indexed observed variable drawn at
    /// its step 2 in p's order; `(T − 1)·b` rows per variable, row `(s − 1)·b + i`
    /// predicting step `s + 1` of sequence `i`.
    pub(super) fn one_step(&mut self) -> R<Vec<(VarId, View)>> {
        let m = self.m;
        if let Some(why) = one_step_lacks(m) {
            return unsup(format!("one-step predictions with {why}"));
        }
        let order = open_loop_order(m, true);
        self.in_window(1, Default::default(), |w| {
            let mut out = Vec::new();
            for cv in &order {
                if m.vars[cv.var].role != Role::Observed {
                    w.produce(cv, At::Step(2))?;
                } else if let Some(prod) = cv.at(2) {
                    out.push((cv.var, w.observed_draw(cv.var, prod.factor, At::Step(2))?));
                }
            }
            Ok(out)
        })
    }
}
