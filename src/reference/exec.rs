//! The reference forward pass, part 1: the chain. Data and `init` values are loaded, then
//! the sampled latents and deterministic states run one step at a time (statics first), and
//! q's distribution parameters are recorded for the terms. The parts: `read.rs` (reads of
//! the store at a step or over a range), `dist.rs` (family dispatch: parameters, sampling,
//! log-densities, closed-form KLs and entropies),
//! `terms.rs` (every ELBO term once over its range, and the training objective),
//! `simulate.rs` (draws from p for `vic sample`), `overshoot.rs`, `predictive.rs`.

use super::eval::{to_rows, Env, Evaluator, Val};
use super::LTape;
use crate::derive::Range;
use crate::ir::*;
use crate::lower::plan::ChainVar;
use crate::lower::{Batch, Program};
use crate::runtime::nets::gru;
use crate::runtime::nets::params::Params;
use crate::runtime::rng::Rng;
use crate::runtime::{ops, RtError, T0, T2};
use dfdx::prelude::*;
use std::collections::HashMap;

mod dist;
mod forward;
pub(crate) mod overshoot;
mod predictive;
pub use predictive::ChainPosterior;
mod read;
mod simulate;
mod terms;

use dist::*;

/// What the chain recorded when it sampled a latent at one step.
struct Rec<T> {
    family: Family,
    dist: DistVals<T>,
    /// TanhNormal's pre-squash value.
    pre: Option<T2<T>>,
}

/// The result of a forward pass.
pub struct Forward<T> {
    /// Per term, `(b, 1)`: the term's value per sequence (a KL as the non-negative KL).
    pub terms: Vec<T2<T>>,
    /// `(b, 1)`: the ELBO estimate per sequence (no objective modifiers). With IWAE, the
    /// IWAE bound per original sequence.
    pub elbo: T2<T>,
    /// The training objective to maximise, summed over the batch (modifiers, surrogates).
    pub objective: T0<T>,
    /// Mean entropy per step of auto-α policies, for temperature tuning.
    pub policy_entropy: Option<f32>,
    /// Latent overshooting (`overshooting = D`): for d = 2 … D, `(b, 1)` per sequence, the
    /// d-step open-loop prior KLs summed over steps and latents (zeros when T ≤ d).
    pub overshooting: Vec<T2<T>>,
}

/// A net over time's per-step outputs, and their stacked form once a range needs it.
type RnnOut<T> = (Vec<T2<T>>, Option<T2<T>>);

/// Recorded q parameters over a range: the family, the stacked parameters, TanhNormal's
/// pre-squash values.
type Recorded<T> = (Family, DistVals<T>, Option<T2<T>>);

struct Store<T> {
    b: usize,
    tt: usize,
    k: usize,
    statics: HashMap<VarId, T2<T>>,
    steps: HashMap<VarId, Vec<Option<T2<T>>>>,
    padded: HashMap<VarId, T2<T>>,
    rnn: HashMap<*const Expr, RnnOut<T>>,
    recs: HashMap<VarId, Vec<Option<Rec<T>>>>,
    /// Σ log q of score-function samples per sequence.
    sf_logq: Option<T2<T>>,
    /// With an enumerated latent: q(c = value of the row's block | x), `(V·b, 1)`.
    enum_weight: Option<T2<T>>,
    /// Whether an enumerated latent is enumerated over a tiled batch (the ELBO), or drawn
    /// like any other (`simulate`, whose batch is not tiled).
    enumerate: bool,
}

fn idx(k: usize, t: i64) -> usize {
    (t + k as i64 - 1) as usize
}

impl<T: LTape> Store<T> {
    fn step(&self, v: VarId, t: i64) -> Result<T2<T>, RtError> {
        self.steps
            .get(&v)
            .and_then(|s| s.get(idx(self.k, t)))
            .and_then(|x| x.clone())
            .ok_or_else(|| RtError::Shape(format!("variable {v} has no value at step {t}")))
    }
}

/// Stack per-step tensors (each `(b, d)`) time-major.
fn stack<T: LTape>(xs: Vec<T2<T>>) -> Result<T2<T>, RtError> {
    if xs.len() == 1 {
        return Ok(xs.into_iter().next().expect("one"));
    }
    gru::stack_time(xs)
}

/// Repeat a `(b, d)` tensor over `tp` steps: `(tp·b, d)`.
fn tile<T: LTape>(x: T2<T>, tp: usize) -> T2<T> {
    if tp == 1 {
        return x;
    }
    let (b, d) = *x.shape();
    x.broadcast_like::<_, Axis<0>>(&(tp, b, d))
        .reshape_like(&(tp * b, d))
}

/// `(tp·b, 1)` → `(b, 1)` summing over steps.
fn per_seq<T: LTape>(x: T2<T>, b: usize, tp: usize) -> T2<T> {
    if tp == 1 {
        return x;
    }
    x.reshape_like(&(tp, b))
        .sum::<(usize,), Axis<0>>()
        .reshape_like(&(b, 1))
}

#[derive(Clone, Copy)]
enum At {
    Static,
    Step(u32),
    Range(u32),
}

struct Ctx<'a, T, P> {
    prog: &'a Program,
    p: &'a P,
    s: Store<T>,
}

struct AtEnv<'c, 'a, T, P> {
    cx: &'c mut Ctx<'a, T, P>,
    at: At,
}

impl<T: LTape, P: Params<T>> Env<T> for AtEnv<'_, '_, T, P> {
    fn rows(&self) -> usize {
        self.cx.rows(self.at)
    }
    fn read(&mut self, var: VarId, time: TimeRef) -> Result<T2<T>, RtError> {
        self.cx.read(var, time, self.at)
    }
    fn rnn(&mut self, e: &Expr) -> Result<T2<T>, RtError> {
        self.cx.rnn(e, self.at)
    }
}

impl Program {
    /// Data and inputs, init values (steps ≤ 0), then the chain: static variables, then one
    /// step at a time (q where it exists); with `record`, q's parameters are kept for the terms.
    fn chain_pass<'a, T: LTape, P: Params<T>>(
        &'a self,
        p: &'a P,
        batch: &Batch,
        rng: &mut Rng,
        record: bool,
    ) -> Result<Ctx<'a, T, P>, RtError> {
        let m = &self.model;
        let (b, tt) = (batch.b, batch.t.max(1));
        let mut cx = self.context(p, b, tt);
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
            cx.produce(cv, At::Static, rng, record)?;
        }
        for t in 1..=tt as u32 {
            for cv in &self.plan.timed {
                cx.produce(cv, At::Step(t), rng, record)?;
            }
        }
        Ok(cx)
    }

    fn context<'a, T: LTape, P: Params<T>>(
        &'a self,
        p: &'a P,
        b: usize,
        tt: usize,
    ) -> Ctx<'a, T, P> {
        let s = Store {
            b,
            tt,
            k: self.lag_steps(),
            statics: HashMap::new(),
            steps: HashMap::new(),
            padded: HashMap::new(),
            rnn: HashMap::new(),
            recs: HashMap::new(),
            sf_logq: None,
            enum_weight: None,
            enumerate: true,
        };
        Ctx { prog: self, p, s }
    }
}

impl<'a, T: LTape, P: Params<T>> Ctx<'a, T, P> {
    fn m(&self) -> &'a Model {
        &self.prog.model
    }

    /// A data variable's host values (time-major for timed ones); steps with `keep(t)`
    /// false (0-based) stay empty.
    fn load(
        &mut self,
        v: VarId,
        host: Vec<f32>,
        keep: impl Fn(usize) -> bool,
    ) -> Result<(), RtError> {
        let (b, tt, k) = (self.s.b, self.s.tt, self.s.k);
        let var = &self.m().vars[v];
        let size = var.ty.size();
        let dev = self.p.device().clone();
        if var.timed {
            let x = self.p.input(ops::from_host(&dev, host, tt * b, size));
            let mut steps: Vec<Option<T2<T>>> = (0..tt + k).map(|_| None).collect();
            for (t, xt) in gru::split_time(x, tt)?.into_iter().enumerate() {
                if keep(t) {
                    steps[idx(k, t as i64 + 1)] = Some(xt);
                }
            }
            self.s.steps.insert(v, steps);
        } else {
            let x = self.p.input(ops::from_host(&dev, host, b, size));
            self.s.statics.insert(v, x);
        }
        Ok(())
    }

    /// Compute a chain variable at `at` from its producer and store it; for a sampled latent
    /// with `record`, keep q's parameters for the terms.
    fn produce(
        &mut self,
        cv: &ChainVar,
        at: At,
        rng: &mut Rng,
        record: bool,
    ) -> Result<(), RtError> {
        let m = self.m();
        let t = match at {
            At::Step(t) => t,
            _ => 1,
        };
        let prod = cv.at(t).ok_or_else(|| {
            RtError::Shape(format!(
                "no factor for `{}` at step {t}",
                m.vars[cv.var].name
            ))
        })?;
        let size = m.vars[cv.var].ty.size();
        let (value, rec) = match &m.factors[prod.factor].body {
            FactorBody::Define(e) => (self.eval_rows(e, at, size)?, None),
            FactorBody::Sample(_) => {
                let (x, r) = self.sample(cv.var, prod.factor, at, rng)?;
                (x, record.then_some(r))
            }
        };
        let (tt, k) = (self.s.tt, self.s.k);
        match at {
            At::Step(t) => {
                if let Some(r) = rec {
                    let recs = self
                        .s
                        .recs
                        .entry(cv.var)
                        .or_insert_with(|| (0..tt).map(|_| None).collect());
                    recs[t as usize - 1] = Some(r);
                }
                let steps = self
                    .s
                    .steps
                    .entry(cv.var)
                    .or_insert_with(|| (0..tt + k).map(|_| None).collect());
                steps[idx(k, i64::from(t))] = Some(value);
            }
            _ => {
                if let Some(r) = rec {
                    self.s.recs.insert(cv.var, vec![Some(r)]);
                }
                self.s.statics.insert(cv.var, value);
            }
        }
        Ok(())
    }

    /// The `init` values (steps ≤ 0).
    fn load_inits(&mut self) -> Result<(), RtError> {
        let (tt, k) = (self.s.tt, self.s.k);
        for i in &self.m().inits {
            let size = self.m().vars[i.var].ty.size();
            let x = self.eval_rows(&i.value, At::Static, size)?;
            let entry = self
                .s
                .steps
                .entry(i.var)
                .or_insert_with(|| (0..tt + k).map(|_| None).collect());
            if let Some(slot) = entry.get_mut(idx(k, i.step)) {
                *slot = Some(x);
            }
        }
        Ok(())
    }

    fn rows(&self, at: At) -> usize {
        match at {
            At::Static | At::Step(_) => self.s.b,
            At::Range(s) => (self.s.tt + 1 - s as usize) * self.s.b,
        }
    }

    fn eval(&mut self, e: &Expr, at: At) -> Result<Val<T>, RtError> {
        let ev = Evaluator::new(self.p, self.m());
        let mut env = AtEnv { cx: self, at };
        ev.eval(e, &mut env)
    }

    fn eval_rows(&mut self, e: &Expr, at: At, n: usize) -> Result<T2<T>, RtError> {
        let rows = self.rows(at);
        let v = self.eval(e, at)?;
        Ok(to_rows(self.p, v, rows, n))
    }
}
