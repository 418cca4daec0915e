//! Acting from the filtered posterior: at each real step the posterior chain (q's draws and
//! the model's state definitions, as the world model's ELBO runs them) is advanced by one step
//! on the new observation, and the policy q(a_t | state_t) acts from the filtered state.
//!
//! Input: the model, the world model's parameter layout and a snapshot of the parameter
//! values. Output: actions in [−1, 1] per dimension (the policy's space; the environment's box
//! is reached by [`to_box`]), or one-hot rows for a Categorical policy (a draw, or the mode:
//! the most probable class). Two one-row programs: the first step of an episode (lags read
//! the `init` values) and every later step (lags read the previous step).

use super::rollout::Policy;
use crate::diag::{Code, Diagnostic};
use crate::family::Family;
use crate::fused::build::ParamIndex;
use crate::fused::build::{DistV, Stepper, Unsupported, R};
use crate::fused::families::Noise;
use crate::fused::graph::View;
use crate::fused::kernels::Worker;
use crate::ir::*;
use crate::lower::plan::Plan;
use crate::lower::Program;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashSet;

struct Step {
    w: Worker,
    /// Previous values of the chain variables and the action (data).
    prev: Vec<(VarId, View)>,
    prev_action: Option<View>,
    obs: View,
    /// This step's chain values.
    now: Vec<(VarId, View)>,
    policy: DistV,
    action: View,
    noise: Vec<(View, Noise)>,
}

/// A policy acting from the filtered posterior of the real observations.
pub struct Filtered {
    first: Step,
    later: Step,
    /// Chain values of the last step, by variable (in `first.now` order).
    state: Vec<Vec<f32>>,
    last_action: Vec<f32>,
    values: Vec<Vec<f32>>,
    inits: Vec<Vec<f32>>,
    init_action: Vec<f32>,
    /// Act with the policy's mode (evaluation) rather than a draw.
    pub greedy: bool,
    started: bool,
    rng: StdRng,
    family: Family,
}

fn build(prog: &Program, index: &ParamIndex, obs_var: VarId, t0: i64) -> R<Step> {
    let m = &prog.model;
    let b = m
        .behaviour
        .as_ref()
        .ok_or_else(|| Unsupported("no `imagine` block".into()))?;
    let none = HashSet::new();
    let mut e = Stepper::new(prog, index, &none, 1);
    let plan = Plan::new(m);
    let mut prev = Vec::new();
    for cv in &plan.timed {
        let d = e.data(m.vars[cv.var].ty.size());
        e.set(cv.var, t0 - 1, d);
        prev.push((cv.var, d));
    }
    let asize = m.vars[b.action].ty.size();
    let pa = e.data(asize);
    e.set(b.action, t0 - 1, pa);
    let obs = e.data(m.vars[obs_var].ty.size());
    e.set(obs_var, t0, obs);
    let mut now = Vec::new();
    for cv in &plan.timed {
        let Some(p) = cv.at(t0 as u32) else {
            return Err(Unsupported(format!(
                "`{}` has no factor at step {t0}",
                m.vars[cv.var].name
            )));
        };
        let size = m.vars[cv.var].ty.size();
        let x = match &m.factors[p.factor].body {
            FactorBody::Define(x) => e.eval(x, t0)?,
            FactorBody::Sample(d) => {
                let dv = e.dist(d, size, t0)?.ok_or_else(|| {
                    Unsupported(format!("a Flat posterior of `{}`", m.vars[cv.var].name))
                })?;
                e.sample(dv)?.x
            }
        };
        e.set(cv.var, t0, x);
        now.push((cv.var, x));
    }
    let policy = e
        .dist(&b.policy, asize, t0)?
        .ok_or_else(|| Unsupported("a Flat policy".into()))?;
    let action = e.sample(policy)?.x;
    let noise = e.noise();
    Ok(Step {
        w: Worker::new(e.into_graph()),
        prev,
        prev_action: Some(pa),
        obs,
        now,
        policy,
        action,
        noise,
    })
}

/// The environment's action for a policy action `a ∈ [−1, 1]` (clipped) in the box
/// `[low, high]` (an unbounded dimension takes `a` as it is).
pub fn to_box(a: &[f32], low: &[f32], high: &[f32]) -> Vec<f32> {
    a.iter()
        .zip(low.iter().zip(high))
        .map(|(&x, (&l, &h))| {
            let x = x.clamp(-1.0, 1.0);
            if l.is_finite() && h.is_finite() {
                l + (x + 1.0) * 0.5 * (h - l)
            } else {
                x
            }
        })
        .collect()
}

impl Filtered {
    /// The acting programs of `m` (the observation variable `obs_var`) with parameter values
    /// `values` (index order of `index`).
    pub fn new(
        prog: &Program,
        index: &ParamIndex,
        obs_var: VarId,
        values: Vec<Vec<f32>>,
        seed: u64,
    ) -> R<Filtered> {
        let m = &prog.model;
        let first = build(prog, index, obs_var, 1)?;
        let later = build(prog, index, obs_var, 2)?;
        let b = m
            .behaviour
            .as_ref()
            .ok_or_else(|| Unsupported("no `imagine` block".into()))?;
        let inits = first
            .prev
            .iter()
            .map(|(v, _)| super::behaviour::init_value(m, *v, 0))
            .collect();
        let init_action = super::behaviour::init_value(m, b.action, 0);
        Ok(Filtered {
            state: Vec::new(),
            last_action: init_action.clone(),
            first,
            later,
            values,
            inits,
            init_action,
            greedy: false,
            started: false,
            rng: StdRng::seed_from_u64(seed),
            family: b.policy.family,
        })
    }

    /// New parameter values (after training).
    pub fn set_values(&mut self, values: &[Vec<f32>]) {
        for (a, b) in self.values.iter_mut().zip(values) {
            a.copy_from_slice(b);
        }
    }

    /// Re-seed the draws.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }
}

impl Policy for Filtered {
    fn act(&mut self, obs: &[f32], first: bool) -> Result<Vec<f32>, Diagnostic> {
        if first || !self.started {
            self.state = self.inits.clone();
            self.last_action = self.init_action.clone();
            self.started = true;
        }
        let use_first = first;
        let st = if use_first {
            &mut self.first
        } else {
            &mut self.later
        };
        for ((_, v), x) in st.prev.iter().zip(&self.state) {
            st.w.vals_mut(v.buf).copy_from_slice(x);
        }
        if let Some(pa) = st.prev_action {
            st.w.vals_mut(pa.buf).copy_from_slice(&self.last_action);
        }
        if obs.len() != st.w.g.cols(st.obs) {
            return Err(Diagnostic::new(
                Code::EnvSpace,
                format!(
                    "the environment gave {} observation values; the model's observation has {}",
                    obs.len(),
                    st.w.g.cols(st.obs)
                ),
            )
            .help("choose the model whose observation size matches the environment"));
        }
        st.w.vals_mut(st.obs.buf).copy_from_slice(obs);
        for (nv, kind) in &st.noise {
            for x in st.w.vals_mut(nv.buf) {
                *x = kind.draw(&mut self.rng);
            }
        }
        let params: Vec<&[f32]> = self.values.iter().map(|v| v.as_slice()).collect();
        st.w.set_params(&params);
        st.w.forward();
        self.state = st.now.iter().map(|(_, v)| st.w.view(*v).to_vec()).collect();
        let a: Vec<f32> = if self.greedy {
            let loc = st.w.view(st.policy.loc);
            match self.family {
                Family::TanhNormal => loc.iter().map(|x| x.tanh()).collect(),
                // The mode of a Categorical: the most probable class, one-hot.
                Family::Categorical => {
                    let k = super::env::hot_index(loc);
                    (0..loc.len()).map(|i| f32::from(i == k)).collect()
                }
                _ => loc.to_vec(),
            }
        } else {
            st.w.view(st.action).to_vec()
        };
        let a: Vec<f32> = a.iter().map(|x| x.clamp(-1.0, 1.0)).collect();
        if a.iter().any(|x| !x.is_finite()) {
            return Err(Diagnostic::new(
                Code::NonFinite,
                "the policy's action is not finite".to_string(),
            )
            .help("the parameters diverged: lower the learning rates or resume from an earlier checkpoint"));
        }
        self.last_action = a.clone();
        Ok(a)
    }
}
