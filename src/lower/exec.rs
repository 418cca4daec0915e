//! The forward pass over a batch: the sequential chain (sampled latents and states, one
//! step at a time), then every ELBO term at once over its whole time range.

use super::eval::{to_rows, Env, Evaluator, Val};
use super::plan::ChainVar;
use super::LTape;
use super::Program;
use crate::derive::{Range, TermKind};
use crate::ir::*;
use crate::runtime::dist::{bernoulli, categorical, normal, tanh_normal, uniform};
use crate::runtime::nets::gru;
use crate::runtime::nets::params::Params;
use crate::runtime::rng::{normal_noise, uniform_noise, Rng};
use crate::runtime::{ops, RtError, T0, T2};
use dfdx::prelude::*;
use std::collections::HashMap;

pub(crate) mod overshoot;
mod predictive;

/// A batch of `b` sequences of `t` steps (`t = 1` for static models). Time-major layout:
/// row `step·b + seq`.
#[derive(Clone, Debug)]
pub struct Batch {
    pub b: usize,
    pub t: usize,
    /// Timed variables `(t·b, size)`, static ones `(b, size)`, row-major host data.
    pub data: HashMap<VarId, Vec<f32>>,
    /// `(t·b)`: 1 where the step is observed.
    pub mask: Option<Vec<f32>>,
}

/// Distribution parameters at some rows.
pub enum DistVals<T> {
    LocScale(T2<T>, T2<T>),
    Logits(T2<T>),
    Bounds(T2<T>, T2<T>),
    Flat,
}

impl<T: LTape> DistVals<T> {
    fn clone_vals(&self) -> Self {
        match self {
            DistVals::LocScale(a, b) => DistVals::LocScale(a.clone(), b.clone()),
            DistVals::Logits(a) => DistVals::Logits(a.clone()),
            DistVals::Bounds(a, b) => DistVals::Bounds(a.clone(), b.clone()),
            DistVals::Flat => DistVals::Flat,
        }
    }
    /// A copy with fresh tensor ids (so two sides of a KL never share an id).
    fn fresh(self) -> Self {
        match self {
            DistVals::LocScale(a, b) => DistVals::LocScale(ops::fresh(a), ops::fresh(b)),
            DistVals::Logits(a) => DistVals::Logits(ops::fresh(a)),
            DistVals::Bounds(a, b) => DistVals::Bounds(ops::fresh(a), ops::fresh(b)),
            DistVals::Flat => DistVals::Flat,
        }
    }
    fn stop<P: Params<T>>(&self, p: &P) -> Self {
        let sg = |x: &T2<T>| p.input(ops::stop_gradient(x));
        match self {
            DistVals::LocScale(a, b) => DistVals::LocScale(sg(a), sg(b)),
            DistVals::Logits(a) => DistVals::Logits(sg(a)),
            DistVals::Bounds(a, b) => DistVals::Bounds(sg(a), sg(b)),
            DistVals::Flat => DistVals::Flat,
        }
    }
}

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

/// The `k`-th value of a discrete variable (one-hot groups in row-major order, or bits).
fn enum_value(ty: VarType, mut k: usize) -> Vec<f32> {
    match ty {
        VarType::OneHot { groups, classes } => {
            let mut row = vec![0.0; groups * classes];
            for g in (0..groups).rev() {
                row[g * classes + k % classes] = 1.0;
                k /= classes;
            }
            row
        }
        VarType::Binary { size } => (0..size)
            .map(|i| ((k >> (size - 1 - i)) & 1) as f32)
            .collect(),
        _ => vec![0.0],
    }
}

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

/// `(n·b, 1)` → `(b, 1)`, summing the `n` blocks of a tiled batch.
fn fold_blocks<T: LTape>(x: T2<T>, n: usize) -> T2<T> {
    let orig = x.shape().0 / n;
    x.reshape_like(&(n, orig))
        .sum::<(usize,), Axis<0>>()
        .reshape_like(&(orig, 1))
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
    /// Steps before the first that lags and inits reach.
    pub(crate) fn lag_steps(&self) -> usize {
        self.plan.max_lag.max(self.min_init_lag()) as usize
    }

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

    /// The padded time-major tensor of a timed variable: steps `1−k ..= T`.
    fn padded(&mut self, v: VarId) -> Result<T2<T>, RtError> {
        if let Some(x) = self.s.padded.get(&v) {
            return Ok(x.clone());
        }
        let (b, tt, k) = (self.s.b, self.s.tt, self.s.k);
        let size = self.m().vars[v].ty.size();
        let mut parts = Vec::with_capacity(tt + k);
        for t in (1 - k as i64)..=(tt as i64) {
            let x = match self.s.steps.get(&v).and_then(|s| s[idx(k, t)].clone()) {
                Some(x) => x,
                None => self.p.input(ops::full(self.p.device(), b, size, 0.0)),
            };
            parts.push(x);
        }
        let x = stack(parts)?;
        self.s.padded.insert(v, x.clone());
        Ok(x)
    }

    fn read(&mut self, var: VarId, time: TimeRef, at: At) -> Result<T2<T>, RtError> {
        let (b, tt, k) = (self.s.b, self.s.tt, self.s.k);
        let timed = self.m().vars[var].timed;
        match (time, at) {
            (TimeRef::Static, At::Range(s)) => {
                let x = self
                    .s
                    .statics
                    .get(&var)
                    .cloned()
                    .ok_or_else(|| RtError::Shape(format!("static {var} unset")))?;
                Ok(tile(x, tt + 1 - s as usize))
            }
            (TimeRef::Static, _) => self
                .s
                .statics
                .get(&var)
                .cloned()
                .ok_or_else(|| RtError::Shape(format!("static {var} unset"))),
            (TimeRef::Lag(j), At::Step(t)) => self.s.step(var, i64::from(t) - i64::from(j)),
            (TimeRef::Step(s), _) if timed => self.s.step(var, s),
            (TimeRef::Lag(j), At::Range(s)) => {
                let x = self.padded(var)?;
                let lo = (i64::from(s) - i64::from(j) + k as i64 - 1) as usize * b;
                let hi = (tt as i64 - i64::from(j) + k as i64) as usize * b;
                Ok(ops::rows(x, lo, hi))
            }
            _ => Err(RtError::Shape(format!(
                "read of {var} at {time:?} in {}",
                match at {
                    At::Static => "a static context",
                    At::Step(_) => "a step",
                    At::Range(_) => "a range",
                }
            ))),
        }
    }

    /// A net over time, run once per forward pass over the whole sequence.
    fn rnn(&mut self, e: &Expr, at: At) -> Result<T2<T>, RtError> {
        let key: *const Expr = e;
        if !self.s.rnn.contains_key(&key) {
            let ExprKind::Rnn { net, seqs } = &e.kind else {
                return Err(RtError::Shape("rnn cache of a non-rnn".into()));
            };
            let NetKind::Rnn {
                hidden, reverse, ..
            } = self.m().nets[*net].kind
            else {
                return Err(RtError::Shape("rnn of a non-rnn net".into()));
            };
            let (b, tt) = (self.s.b, self.s.tt);
            let mut xs = Vec::with_capacity(tt);
            for t in 1..=tt as i64 {
                let mut acc: Option<T2<T>> = None;
                for sq in seqs {
                    let ExprKind::Var { var, .. } = sq.kind else {
                        return Err(RtError::Shape("rnn argument is not a sequence".into()));
                    };
                    let x = self.s.step(var, t)?;
                    acc = Some(match acc {
                        None => x,
                        Some(a) => ops::cat_cols(a, x),
                    });
                }
                xs.push(acc.ok_or_else(|| RtError::Shape("rnn without inputs".into()))?);
            }
            let h0 = self.p.input(ops::full(self.p.device(), b, hidden, 0.0));
            let outs = gru::rnn_scan(
                self.p,
                &super::eval::net_prefix(self.m(), *net),
                h0,
                xs,
                reverse,
            )?;
            self.s.rnn.insert(key, (outs, None));
        }
        let tt = self.s.tt;
        let entry = self.s.rnn.get_mut(&key).expect("inserted above");
        match at {
            At::Step(t) => Ok(entry.0[t as usize - 1].clone()),
            At::Range(s) => {
                if entry.1.is_none() {
                    entry.1 = Some(stack(entry.0.clone())?);
                }
                let all = entry.1.clone().expect("set above");
                let b = self.s.b;
                Ok(ops::rows(all, (s as usize - 1) * b, tt * b))
            }
            At::Static => Err(RtError::Shape("a net over time in a static context".into())),
        }
    }

    fn dist(&mut self, d: &Dist, at: At, size: usize) -> Result<DistVals<T>, RtError> {
        Ok(match &d.args {
            DistArgs::LocScale { loc, scale } => DistVals::LocScale(
                self.eval_rows(loc, at, size)?,
                self.eval_rows(scale, at, size)?,
            ),
            DistArgs::Split { head, scale_fn } => {
                let h = self.eval_rows(head, at, 2 * size)?;
                match *scale_fn {
                    ScaleFn::Softplus { min } => {
                        let (l, s) = normal::split_loc_scale(
                            h,
                            normal::ScaleLink::Softplus {
                                min_scale: min as f32,
                            },
                        )?;
                        DistVals::LocScale(l, s)
                    }
                    ScaleFn::Exp { min } => {
                        let (l, s) = normal::split_loc_scale(h, normal::ScaleLink::Exp)?;
                        DistVals::LocScale(l, if min > 0.0 { s + min as f32 } else { s })
                    }
                }
            }
            DistArgs::Logits(l) => DistVals::Logits(self.eval_rows(l, at, size)?),
            DistArgs::Bounds { low, high } => DistVals::Bounds(
                self.eval_rows(low, at, size)?,
                self.eval_rows(high, at, size)?,
            ),
            DistArgs::None => DistVals::Flat,
        })
    }

    fn classes(&self, v: VarId) -> usize {
        match self.m().vars[v].ty {
            VarType::OneHot { classes, .. } => classes,
            _ => 1,
        }
    }

    /// Sample a chain latent at one step (or statically) from its producer.
    fn sample(
        &mut self,
        v: VarId,
        f: FactorId,
        at: At,
        rng: &mut Rng,
    ) -> Result<(T2<T>, Rec<T>), RtError> {
        let m = self.m();
        let FactorBody::Sample(d) = &m.factors[f].body else {
            return Err(RtError::Shape("sampling a definition".into()));
        };
        let size = m.vars[v].ty.size();
        let rows = self.rows(at);
        let dev = self.p.device().clone();
        let dist = self.dist(d, at, size)?;
        let est = self
            .prog
            .estimators
            .get(&v)
            .copied()
            .unwrap_or(Estimator::Reparam);
        let mut pre = None;
        if est == Estimator::Enumerate && self.s.enumerate {
            // Block k of the tiled batch holds value k.
            let n = m.vars[v].ty.support_size().unwrap_or(u64::MAX) as usize;
            let orig = rows / n;
            let mut host = Vec::with_capacity(rows * size);
            for k in 0..n {
                let one = enum_value(m.vars[v].ty, k);
                for _ in 0..orig {
                    host.extend_from_slice(&one);
                }
            }
            let z = self.p.input(ops::from_host(&dev, host, rows, size));
            let kk = self.classes(v);
            let lq = match (&dist, d.family) {
                (DistVals::Logits(l), Family::Categorical) => {
                    categorical::log_prob(ops::fresh(z.clone()), l.clone(), kk)?
                }
                (DistVals::Logits(l), Family::Bernoulli) => {
                    bernoulli::log_prob(ops::fresh(z.clone()), l.clone())
                }
                _ => return Err(RtError::Shape("enumeration of a continuous latent".into())),
            };
            self.s.enum_weight = Some(lq.exp());
            return Ok((
                z,
                Rec {
                    family: d.family,
                    dist,
                    pre,
                },
            ));
        }
        let value = match (&dist, d.family) {
            (DistVals::LocScale(l, s), Family::Normal) => {
                normal::rsample(l.clone(), s.clone(), normal_noise(&dev, rng, rows, size))
            }
            (DistVals::LocScale(l, s), Family::TanhNormal) => {
                let (y, u) =
                    tanh_normal::rsample(l.clone(), s.clone(), normal_noise(&dev, rng, rows, size));
                pre = Some(u);
                y
            }
            (DistVals::Bounds(a, b), Family::Uniform) => {
                uniform::rsample(a.clone(), b.clone(), uniform_noise(&dev, rng, rows, size))
            }
            (DistVals::Logits(l), Family::Bernoulli) => match est {
                Estimator::StraightThrough => bernoulli::sample_st(l.clone(), rng),
                _ => {
                    let z = self.p.input(bernoulli::sample(l, rng));
                    self.add_sf(bernoulli::log_prob(ops::fresh(z.clone()), l.clone()));
                    z
                }
            },
            (DistVals::Logits(l), Family::Categorical) => {
                let k = self.classes(v);
                match est {
                    Estimator::StraightThrough => categorical::sample_st(l.clone(), k, rng)?,
                    _ => {
                        let z = self.p.input(categorical::sample(l, k, rng)?);
                        self.add_sf(categorical::log_prob(ops::fresh(z.clone()), l.clone(), k)?);
                        z
                    }
                }
            }
            _ => {
                return Err(RtError::Shape(format!(
                    "cannot sample `{}` from {}",
                    m.vars[v].name,
                    d.family.name()
                )))
            }
        };
        Ok((
            value,
            Rec {
                family: d.family,
                dist,
                pre,
            },
        ))
    }

    /// Accumulate Σ log q per sequence for a score-function sample.
    fn add_sf(&mut self, logq: T2<T>) {
        self.s.sf_logq = Some(match self.s.sf_logq.take() {
            None => logq,
            Some(a) => a + logq,
        });
    }

    /// Recorded q parameters of a latent over a range, stacked.
    fn recorded(&mut self, v: VarId, range: Range) -> Result<Recorded<T>, RtError> {
        let recs = self
            .s
            .recs
            .get(&v)
            .ok_or_else(|| RtError::Shape(format!("latent {v} not sampled")))?;
        let steps: Vec<usize> = match range {
            Range::Static => vec![0],
            Range::At { t } => vec![t as usize - 1],
            Range::From { t } => (t as usize - 1..self.s.tt).collect(),
        };
        let mut fam = Family::Normal;
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut pre = Vec::new();
        let mut kind = 0;
        for i in steps {
            let r = recs.get(i).and_then(|r| r.as_ref()).ok_or_else(|| {
                RtError::Shape(format!("latent {v} not sampled at step {}", i + 1))
            })?;
            fam = r.family;
            match r.dist.clone_vals() {
                DistVals::LocScale(x, y) => {
                    kind = 1;
                    a.push(x);
                    b.push(y);
                }
                DistVals::Logits(x) => {
                    kind = 2;
                    a.push(x)
                }
                DistVals::Bounds(x, y) => {
                    kind = 3;
                    a.push(x);
                    b.push(y);
                }
                DistVals::Flat => {}
            }
            if let Some(u) = &r.pre {
                pre.push(u.clone());
            }
        }
        let dv = match kind {
            1 => DistVals::LocScale(stack(a)?, stack(b)?),
            2 => DistVals::Logits(stack(a)?),
            3 => DistVals::Bounds(stack(a)?, stack(b)?),
            _ => DistVals::Flat,
        };
        let pre = if pre.is_empty() {
            None
        } else {
            Some(stack(pre)?)
        };
        Ok((fam, dv, pre))
    }

    /// The sampled values of a chain variable over a range.
    fn values(&mut self, v: VarId, range: Range) -> Result<T2<T>, RtError> {
        match range {
            Range::Static => self.read(v, TimeRef::Static, At::Static),
            Range::At { t } => self.s.step(v, i64::from(t)),
            Range::From { t } => self.read(v, TimeRef::Lag(0), At::Range(t)),
        }
    }
}

fn log_prob<T: LTape>(
    fam: Family,
    x: T2<T>,
    d: DistVals<T>,
    k: usize,
    pre: Option<T2<T>>,
) -> Result<T2<T>, RtError> {
    Ok(match (fam, d) {
        (Family::Normal, DistVals::LocScale(l, s)) => normal::log_prob(x, l, s),
        (Family::TanhNormal, DistVals::LocScale(l, s)) => match pre {
            Some(u) => tanh_normal::log_prob_pre(u, l, s),
            None => tanh_normal::log_prob(x, l, s),
        },
        (Family::Uniform, DistVals::Bounds(a, b)) => uniform::log_prob(&x, a, b),
        (Family::Bernoulli, DistVals::Logits(l)) => bernoulli::log_prob(x, l),
        (Family::Categorical, DistVals::Logits(l)) => categorical::log_prob(x, l, k)?,
        (f, _) => return Err(RtError::Shape(format!("log-density of {}", f.name()))),
    })
}

fn kl_rows<T: LTape>(
    fam: Family,
    q: DistVals<T>,
    p: DistVals<T>,
    k: usize,
    per_element: bool,
) -> Result<(T2<T>, bool), RtError> {
    Ok(match (fam, q, p) {
        (Family::Normal, DistVals::LocScale(a, b), DistVals::LocScale(c, d)) => {
            if per_element {
                (normal::kl_elem(a, b, c, d), true)
            } else {
                (normal::kl(a, b, c, d), false)
            }
        }
        (Family::Bernoulli, DistVals::Logits(a), DistVals::Logits(b)) => {
            if per_element {
                (bernoulli::kl_elem(a, b), true)
            } else {
                (bernoulli::kl(a, b), false)
            }
        }
        (Family::Categorical, DistVals::Logits(a), DistVals::Logits(b)) => {
            (categorical::kl(a, b, k)?, false)
        }
        (Family::Uniform, DistVals::Bounds(a, b), DistVals::Bounds(c, d)) => {
            (uniform::kl(a, b, c, d)?, false)
        }
        (f, _, _) => {
            return Err(RtError::Shape(format!(
                "no closed-form KL for {}",
                f.name()
            )))
        }
    })
}

fn entropy_rows<T: LTape>(
    fam: Family,
    q: DistVals<T>,
    value: T2<T>,
    k: usize,
    pre: Option<T2<T>>,
) -> Result<T2<T>, RtError> {
    Ok(match (fam, q) {
        (Family::Normal, DistVals::LocScale(_, s)) => normal::entropy(s),
        (Family::Uniform, DistVals::Bounds(a, b)) => uniform::entropy(a, b),
        (Family::Bernoulli, DistVals::Logits(l)) => bernoulli::entropy(l),
        (Family::Categorical, DistVals::Logits(l)) => categorical::entropy(l, k)?,
        (f, d) => log_prob(f, value, d, k, pre)?.negate(),
    })
}

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
        let (prior_static, prior_timed) = super::plan::prior_order(m);
        let conditioned = condition > 0;
        let statics: Vec<super::plan::ChainVar> = if conditioned {
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
        for (ti, term) in elbo.terms.iter().enumerate() {
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
            let owner = self.term_owner[ti];
            let mask = batch
                .mask
                .as_ref()
                .filter(|_| {
                    m.vars.get(owner).map(|v| v.timed).unwrap_or(true)
                        && !matches!(term.range, Range::Static)
                })
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
            let mods = &term.modifiers;
            let (value, obj): (T2<T>, Option<T0<T>>) = match &term.kind {
                TermKind::LogLikelihood { p: pv } => {
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
                TermKind::Kl { p: pv, .. } | TermKind::LogRatio { p: pv, .. } => {
                    let f = &m.factors[pv.factor];
                    let v = f.var;
                    let FactorBody::Sample(pd) = &f.body else {
                        return Err(RtError::Shape("KL against a definition".into()));
                    };
                    let size = m.vars[v].ty.size();
                    let kk = cx.classes(v);
                    let pdist = cx.dist(pd, at, size)?.fresh();
                    let (qfam, qdist, pre) = cx.recorded(v, term.range)?;
                    if let TermKind::Kl { .. } = term.kind {
                        let per_el = matches!(
                            mods.free_nats,
                            Some(FreeNats {
                                placement: FreeNatsPlacement::PerElement,
                                ..
                            })
                        );
                        let plain = {
                            let (r, el) =
                                kl_rows(qfam, qdist.clone_vals(), pdist.clone_vals(), kk, false)?;
                            debug_assert!(!el);
                            masked(r)
                        };
                        // The training form: balancing, free nats.
                        let train_rows = |q: DistVals<T>,
                                          pp: DistVals<T>|
                         -> Result<T2<T>, RtError> {
                            let (r, elementwise) = kl_rows(qfam, q, pp, kk, per_el)?;
                            let r = match mods.free_nats {
                                Some(FreeNats {
                                    nats,
                                    placement: FreeNatsPlacement::PerElement,
                                }) if elementwise => ops::row_sum(r.clamp(nats as f32, f32::MAX)),
                                Some(FreeNats {
                                    nats,
                                    placement: FreeNatsPlacement::PerStep,
                                }) => r.clamp(nats as f32, f32::MAX),
                                _ if elementwise => ops::row_sum(r),
                                _ => r,
                            };
                            Ok(masked(r))
                        };
                        let trained = match mods.kl_balance {
                            Some(bal) => {
                                let lhs = train_rows(qdist.stop(p), pdist.clone_vals())?;
                                let rhs = train_rows(qdist.clone_vals(), pdist.stop(p))?;
                                lhs * bal as f32 + rhs * (1.0 - bal as f32)
                            }
                            None => train_rows(qdist, pdist)?,
                        };
                        let total_kl = match mods.free_nats {
                            Some(FreeNats {
                                nats,
                                placement: FreeNatsPlacement::AfterMean,
                            }) => {
                                let n = rows as f32;
                                (ops::mean_all(trained).clamp(nats as f32, f32::MAX) * n).negate()
                            }
                            _ => ops::sum_all(trained).negate(),
                        };
                        let scale = mods.scale as f32
                            * if mods.kl_weight.is_some() {
                                weight
                            } else {
                                1.0
                            };
                        (per_seq(plain, b, tp), Some(total_kl * scale))
                    } else {
                        let z = cx.values(v, term.range)?;
                        let lp = log_prob(pd.family, z.clone(), pdist, kk, None)?;
                        let lq = log_prob(qfam, ops::fresh(z), qdist, kk, pre)?;
                        (per_seq(masked(lp - lq), b, tp), None)
                    }
                }
                TermKind::Entropy { q: qv, .. } => {
                    let v = m.factors[qv.factor].var;
                    let kk = cx.classes(v);
                    let (qfam, qdist, pre) = cx.recorded(v, term.range)?;
                    let z = cx.values(v, term.range)?;
                    let h = masked(entropy_rows(qfam, qdist, z, kk, pre)?);
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
                TermKind::Reward { alpha, .. } => {
                    let o = &m.optimality[self.term_opt[ti]];
                    let r = masked(cx.eval_rows(&o.reward, at, 1)?);
                    let a = match alpha {
                        Alpha::Fixed(a) => *a as f32,
                        Alpha::Auto { .. } => self.alpha_value(p)?,
                    };
                    (per_seq(r / a, b, tp), None)
                }
            };
            // Enumeration: Σ_k q(c = k | x)·term_k for every term but c's own, which is the
            // same in every block and counted once.
            let (value, obj) = match (&cx.s.enum_weight, enumerated) {
                (Some(w), Some((c, n))) => {
                    let own = term.kind.is_kl_like() && self.term_owner[ti] == c;
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
                None => {
                    let scale = mods.scale as f32
                        * if mods.kl_weight.is_some() && term.kind.is_kl_like() {
                            weight
                        } else {
                            1.0
                        };
                    add(ops::sum_all(value.clone()) * (sign * scale));
                }
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
            let beta = p.vector(super::BASELINE_PARAM)?.reshape_like(&(1, 1));
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
            let la = p.vector(super::ALPHA_PARAM)?;
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
