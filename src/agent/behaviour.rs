//! Behaviour learning in imagination, run: the derived [`Imagination`] objectives compiled
//! into two fused programs and stepped with Adam.
//!
//! Input: the checked model with its `imagine` block, the parameter layout of the world
//! model's compiled program, and per update the posterior states of a training batch (the
//! world model's forward pass) and the current parameter values. Output: new actor (policy,
//! learned prior) and critic parameters, and the update's statistics.
//!
//! The actor's program rolls the learned p forward H steps from the start states with
//! a_τ ~ q(a_τ | state_τ) (the world model's parameters are read frozen: no gradient is kept
//! for them), and evaluates at each step the reward, the KL-like term and the critic's value
//! of the next state (the critic's parameters frozen too). On the host the soft rewards and
//! values give the λ-returns ([`returns::lambda_return`]); the actor's loss is −mean R^λ_1, whose
//! gradient reaches the rewards, KL terms and values through the return's adjoint
//! ([`returns::lambda_return_grad`]) and from there the policy through the reparameterised
//! actions and the frozen dynamics. The critic's program reads the imagined states as data
//! (stop-gradient) and regresses V(state_τ) on sg(R^λ_τ), τ = 1..H.
//!
//! Units: everything is computed in α·J, reward units (`r_τ − α KL_τ`, the critic predicting
//! α·V): the same maximiser as the displayed bound J (α > 0 is a constant factor), and a
//! critic whose targets do not grow by 1/α (10⁴ for DreamerV2's α = 10⁻⁴).
//! The start states are split over two workers (one per core), as the world model's batch.
//!
//! With a continuation head (`continue = c`, issue 19) the actor's program also evaluates
//! P(c_τ = 1 | state_τ) at every step: it multiplies γ in the λ-returns, its adjoint
//! ([`returns::lambda_return_grad_cont`]) seeds it (the actor's gradient flows through the
//! continuation too), and the critic's loss at τ is weighted by Π_{k<τ} P(c_k = 1). A discrete
//! (one-hot) action is drawn straight-through by the step program. Start states may carry
//! weights (0 for the padded steps of a short episode's window).

use super::{critic_copy, returns};
use crate::derive::imagine::{Imagination, ImaginedCompute, Learner, Trainable};
use crate::family::Family;
use crate::fused::build::ParamIndex;
use crate::fused::build::{DistV, Draw, Stepper, Unsupported, R};
use crate::fused::families::Noise;
use crate::fused::graph::{BufId, BufKind, View};
use crate::fused::kernels::Worker;
use crate::ir::*;
use crate::lower::plan::prior_order;
use crate::lower::{net_prefix, param_name, Program};
use crate::runtime::optim::{norm_of, Adam};
use crate::runtime::rng::Rng;
use std::collections::HashSet;

/// How the actor and the critic are optimised.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BehaviourConfig {
    /// The actor's Adam learning rate (default 2·10⁻⁴; Dreamer's 8·10⁻⁵ left the pendulum at
    /// −420 after 20,000 steps, docs/agent.md).
    pub actor_lr: f64,
    /// The critic's Adam learning rate (default 5·10⁻⁴; Dreamer: 8·10⁻⁵).
    pub critic_lr: f64,
    /// Global gradient-norm clipping of each learner (Dreamer: 100).
    pub clip: f64,
    /// DreamerV3's return normalisation: the actor's return (its rewards', values' and
    /// continuations' gradient, not the entropy bonus α·KL) is divided by max(1, S), S an
    /// exponential moving average (decay 0.99) of the 95th − 5th percentile of the imagined
    /// λ-returns (off: Dreamer V1/V2's unnormalised objective).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub return_norm: bool,
    /// DreamerV3's symlog rewards: the reward head learns symlog(r) = sign(r)·ln(1 + |r|) and
    /// imagination reads symexp of its output (off: the reward as it is).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub symlog_rewards: bool,
    /// A slow (EMA) target critic: the λ-returns bootstrap from a copy of the critic that
    /// moves this fraction of the way to the critic after every update (DreamerV3: 0.02;
    /// 0: the critic itself, Dreamer V1's).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slow_critic: f64,
}

/// Off options are left out of `agent.json` (a run written before them reads the same).
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// sign(x)·ln(1 + |x|).
pub fn symlog(x: f32) -> f32 {
    x.signum() * x.abs().ln_1p()
}

/// The inverse of [`symlog`]: sign(x)·(exp|x| − 1).
pub fn symexp(x: f32) -> f32 {
    x.signum() * x.abs().exp_m1()
}

impl BehaviourConfig {
    /// The defaults, the one home of `vic agent`'s and `vic.agent`'s.
    pub const DEFAULT: BehaviourConfig = BehaviourConfig {
        actor_lr: 2e-4,
        critic_lr: 5e-4,
        clip: 100.0,
        return_norm: false,
        symlog_rewards: false,
        slow_critic: 0.0,
    };
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        BehaviourConfig::DEFAULT
    }
}

/// What one behaviour update measured (means over the start states).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BehaviourStats {
    /// α·R^λ_1, the actor's objective in reward units.
    pub objective: f64,
    /// The mean imagined reward per step.
    pub reward: f64,
    /// The mean of the KL-like term per step as −KL (the policy's entropy for a Flat prior).
    pub neg_kl: f64,
    /// The critic's loss ½ Σ_τ (V − sg(R^λ))², mean over start states.
    pub critic_loss: f64,
    /// The actor's gradient norm before clipping.
    pub actor_grad_norm: f64,
    /// The critic's gradient norm before clipping.
    pub critic_grad_norm: f64,
    /// The 5th and 95th percentiles of this update's imagined λ-returns (with
    /// `return_norm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_percentiles: Option<(f64, f64)>,
    /// The scale max(1, S) the actor's objective was divided by (with `return_norm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_scale: Option<f64>,
}

/// One KL-like contribution at one step: `coef · view` (times α) enters the soft reward.
#[derive(Clone, Copy)]
struct KlPart {
    v: View,
    coef: f32,
}

struct Share {
    actor: Worker,
    critic: Worker,
    n: usize,
    start: usize,
    /// Start-state data views (actor program).
    starts: Vec<(VarId, View)>,
    noise: Vec<(View, Noise)>,
    /// Per τ = 1..H: the reward view, the KL-like parts.
    rew: Vec<View>,
    /// Per τ = 1..H: P(continue | state_τ), when the model has a continuation head.
    cont: Vec<View>,
    kl: Vec<Vec<KlPart>>,
    /// V(state_τ) for τ = 2..H+1 (the actor's, frozen critic).
    val: Vec<View>,
    /// Per τ = 1..H: the state views the critic reads.
    states: Vec<Vec<(VarId, View)>>,
    /// Critic program: its data views (n·H rows per state variable) and output.
    critic_in: Vec<(VarId, View)>,
    critic_out: View,
    /// The critic's forward pass as copies from the actor's ([`critic_copy::plan`]), when
    /// the two programs evaluate the critic alike.
    critic_copy: Option<Vec<(View, View)>>,
    /// Host: R^λ (H × n) of the last forward pass.
    ret: Vec<f32>,
    /// Host: the critic's weights Π_{k<τ} P(continue) (empty without a continuation head).
    alive: Vec<f32>,
    /// Host: each start state's weight in the means (1/n without start weights).
    wt: Vec<f32>,
    /// `(parameter, buffer)` of the parameters each program trains.
    actor_pbufs: Vec<(usize, BufId)>,
    critic_pbufs: Vec<(usize, BufId)>,
}

/// `(parameter, buffer)` of the parameter buffers of `w` that have a gradient.
fn trained_bufs(w: &Worker) -> Vec<(usize, BufId)> {
    (w.g.bufs.iter().enumerate())
        .filter_map(|(b, buf)| match buf.kind {
            BufKind::Param(p) if buf.grad => Some((p, b)),
            _ => None,
        })
        .collect()
}

/// The compiled behaviour learner.
pub struct Behaviour {
    shares: Vec<Share>,
    h: usize,
    gamma: f32,
    lambda: f32,
    alpha: f32,
    klconst: f32,
    /// V = vscale · (the critic net's output): 1/(1 − γ), so the net predicts the mean soft
    /// reward per step, O(r), rather than O(r/(1 − γ)).
    vscale: f32,
    /// Parameters the actor's objective trains.
    pub actor_params: Vec<usize>,
    /// Parameters the critic's loss trains.
    pub critic_params: Vec<usize>,
    /// Start-state variables (timed latents and states), in order.
    pub state_vars: Vec<VarId>,
    /// Parameter names in index order.
    names: Vec<String>,
    cfg: BehaviourConfig,
    /// The return normalisation's moving percentiles (5th, 95th), when on.
    pub percentiles: (f64, f64),
    /// The slow target critic's parameters ([`Behaviour::critic_params`] order), when on;
    /// empty until the first update copies the critic.
    pub slow: Vec<Vec<f32>>,
}

/// The parameter indices of what a term trains.
fn params_of(m: &Model, index: &ParamIndex, ids: &[Trainable]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for t in ids {
        match *t {
            Trainable::Net(n) => {
                let prefix = format!("{}.", net_prefix(m, n));
                out.extend(
                    (index.iter())
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .map(|(_, v)| v.0),
                );
            }
            Trainable::Param(p) => {
                if let Some(v) = index.get(&param_name(m, p)) {
                    out.push(v.0);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A number written as such or negated (`-1`).
fn number(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Num(x) => Some(*x),
        ExprKind::Unary { op: UnOp::Neg, arg } => number(arg).map(|x| -x),
        _ => None,
    }
}

/// The value of an `init` (numbers only), or zeros.
pub(crate) fn init_value(m: &Model, var: VarId, step: i64) -> Vec<f32> {
    let size = m.vars[var].ty.size();
    let Some(init) = m.inits.iter().find(|i| i.var == var && i.step == step) else {
        return vec![0.0; size];
    };
    match &init.value.kind {
        ExprKind::Num(x) | ExprKind::Fill(x) => vec![*x as f32; size],
        ExprKind::Array(a) if a.len() == size => a.iter().map(|x| *x as f32).collect(),
        _ => vec![0.0; size],
    }
}

impl Behaviour {
    /// Compile the learner for `n` start states. `index`: the world model's parameter layout
    /// (name → index, rows, cols).
    pub fn new(
        prog: &Program,
        im: &Imagination,
        index: &ParamIndex,
        n: usize,
        workers: usize,
        cfg: BehaviourConfig,
    ) -> R<Behaviour> {
        let m = &prog.model;
        let Some(b) = &m.behaviour else {
            return Err(Unsupported("the model has no `imagine` block".into()));
        };
        let mut actor_ids = Vec::new();
        let mut critic_ids = Vec::new();
        for t in &im.terms {
            match t.learner {
                Learner::Actor => actor_ids.extend(t.train_ids.iter().copied()),
                Learner::Critic => critic_ids.extend(t.train_ids.iter().copied()),
            }
        }
        let actor_params = params_of(m, index, &actor_ids);
        let critic_params = params_of(m, index, &critic_ids);
        let (_, timed) = prior_order(m);
        let chain: Vec<_> = timed
            .into_iter()
            .filter(|cv| matches!(m.vars[cv.var].role, Role::Latent | Role::State))
            .collect();
        let state_vars: Vec<VarId> = chain.iter().map(|cv| cv.var).collect();
        let kl_compute = im
            .terms
            .iter()
            .find(|t| t.kind.is_kl_like())
            .map(|t| t.compute)
            .ok_or_else(|| Unsupported("no KL-like term".into()))?;
        let mut klconst = 0.0f32;
        if let (ImaginedCompute::LogRatio, DistArgs::Bounds { low, high }) =
            (kl_compute, &b.prior.args)
        {
            let (Some(l), Some(h)) = (number(low), number(high)) else {
                return Err(Unsupported(
                    "Uniform action prior bounds other than numbers".into(),
                ));
            };
            let size = m.vars[b.action].ty.size() as f32;
            klconst = -size * ((h - l) as f32).ln();
        }
        let workers = workers.clamp(1, 2).min(n.max(1));
        let mut shares = Vec::new();
        let mut start = 0;
        let h = b.horizon as usize;
        let actor_set: HashSet<usize> = actor_params.iter().copied().collect();
        let critic_set: HashSet<usize> = critic_params.iter().copied().collect();
        for w in 0..workers {
            let nw = n / workers + usize::from(w < n % workers);
            // The actor's program.
            let mut e = Stepper::new(prog, index, &actor_set, nw);
            let mut starts = Vec::new();
            for &v in &state_vars {
                let d = e.data(m.vars[v].ty.size());
                e.set(v, 1, d);
                starts.push((v, d));
            }
            let (mut rew, mut kl, mut val, mut states) = (vec![], vec![], vec![], vec![]);
            // The critic's evaluations V(state_τ), τ = 1..H+1: their ops and inputs. V(state_1)
            // is not part of the actor's objective (no gradient reaches it); the critic's
            // program copies it with the others instead of running its own forward pass.
            let mut evals = Vec::new();
            let first = e.graph().ops.len();
            e.eval(&b.critic, 1)?;
            evals.push((first..e.graph().ops.len(), starts.clone()));
            let mut cont = Vec::new();
            let asize = m.vars[b.action].ty.size();
            for tau in 1..=h as i64 {
                let mut now = Vec::new();
                for &v in &state_vars {
                    let x = e.get(v, tau).ok_or_else(|| {
                        Unsupported(format!("`{}` at step {tau}", m.vars[v].name))
                    })?;
                    now.push((v, x));
                }
                states.push(now);
                let q = e
                    .dist(&b.policy, asize, tau)?
                    .ok_or_else(|| Unsupported("a Flat policy".into()))?;
                let a = e.sample(q)?;
                e.set(b.action, tau, a.x);
                let parts = kl_parts(&mut e, kl_compute, q, a, &b.prior, asize, tau)?;
                kl.push(parts);
                rew.push(e.eval(&b.reward, tau)?);
                if let Some(c) = &b.cont {
                    cont.push(e.eval(&c.prob, tau)?);
                }
                for cv in &chain {
                    let Some(p) = cv.at(3) else {
                        return Err(Unsupported(format!(
                            "`{}` has no general case in p",
                            m.vars[cv.var].name
                        )));
                    };
                    let f = &m.factors[p.factor];
                    let size = m.vars[cv.var].ty.size();
                    let x = match &f.body {
                        FactorBody::Define(x) => e.eval(x, tau + 1)?,
                        FactorBody::Sample(d) => {
                            let dv = e.dist(d, size, tau + 1)?.ok_or_else(|| {
                                Unsupported(format!("a Flat prior of `{}`", m.vars[cv.var].name))
                            })?;
                            e.sample(dv)?.x
                        }
                    };
                    e.set(cv.var, tau + 1, x);
                }
                let first = e.graph().ops.len();
                val.push(e.eval(&b.critic, tau + 1)?);
                let inputs = (state_vars.iter())
                    .filter_map(|&v| Some((v, e.get(v, tau + 1)?)))
                    .collect();
                evals.push((first..e.graph().ops.len(), inputs));
            }
            let noise = e.noise();
            let actor = Worker::new(e.into_graph());
            // The critic's program: the imagined states as data.
            let mut c = Stepper::new(prog, index, &critic_set, nw * h);
            let mut critic_in = Vec::new();
            for &v in &state_vars {
                let d = c.data(m.vars[v].ty.size());
                c.set(v, 0, d);
                critic_in.push((v, d));
            }
            let first = c.graph().ops.len();
            let critic_out = c.eval(&b.critic, 0)?;
            let critic_ops = first..c.graph().ops.len();
            let critic_copy = {
                let (ga, gc) = (&actor.g, c.graph());
                let actor_evals: Vec<critic_copy::Eval> = (evals[..h].iter())
                    .map(|(ops, inputs)| critic_copy::Eval {
                        g: ga,
                        ops: ops.clone(),
                        inputs,
                    })
                    .collect();
                let ce = critic_copy::Eval {
                    g: gc,
                    ops: critic_ops,
                    inputs: &critic_in,
                };
                critic_copy::plan(&actor_evals, &ce, nw)
            };
            let critic = Worker::new(c.into_graph());
            let (actor_pbufs, critic_pbufs) = (trained_bufs(&actor), trained_bufs(&critic));
            shares.push(Share {
                actor,
                critic,
                n: nw,
                start,
                starts,
                noise,
                rew,
                cont,
                kl,
                val,
                states,
                critic_in,
                critic_out,
                critic_copy,
                ret: vec![0.0; h * nw],
                alive: Vec::new(),
                wt: vec![1.0 / n.max(1) as f32; nw],
                actor_pbufs,
                critic_pbufs,
            });
            start += nw;
        }
        let mut names = vec![String::new(); index.len()];
        for (k, v) in index {
            names[v.0] = k.clone();
        }
        Ok(Behaviour {
            shares,
            h,
            gamma: b.discount as f32,
            lambda: b.lambda as f32,
            alpha: b.alpha as f32,
            klconst,
            vscale: if b.discount < 1.0 {
                1.0 / (1.0 - b.discount as f32)
            } else {
                1.0
            },
            actor_params,
            critic_params,
            state_vars,
            names,
            cfg,
            percentiles: (0.0, 0.0),
            slow: Vec::new(),
        })
    }

    /// Whether the critic's forward pass is copied from the actor's program (both evaluate
    /// the critic alike; used unless a slow critic is on): [`critic_copy`].
    pub fn critic_copied(&self) -> bool {
        self.shares.iter().all(|s| s.critic_copy.is_some())
    }

    /// Start states per update.
    pub fn starts(&self) -> usize {
        self.shares.iter().map(|s| s.n).sum()
    }

    fn run_all(&mut self, f: impl Fn(&mut Share) + Sync) {
        match self.shares.as_mut_slice() {
            [a] => f(a),
            [a, b] => {
                let b = std::sync::Mutex::new(b);
                crate::fused::handoff::join(
                    || f(a),
                    || f(&mut b.lock().unwrap_or_else(|p| p.into_inner())),
                );
            }
            many => many.iter_mut().for_each(f),
        }
    }

    /// One update from the start states `starts` (per state variable, `n` rows each, in
    /// [`Behaviour::state_vars`] order): the actor's and the critic's gradients, then one Adam
    /// step each (their moments live in `adam` by parameter name, at `adam`'s step count).
    /// `values` holds every parameter (index order) and is updated in place.
    /// `weights` (`n`, optional): a weight per start state (0 for the padded steps of a short
    /// episode); the losses are weighted means.
    pub fn update(
        &mut self,
        starts: &[Vec<f32>],
        weights: Option<&[f32]>,
        values: &mut [Vec<f32>],
        adam: &mut Adam,
        rng: &mut Rng,
    ) -> Result<BehaviourStats, String> {
        let (st, ga, gc) = self.gradients(starts, weights, values, rng)?;
        self.track_returns(&st);
        let clip = self.cfg.clip;
        for (ids, mut grads, norm, lr) in [
            (
                &self.actor_params,
                ga,
                st.actor_grad_norm,
                self.cfg.actor_lr,
            ),
            (
                &self.critic_params,
                gc,
                st.critic_grad_norm,
                self.cfg.critic_lr,
            ),
        ] {
            let f = crate::runtime::optim::clip_factor(norm, clip) as f32;
            let k = adam.at_step(lr);
            let sizes: Vec<(&str, usize)> = ids
                .iter()
                .map(|&p| (self.names[p].as_str(), values[p].len()))
                .collect();
            let moments = adam.moments(&sizes);
            for ((&p, g), mo) in ids.iter().zip(grads.iter_mut()).zip(moments) {
                if f < 1.0 {
                    g.iter_mut().for_each(|x| *x *= f);
                }
                k.apply(&mut values[p], g, mo);
            }
        }
        let tau = self.cfg.slow_critic as f32;
        if tau > 0.0 {
            for (&p, w) in self.critic_params.iter().zip(self.slow.iter_mut()) {
                for (s, x) in w.iter_mut().zip(&values[p]) {
                    *s += tau * (x - *s);
                }
            }
        }
        Ok(st)
    }

    /// The statistics and the gradients of the actor's loss (−α·R^λ_1, mean over start states)
    /// and of the critic's loss with respect to [`Behaviour::actor_params`] and
    /// [`Behaviour::critic_params`], in that order, without changing anything.
    #[allow(clippy::type_complexity)]
    pub fn gradients(
        &mut self,
        starts: &[Vec<f32>],
        weights: Option<&[f32]>,
        values: &[Vec<f32>],
        rng: &mut Rng,
    ) -> Result<(BehaviourStats, Vec<Vec<f32>>, Vec<Vec<f32>>), String> {
        let n = self.starts();
        // Per start: weight / Σ weights (1/n without weights).
        let weighted = weights.is_some();
        let symlog_r = self.cfg.symlog_rewards;
        // The actor's return is divided by max(1, S) (return normalisation), its entropy
        // bonus is not.
        let scale = if self.cfg.return_norm {
            ((self.percentiles.1 - self.percentiles.0) as f32).max(1.0)
        } else {
            1.0
        };
        let total = weights.map_or(n as f32, |w| w.iter().sum::<f32>().max(1.0));
        for sh in &mut self.shares {
            sh.wt = (0..sh.n)
                .map(|j| weights.map_or(1.0, |w| w[sh.start + j]) / total)
                .collect();
        }
        let (h, gamma, lambda, alpha) = (self.h, self.gamma, self.lambda, self.alpha);
        // Data and noise.
        for sh in &mut self.shares {
            for (j, (v, view)) in sh.starts.iter().enumerate() {
                let cols = sh.actor.g.cols(*view);
                let src = &starts[j][sh.start * cols..(sh.start + sh.n) * cols];
                sh.actor.vals_mut(view.buf).copy_from_slice(src);
                let _ = v;
            }
            for (nv, kind) in &sh.noise {
                for x in sh.actor.vals_mut(nv.buf) {
                    *x = kind.draw(rng);
                }
            }
        }
        let params: Vec<&[f32]> = values.iter().map(|v| v.as_slice()).collect();
        // The actor's program bootstraps from the slow critic when there is one.
        if self.cfg.slow_critic > 0.0 && self.slow.is_empty() {
            self.slow = (self.critic_params.iter())
                .map(|&p| values[p].clone())
                .collect();
        }
        let slow = std::mem::take(&mut self.slow);
        let mut actor_params = params.clone();
        if self.cfg.slow_critic > 0.0 {
            for (&p, w) in self.critic_params.iter().zip(&slow) {
                actor_params[p] = w.as_slice();
            }
        }
        // Forward; λ-returns; actor seeds and backward; the critic on the imagined states.
        let (klconst, k) = (self.klconst, self.vscale);
        let slow_on = self.cfg.slow_critic > 0.0;
        self.run_all(|sh| {
            sh.actor.set_params(&actor_params);
            sh.critic.set_params(&params);
            sh.actor.forward();
            let nw = sh.n;
            let mut soft = vec![0.0f32; h * nw];
            let mut val = vec![0.0f32; (h + 1) * nw];
            for tau in 0..h {
                let r = sh.actor.view(sh.rew[tau]).to_vec();
                for i in 0..nw {
                    let ri = if symlog_r { symexp(r[i]) } else { r[i] };
                    let mut x = ri + alpha * klconst;
                    for p in &sh.kl[tau] {
                        x += alpha * p.coef * sh.actor.view(p.v)[i];
                    }
                    soft[tau * nw + i] = x;
                }
                for (d, x) in val[(tau + 1) * nw..(tau + 2) * nw]
                    .iter_mut()
                    .zip(sh.actor.view(sh.val[tau]))
                {
                    *d = k * x;
                }
            }
            let mut cont = vec![1.0f32; h * nw];
            for (tau, cv) in sh.cont.iter().enumerate() {
                cont[tau * nw..(tau + 1) * nw].copy_from_slice(sh.actor.view(*cv));
            }
            sh.ret = returns::lambda_return(&soft, &val, &cont, nw, gamma, lambda);
            let mut d_ret = vec![0.0f32; h * nw];
            if weighted {
                for (d, w) in d_ret[..nw].iter_mut().zip(&sh.wt) {
                    *d = -w;
                }
            } else {
                d_ret[..nw].fill(-1.0 / n as f32);
            }
            // Return normalisation divides the rewards', values' and continuations' part of
            // the actor's gradient, not the entropy bonus α·KL of each step (DreamerV3
            // normalises the returns only). Off, inv = 1 and the seeds are unchanged.
            let inv = 1.0 / scale;
            let (d_rew, d_val) = returns::lambda_return_grad(&d_ret, &cont, nw, gamma, lambda);
            sh.actor.zero_grads();
            if !sh.cont.is_empty() {
                // The continuation probabilities are differentiable functions of the imagined
                // states: the actor is also paid for steering away from terminal states.
                let d_cont = returns::lambda_return_grad_cont(
                    &d_ret, &val, &cont, &sh.ret, nw, gamma, lambda,
                );
                for (tau, cv) in sh.cont.iter().enumerate() {
                    let dc = &d_cont[tau * nw..(tau + 1) * nw];
                    sh.actor.seed(*cv, |i, _| inv * dc[i]);
                }
            }
            // The critic's weights: the probability that the imagined episode is still going
            // (all ones without a continuation head).
            sh.alive = if sh.cont.is_empty() {
                Vec::new()
            } else {
                returns::alive_weights(&cont, nw)
            };
            for tau in 0..h {
                let dr = &d_rew[tau * nw..(tau + 1) * nw];
                if symlog_r {
                    // d symexp(x)/dx = exp|x|.
                    let r = sh.actor.view(sh.rew[tau]).to_vec();
                    sh.actor
                        .seed(sh.rew[tau], |i, _| inv * dr[i] * r[i].abs().exp());
                } else {
                    sh.actor.seed(sh.rew[tau], |i, _| inv * dr[i]);
                }
                for p in &sh.kl[tau] {
                    let c = alpha * p.coef;
                    sh.actor.seed(p.v, |i, _| c * dr[i]);
                }
                let dv = &d_val[(tau + 1) * nw..(tau + 2) * nw];
                sh.actor.seed(sh.val[tau], |i, _| inv * k * dv[i]);
            }
            sh.actor.backward();
            // The critic: states τ = 1..H, time-major.
            for (j, (_, cv)) in sh.critic_in.iter().enumerate() {
                let cols = sh.critic.g.cols(*cv);
                let mut buf = Vec::with_capacity(h * nw * cols);
                for tau in 0..h {
                    buf.extend_from_slice(sh.actor.view(sh.states[tau][j].1));
                }
                sh.critic.vals_mut(cv.buf).copy_from_slice(&buf);
            }
            // The actor's program evaluated the critic on these states with the same
            // parameters unless it bootstraps from the slow critic: copy, do not recompute.
            match &sh.critic_copy {
                Some(pairs) if !slow_on => {
                    for (a, c) in pairs {
                        sh.critic.view_mut(*c).copy_from_slice(sh.actor.view(*a));
                    }
                }
                _ => sh.critic.forward(),
            }
            sh.critic.zero_grads();
            let (ret, alive, wt) = (&sh.ret, &sh.alive, &sh.wt);
            if alive.is_empty() && !weighted {
                sh.critic
                    .seed(sh.critic_out, |i, v| k * (k * v - ret[i]) / n as f32);
            } else if alive.is_empty() {
                sh.critic
                    .seed(sh.critic_out, |i, v| wt[i % nw] * k * (k * v - ret[i]));
            } else {
                sh.critic.seed(sh.critic_out, |i, v| {
                    wt[i % nw] * alive[i] * k * (k * v - ret[i])
                });
            }
            sh.critic.backward();
        });
        drop(actor_params);
        self.slow = slow;
        // Statistics.
        let mut st = BehaviourStats::default();
        for sh in &self.shares {
            let nw = sh.n;
            st.objective += sh.ret[..nw].iter().map(|&x| x as f64).sum::<f64>();
            for tau in 0..h {
                st.reward += sh
                    .actor
                    .view(sh.rew[tau])
                    .iter()
                    .map(|&x| if symlog_r { symexp(x) as f64 } else { x as f64 })
                    .sum::<f64>();
                for p in &sh.kl[tau] {
                    st.neg_kl +=
                        (p.coef as f64) * sh.actor.view(p.v).iter().map(|&x| x as f64).sum::<f64>();
                }
            }
            st.neg_kl += (klconst as f64) * (h * nw) as f64;
            let v = sh.critic.view(sh.critic_out);
            let k = self.vscale;
            st.critic_loss += (v.iter().zip(&sh.ret).enumerate())
                .map(|(i, (a, b))| {
                    let w = sh.alive.get(i).map_or(1.0, |&w| w as f64);
                    0.5 * w * ((k * a - b) as f64).powi(2)
                })
                .sum::<f64>();
        }
        let nn = n as f64;
        st.objective /= nn;
        st.reward /= nn * h as f64;
        st.neg_kl /= nn * h as f64;
        st.critic_loss /= nn;
        if !st.objective.is_finite() || !st.critic_loss.is_finite() {
            return Err(format!(
                "the imagined return ({}) or the critic's loss ({}) is not finite",
                st.objective, st.critic_loss
            ));
        }
        // Gradients summed over workers; clipped; Adam.
        let sum = |ids: &[usize], critic: bool, shares: &[Share]| -> Vec<Vec<f32>> {
            ids.iter()
                .map(|&p| {
                    let mut g = vec![0.0f32; values[p].len()];
                    for sh in shares {
                        let (w, bufs) = if critic {
                            (&sh.critic, &sh.critic_pbufs)
                        } else {
                            (&sh.actor, &sh.actor_pbufs)
                        };
                        if let Some(&(_, bi)) = bufs.iter().find(|(q, _)| *q == p) {
                            for (a, x) in g.iter_mut().zip(w.grad(bi)) {
                                *a += x;
                            }
                        }
                    }
                    g
                })
                .collect()
        };
        let ga = sum(&self.actor_params, false, &self.shares);
        let gc = sum(&self.critic_params, true, &self.shares);
        st.actor_grad_norm = norm_of(ga.iter().map(|g| g.as_slice()));
        st.critic_grad_norm = norm_of(gc.iter().map(|g| g.as_slice()));
        for (what, x) in [
            ("the actor's gradient norm", st.actor_grad_norm),
            ("the critic's gradient norm", st.critic_grad_norm),
        ] {
            if !x.is_finite() {
                return Err(format!("{what} is not finite ({x})"));
            }
        }
        if self.cfg.return_norm {
            st.return_scale = Some(scale as f64);
            let mut all: Vec<f32> = self.shares.iter().flat_map(|s| s.ret.clone()).collect();
            all.sort_by(f32::total_cmp);
            let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize] as f64;
            st.return_percentiles = Some((at(0.05), at(0.95)));
        }
        Ok((st, ga, gc))
    }

    /// Moves the return normalisation's percentiles towards this update's (decay 0.99, as
    /// DreamerV3).
    pub fn track_returns(&mut self, st: &BehaviourStats) {
        if let Some((lo, hi)) = st.return_percentiles {
            let d = 0.99;
            self.percentiles = (
                d * self.percentiles.0 + (1.0 - d) * lo,
                d * self.percentiles.1 + (1.0 - d) * hi,
            );
        }
    }
}

/// The KL-like parts of one step: how `−KL(q ‖ p)` of the action enters the soft reward.
fn kl_parts(
    e: &mut Stepper,
    compute: ImaginedCompute,
    q: DistV,
    a: Draw,
    prior: &Dist,
    asize: usize,
    tau: i64,
) -> R<Vec<KlPart>> {
    Ok(match compute {
        ImaginedCompute::Entropy(form) => vec![KlPart {
            v: e.entropy(form, q)?,
            coef: 1.0,
        }],
        ImaginedCompute::EntropyMc => vec![KlPart {
            v: e.log_prob(q, a)?,
            coef: -1.0,
        }],
        ImaginedCompute::Kl(form) => {
            let p = e
                .dist(prior, asize, tau)?
                .ok_or_else(|| Unsupported("a Flat prior with a KL".into()))?;
            vec![KlPart {
                v: e.kl(form, q, p)?,
                coef: -1.0,
            }]
        }
        ImaginedCompute::LogRatio => {
            let mut parts = vec![KlPart {
                v: e.log_prob(q, a)?,
                coef: -1.0,
            }];
            // A Uniform prior's log-density is the constant `klconst`.
            if prior.family != Family::Uniform {
                let p = e
                    .dist(prior, asize, tau)?
                    .ok_or_else(|| Unsupported("a Flat prior with a log-ratio".into()))?;
                if p.family == Family::TanhNormal {
                    return Err(Unsupported("a TanhNormal action prior".into()));
                }
                let x = Draw { x: a.x, pre: None };
                parts.push(KlPart {
                    v: e.log_prob(p, x)?,
                    coef: 1.0,
                });
            }
            parts
        }
        _ => return Err(Unsupported("an unexpected KL-like term".into())),
    })
}
