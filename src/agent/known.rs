//! Behaviour learning with known dynamics (`imagine { … start = prior }`, issue 19): the
//! imagined rollouts run in the model's own `p` (its states and latents as declared), so
//! there is no world model to learn and no environment is needed to train.
//!
//! Input: a checked model whose `imagine` block says `start = prior` (the checker's `E097`
//! proved `p` declared: no observed variable, no net or parameter in `p`), a [`KnownConfig`]
//! and a run directory. Output (in the directory): `metrics.jsonl` (one line per update),
//! `episodes.jsonl` (evaluation episodes acted in an environment, `env_step` = updates done),
//! `checkpoint.safetensors` (parameters and Adam moments), `known.json` (the counters and
//! settings) and `visited.bin` (the visited-state buffer, so a resumed run goes on exactly).
//!
//! Each update draws its start states half from the model's own initial distribution (p's
//! static latents, then the first step of every chain variable: [`Sampler`]) and half from
//! the buffer of states visited by rolling the current policy (sampled actions) through p for
//! whole episodes ([`Roller`], every `roll_every` updates): Dreamer's replay starts, generated
//! by the known model, so the policy also learns from the states a swing-up passes through.
//! From the start states [`Behaviour`] runs the actor (λ-return through the reparameterised
//! actions and the known dynamics) and the critic (regression on the λ-returns) as for Dreamer.
//!
//! Acting in an environment ([`ObsPolicy`]): the environment's observation is placed, in
//! declaration order, into the variables the policy reads at step t (their sizes must add up
//! to the observation's; `E302` otherwise), and the policy's mode (evaluation) or a draw acts.
//!
//! Invariants: every random draw comes from a stream keyed by (seed, update, purpose), so a
//! run is reproducible and a resumed run continues it exactly.

use super::behaviour::{init_value, Behaviour, BehaviourConfig, BehaviourStats};
use super::env::{Env, EnvSpec};
use super::episodes::{self, Record};
use super::rollout::{episode_in, Policy};
use crate::diag::{Code, Diagnostic};
use crate::family::Family;
use crate::fused::build::{DistV, ParamIndex, Stepper, Unsupported, R};
use crate::fused::families::Noise;
use crate::fused::graph::View;
use crate::fused::kernels::Worker;
use crate::ir::*;
use crate::lower::plan::prior_order;
use crate::lower::Program;
use crate::train::{EngineChoice, TrainConfig, Trainer};
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How known-dynamics behaviour learning runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KnownConfig {
    /// Behaviour updates in all (counting resumed ones).
    pub updates: u64,
    /// Start states per update.
    pub starts: usize,
    /// The share of start states drawn from the initial distribution (the rest from the
    /// visited-state buffer, once it holds any).
    pub prior_share: f64,
    /// Updates between rollouts of the policy in p that fill the buffer.
    pub roll_every: u64,
    /// Episodes per rollout.
    pub roll_episodes: usize,
    /// Steps per rolled episode (the environment's episode length).
    pub episode_steps: usize,
    /// Visited states kept (the oldest are replaced).
    pub buffer: usize,
    /// The actor's and critic's optimisers.
    pub behaviour: BehaviourConfig,
    /// Updates between evaluations in the environment (0: none).
    pub eval_every: u64,
    /// Episodes per evaluation (the policy's mode).
    pub eval_episodes: usize,
    /// Seeds the parameters, the start states, the rollouts and the noise.
    pub seed: u64,
    /// Workers (0: one per core, at most 2).
    pub threads: usize,
}

impl Default for KnownConfig {
    fn default() -> Self {
        KnownConfig {
            updates: 8_000,
            starts: 512,
            prior_share: 0.5,
            roll_every: 10,
            roll_episodes: 8,
            episode_steps: 200,
            buffer: 50_000,
            behaviour: BehaviourConfig {
                actor_lr: 3e-4,
                critic_lr: 3e-4,
                ..BehaviourConfig::DEFAULT
            },
            eval_every: 1_000,
            eval_episodes: 5,
            seed: 0,
            threads: 0,
        }
    }
}

/// The counters (`known.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KnownProgress {
    /// Behaviour updates done.
    pub updates: u64,
    /// Evaluations done.
    pub evals: u64,
    /// Model steps rolled into the buffer.
    pub rolled: u64,
    /// Seconds of wall-clock time spent, summed over sessions.
    pub seconds: f64,
    /// The settings of the session that wrote it.
    #[serde(default)]
    pub config: Option<KnownConfig>,
}

/// What the loop tells its caller.
pub trait KnownObserver {
    /// Whether to stop (checkpointed first).
    fn should_stop(&mut self) -> bool {
        false
    }
    /// An update was done; `rollout`: the mean return (the model's reward) of the latest
    /// rollout of the sampled policy in p.
    fn updated(&mut self, _p: &KnownProgress, _b: &BehaviourStats, _rollout: f64) {}
    /// An evaluation in the environment ended: its returns.
    fn evaluated(&mut self, _p: &KnownProgress, _returns: &[f64]) {}
}

impl KnownObserver for () {}

/// The files of a known-dynamics run directory (what `--force` replaces).
pub const OUTPUTS: [&str; 7] = [
    "episodes.jsonl",
    "metrics.jsonl",
    "checkpoint.safetensors",
    "known.json",
    "visited.bin",
    "returns.svg",
    "model.vmodel",
];

fn diag(code: Code, msg: impl Into<String>, help: &str) -> Diagnostic {
    Diagnostic::new(code, msg.into()).help(help.to_string())
}

fn stream(seed: u64, k: u64, purpose: u64) -> crate::runtime::rng::Rng {
    crate::runtime::rng::Rng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)
            ^ purpose.wrapping_mul(0x94D0_49BB_1331_11EB)
            ^ 0x4B4E_4F57_4E00_0019,
    )
}

/// The timed chain variables imagination starts from (latents and states, p's order): the
/// same list as [`Behaviour::state_vars`].
pub fn chain_vars(m: &Model) -> Vec<VarId> {
    let (_, timed) = prior_order(m);
    (timed.into_iter())
        .filter(|cv| matches!(m.vars[cv.var].role, Role::Latent | Role::State))
        .map(|cv| cv.var)
        .collect()
}

fn fill_noise(w: &mut Worker, noise: &[(View, Noise)], rng: &mut crate::runtime::rng::Rng) {
    for (nv, kind) in noise {
        for x in w.vals_mut(nv.buf) {
            *x = kind.draw(rng);
        }
    }
}

/// Draws start states from p's initial distribution: the static latents from their priors,
/// then every timed chain variable at step 1 (lags at step 1 read the `init` values).
pub struct Sampler {
    w: Worker,
    noise: Vec<(View, Noise)>,
    /// Per chain variable ([`chain_vars`] order): its value at step 1.
    out: Vec<View>,
    rows: usize,
}

/// Data views holding each timed chain variable's and the action's `init` value at step 0.
fn place_inits(e: &mut Stepper, m: &Model, action: VarId) -> Vec<(View, Vec<f32>)> {
    let (_, timed) = prior_order(m);
    let mut out = Vec::new();
    for v in timed.iter().map(|cv| cv.var).chain([action]) {
        let d = e.data(m.vars[v].ty.size());
        e.set(v, 0, d);
        out.push((d, init_value(m, v, 0)));
    }
    out
}

fn set_rows(w: &mut Worker, v: View, row: &[f32]) {
    let cols = row.len();
    for (i, x) in w.vals_mut(v.buf).iter_mut().enumerate() {
        *x = row[i % cols];
    }
}

impl Sampler {
    /// The sampler of `rows` start states.
    pub fn new(prog: &Program, index: &ParamIndex, rows: usize) -> R<Sampler> {
        let m = &prog.model;
        let b = (m.behaviour.as_ref()).ok_or_else(|| Unsupported("no `imagine` block".into()))?;
        let none = HashSet::new();
        let mut e = Stepper::new(prog, index, &none, rows);
        let (statics, timed) = prior_order(m);
        let inits = place_inits(&mut e, m, b.action);
        for cv in statics.iter().chain(&timed) {
            let step = if m.vars[cv.var].timed { 1 } else { 0 };
            let Some(p) = cv.at(1) else {
                return Err(Unsupported(format!(
                    "`{}` has no factor at step 1 in p",
                    m.vars[cv.var].name
                )));
            };
            let size = m.vars[cv.var].ty.size();
            let x = match &m.factors[p.factor].body {
                FactorBody::Define(x) => e.eval(x, 1)?,
                FactorBody::Sample(d) => {
                    let dv = e.dist(d, size, 1)?.ok_or_else(|| {
                        Unsupported(format!("a Flat prior of `{}`", m.vars[cv.var].name))
                    })?;
                    e.sample(dv)?.x
                }
            };
            e.set(cv.var, step, x);
        }
        let out = (chain_vars(m).into_iter())
            .map(|v| {
                e.get(v, 1)
                    .ok_or_else(|| Unsupported("a chain variable".into()))
            })
            .collect::<R<Vec<_>>>()?;
        let noise = e.noise();
        let mut w = Worker::new(e.into_graph());
        for (v, x) in inits {
            set_rows(&mut w, v, &x);
        }
        Ok(Sampler {
            w,
            noise,
            out,
            rows,
        })
    }

    /// `rows` draws of every chain variable at step 1 (per variable, row-major).
    pub fn draw(&mut self, rng: &mut crate::runtime::rng::Rng) -> Vec<Vec<f32>> {
        fill_noise(&mut self.w, &self.noise, rng);
        self.w.forward();
        self.out.iter().map(|v| self.w.view(*v).to_vec()).collect()
    }

    /// Rows per draw.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// One step of the policy and the known dynamics over `rows` episodes: the chain variables at
/// step t (data) → the action drawn from the policy, the reward, the chain variables at t + 1.
pub struct Roller {
    w: Worker,
    noise: Vec<(View, Noise)>,
    now: Vec<View>,
    next: Vec<View>,
    reward: View,
    rows: usize,
}

impl Roller {
    /// The step program over `rows` episodes.
    pub fn new(prog: &Program, index: &ParamIndex, rows: usize) -> R<Roller> {
        let m = &prog.model;
        let b = (m.behaviour.as_ref()).ok_or_else(|| Unsupported("no `imagine` block".into()))?;
        let none = HashSet::new();
        let mut e = Stepper::new(prog, index, &none, rows);
        let (_, timed) = prior_order(m);
        let vars = chain_vars(m);
        // Step 2 stands for any general step t (its lags read step 1 = the data).
        let t = 2;
        let mut now = Vec::new();
        for &v in &vars {
            let d = e.data(m.vars[v].ty.size());
            e.set(v, t, d);
            now.push(d);
        }
        let asize = m.vars[b.action].ty.size();
        let q =
            (e.dist(&b.policy, asize, t)?).ok_or_else(|| Unsupported("a Flat policy".into()))?;
        let a = e.sample(q)?;
        e.set(b.action, t, a.x);
        let reward = e.eval(&b.reward, t)?;
        let mut next = Vec::new();
        for cv in timed.iter().filter(|cv| vars.contains(&cv.var)) {
            let Some(p) = cv.at(t as u32 + 1) else {
                return Err(Unsupported(format!(
                    "`{}` has no general case in p",
                    m.vars[cv.var].name
                )));
            };
            let size = m.vars[cv.var].ty.size();
            let x = match &m.factors[p.factor].body {
                FactorBody::Define(x) => e.eval(x, t + 1)?,
                FactorBody::Sample(d) => {
                    let dv = e.dist(d, size, t + 1)?.ok_or_else(|| {
                        Unsupported(format!("a Flat prior of `{}`", m.vars[cv.var].name))
                    })?;
                    e.sample(dv)?.x
                }
            };
            e.set(cv.var, t + 1, x);
        }
        for &v in &vars {
            next.push(
                e.get(v, t + 1)
                    .ok_or_else(|| Unsupported("a chain variable".into()))?,
            );
        }
        let noise = e.noise();
        Ok(Roller {
            w: Worker::new(e.into_graph()),
            noise,
            now,
            next,
            reward,
            rows,
        })
    }

    /// Rolls `steps` steps from `start` (per chain variable, `rows` rows each) with the policy
    /// of `values`; calls `visit` with every state passed through (the start included, the
    /// last not) and returns the mean return (the model's reward) per episode.
    pub fn roll(
        &mut self,
        start: &[Vec<f32>],
        steps: usize,
        values: &[Vec<f32>],
        rng: &mut crate::runtime::rng::Rng,
        mut visit: impl FnMut(&[Vec<f32>]),
    ) -> f64 {
        let params: Vec<&[f32]> = values.iter().map(|v| v.as_slice()).collect();
        self.w.set_params(&params);
        let mut state: Vec<Vec<f32>> = start.to_vec();
        let mut ret = 0.0f64;
        for _ in 0..steps {
            visit(&state);
            for (v, x) in self.now.iter().zip(&state) {
                self.w.vals_mut(v.buf).copy_from_slice(x);
            }
            fill_noise(&mut self.w, &self.noise, rng);
            self.w.forward();
            ret += self
                .w
                .view(self.reward)
                .iter()
                .map(|&r| r as f64)
                .sum::<f64>();
            state = self.next.iter().map(|v| self.w.view(*v).to_vec()).collect();
        }
        ret / self.rows as f64
    }
}

/// A policy acting in an environment from its observations: the observation fills the
/// variables the policy reads (declaration order), then the policy's mode or a draw acts.
pub struct ObsPolicy {
    w: Worker,
    inputs: Vec<View>,
    policy: DistV,
    action: View,
    noise: Vec<(View, Noise)>,
    values: Vec<Vec<f32>>,
    /// Act with the policy's mode.
    pub greedy: bool,
    rng: rand::rngs::StdRng,
}

/// The variables the policy of `m` reads, for an environment observing `obs_dim` values:
/// each read at step t (no lag), their sizes adding up to `obs_dim` (`E302` otherwise).
pub fn policy_inputs(m: &Model, obs_dim: usize) -> Result<Vec<VarId>, Diagnostic> {
    let b = (m.behaviour.as_ref()).ok_or_else(|| {
        diag(
            Code::Unsupported,
            format!("`{}` has no `imagine` block", m.name),
            "add an `imagine { … }` block",
        )
    })?;
    let mut vars: Vec<VarId> = Vec::new();
    for r in &b.policy_parents {
        if r.time != TimeRef::Lag(0) || !m.vars[r.var].timed {
            return Err(diag(
                Code::EnvSpace,
                format!(
                    "the policy reads `{}` other than at step t: acting places the environment's observation in what the policy reads at step t",
                    m.vars[r.var].name
                ),
                "let the policy read this step's observation only, e.g. a state `o[t] = concat(cos(th[t]), sin(th[t]), thd[t])` and `policy a[t] ~ TanhNormal.split(actor(o[t]))`",
            ));
        }
        if !vars.contains(&r.var) {
            vars.push(r.var);
        }
    }
    vars.sort();
    let total: usize = vars.iter().map(|&v| m.vars[v].ty.size()).sum();
    if total != obs_dim {
        let names: Vec<String> = (vars.iter())
            .map(|&v| format!("`{}` ({})", m.vars[v].name, m.vars[v].ty.size()))
            .collect();
        return Err(diag(
            Code::EnvSpace,
            format!(
                "the environment observes {obs_dim} values; the policy of `{}` reads {} ({total} values)",
                m.name,
                if names.is_empty() { "nothing".to_string() } else { names.join(", ") }
            ),
            "acting with known dynamics places the observation in the variables the policy reads at step t, in declaration order: declare a state of the observation's size (`o[t] = concat(cos(th[t]), sin(th[t]), thd[t])` for Pendulum-v1) and let the policy read it",
        ));
    }
    Ok(vars)
}

impl ObsPolicy {
    /// The one-row acting program of `prog` for an environment of `spec`.
    pub fn new(
        prog: &Program,
        index: &ParamIndex,
        spec: &EnvSpec,
        values: Vec<Vec<f32>>,
        seed: u64,
    ) -> Result<ObsPolicy, Diagnostic> {
        let m = &prog.model;
        let vars = policy_inputs(m, spec.obs.dim())?;
        if spec.act.dim()
            != m.vars[m.behaviour.as_ref().expect("checked").action]
                .ty
                .size()
        {
            let b = m.behaviour.as_ref().expect("checked");
            return Err(diag(
                Code::EnvSpace,
                format!(
                    "the environment's action has {} values; `{}` has {}",
                    spec.act.dim(),
                    m.vars[b.action].name,
                    m.vars[b.action].ty.size()
                ),
                "choose the model whose action size matches the environment",
            ));
        }
        let build = || -> R<ObsPolicy> {
            let b = m.behaviour.as_ref().expect("checked");
            let none = HashSet::new();
            let mut e = Stepper::new(prog, index, &none, 1);
            let mut inputs = Vec::new();
            for &v in &vars {
                let d = e.data(m.vars[v].ty.size());
                e.set(v, 2, d);
                inputs.push(d);
            }
            let asize = m.vars[b.action].ty.size();
            let policy = (e.dist(&b.policy, asize, 2)?)
                .ok_or_else(|| Unsupported("a Flat policy".into()))?;
            let action = e.sample(policy)?.x;
            let noise = e.noise();
            Ok(ObsPolicy {
                w: Worker::new(e.into_graph()),
                inputs,
                policy,
                action,
                noise,
                values: values.clone(),
                greedy: true,
                rng: rand::rngs::StdRng::seed_from_u64(seed),
            })
        };
        build().map_err(|u| {
            diag(
                Code::Unsupported,
                format!("cannot act with `{}`: {}", m.name, u.0),
                "the policy runs one step at a time on the observation",
            )
        })
    }

    /// New parameter values.
    pub fn set_values(&mut self, values: &[Vec<f32>]) {
        for (a, b) in self.values.iter_mut().zip(values) {
            a.copy_from_slice(b);
        }
    }

    /// Re-seed the draws.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = rand::rngs::StdRng::seed_from_u64(seed);
    }
}

impl Policy for ObsPolicy {
    fn act(&mut self, obs: &[f32], _first: bool) -> Result<Vec<f32>, Diagnostic> {
        let want: usize = self.inputs.iter().map(|v| self.w.g.cols(*v)).sum();
        if obs.len() != want {
            return Err(diag(
                Code::EnvSpace,
                format!(
                    "the environment gave {} observation values; the policy reads {want}",
                    obs.len()
                ),
                "choose the model whose policy inputs match the environment's observation",
            ));
        }
        let mut at = 0;
        for v in self.inputs.clone() {
            let c = self.w.g.cols(v);
            self.w.vals_mut(v.buf).copy_from_slice(&obs[at..at + c]);
            at += c;
        }
        for (nv, kind) in &self.noise {
            for x in self.w.vals_mut(nv.buf) {
                *x = kind.draw(&mut self.rng);
            }
        }
        let params: Vec<&[f32]> = self.values.iter().map(|v| v.as_slice()).collect();
        self.w.set_params(&params);
        self.w.forward();
        let a: Vec<f32> = if self.greedy {
            let loc = self.w.view(self.policy.loc);
            match self.policy.family {
                Family::TanhNormal => loc.iter().map(|x| x.tanh()).collect(),
                _ => loc.to_vec(),
            }
        } else {
            self.w.view(self.action).to_vec()
        };
        if a.iter().any(|x| !x.is_finite()) {
            return Err(diag(
                Code::NonFinite,
                "the policy's action is not finite",
                "the parameters diverged: lower the learning rates or resume from an earlier checkpoint",
            ));
        }
        Ok(a.iter().map(|x| x.clamp(-1.0, 1.0)).collect())
    }
}

/// The visited-state buffer: per chain variable, rows of its size; a ring of `cap` rows.
#[derive(Clone, Debug, Default)]
pub struct Visited {
    sizes: Vec<usize>,
    data: Vec<Vec<f32>>,
    len: usize,
    next: usize,
    cap: usize,
}

impl Visited {
    /// An empty buffer of `cap` states of variables of `sizes`.
    pub fn new(sizes: Vec<usize>, cap: usize) -> Visited {
        Visited {
            data: sizes.iter().map(|s| vec![0.0; s * cap]).collect(),
            sizes,
            len: 0,
            next: 0,
            cap: cap.max(1),
        }
    }

    /// States held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds the rows of `state` (per variable, `rows` rows each).
    pub fn push(&mut self, state: &[Vec<f32>], rows: usize) {
        for i in 0..rows {
            let at = self.next;
            for ((d, s), &c) in self.data.iter_mut().zip(state).zip(&self.sizes) {
                d[at * c..(at + 1) * c].copy_from_slice(&s[i * c..(i + 1) * c]);
            }
            self.next = (self.next + 1) % self.cap;
            self.len = (self.len + 1).min(self.cap);
        }
    }

    /// Appends `n` uniformly drawn states to `out` (per variable).
    pub fn sample_into(&self, n: usize, rng: &mut crate::runtime::rng::Rng, out: &mut [Vec<f32>]) {
        for _ in 0..n {
            let i = rng.gen_range(0..self.len);
            for ((o, d), &c) in out.iter_mut().zip(&self.data).zip(&self.sizes) {
                o.extend_from_slice(&d[i * c..(i + 1) * c]);
            }
        }
    }

    fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for x in [self.len as u64, self.next as u64, self.cap as u64] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        for (d, &c) in self.data.iter().zip(&self.sizes) {
            for x in &d[..self.cap * c] {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        let tmp = path.with_extension("bin.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, path)
    }

    fn load(&mut self, path: &Path) -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let u = |i: usize| -> Result<u64, String> {
            let b = bytes.get(i * 8..i * 8 + 8).ok_or("truncated")?;
            Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let (len, next, cap) = (u(0)? as usize, u(1)? as usize, u(2)? as usize);
        let want =
            (cap.checked_mul(4 * self.sizes.iter().sum::<usize>())).and_then(|b| b.checked_add(24));
        if want != Some(bytes.len()) || len > cap || next >= cap.max(1) {
            let want = want.map_or("more than memory".to_string(), |w| w.to_string());
            return Err(format!(
                "{} bytes for {cap} states (expected {want})",
                bytes.len()
            ));
        }
        *self = Visited::new(self.sizes.clone(), cap);
        let mut at = 24;
        for (d, &c) in self.data.iter_mut().zip(&self.sizes) {
            for x in d[..cap * c].iter_mut() {
                *x = f32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
                at += 4;
            }
        }
        self.len = len;
        self.next = next;
        Ok(())
    }
}

/// One metrics line.
#[derive(Serialize)]
struct Metric<'a> {
    update: u64,
    #[serde(flatten)]
    behaviour: &'a BehaviourStats,
    rollout_return: f64,
    buffer: usize,
    time: f64,
}

/// The known-dynamics learner.
pub struct Known {
    /// The parameters' store and the Adam moments (nothing trains the ELBO).
    pub trainer: Trainer,
    behaviour: Behaviour,
    sampler: Sampler,
    roll_sampler: Sampler,
    roller: Roller,
    policy: ObsPolicy,
    /// The visited-state buffer.
    pub visited: Visited,
    /// All parameter values (index order).
    pub values: Vec<Vec<f32>>,
    /// The configuration.
    pub cfg: KnownConfig,
    /// The counters.
    pub progress: KnownProgress,
    /// On resume: settings that differ from the saved run's.
    pub changed: Vec<String>,
    last_rollout: f64,
    dir: PathBuf,
}

fn unsupported(name: &str, u: Unsupported) -> Diagnostic {
    diag(
        Code::Unsupported,
        format!("cannot imagine with `{name}`: {}", u.0),
        "known-dynamics imagination runs p one step at a time: nets over whole sequences (`rnn`) and discrete draws are not available there",
    )
}

impl Known {
    /// A learner for `program` (its `imagine` block says `start = prior`), evaluated in an
    /// environment of `spec`, writing to `dir`; with `resume`, the state saved there is loaded.
    pub fn new(
        program: Program,
        spec: &EnvSpec,
        cfg: KnownConfig,
        dir: &Path,
        resume: bool,
    ) -> Result<Known, Diagnostic> {
        let m = &program.model;
        let name = m.name.clone();
        match &m.behaviour {
            Some(b) if b.start == ImagineStart::Prior => {}
            _ => {
                return Err(diag(
                    Code::KnownDynamics,
                    format!("`{name}` does not imagine with known dynamics"),
                    "known-dynamics imagination needs `start = prior` in the `imagine` block",
                ))
            }
        }
        let tc = TrainConfig {
            batch: 1,
            lr: cfg.behaviour.actor_lr,
            seed: cfg.seed,
            holdout: 0.0,
            engine: EngineChoice::Fused,
            threads: cfg.threads,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(program, None, tc).map_err(|e| {
            diag(
                Code::Backend,
                e.to_string(),
                "report this with the model file",
            )
        })?;
        let mut progress = KnownProgress::default();
        if resume {
            let ck = dir.join("checkpoint.safetensors");
            trainer.resume(&ck).map_err(|e| {
                diag(
                    Code::BadCheckpoint,
                    format!("cannot resume from `{}`: {e}", ck.display()),
                    "resume with the model and settings that wrote the run, or start a new one",
                )
            })?;
            let path = dir.join("known.json");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                diag(
                    Code::BadCheckpoint,
                    format!("cannot read `{}`: {e}", path.display()),
                    "the run directory is incomplete (a known-dynamics run writes `known.json`); start a new run",
                )
            })?;
            progress = serde_json::from_str(&text).map_err(|e| {
                diag(
                    Code::BadCheckpoint,
                    format!("`known.json`: {e}"),
                    "the run directory is damaged; start a new run",
                )
            })?;
        }
        let changed = progress.config.take().map_or_else(Vec::new, |then| {
            super::learn::config_changes(&then, &cfg, &["updates", "threads"])
        });
        let (index, values) = super::learn::param_index(&trainer.store);
        let prog = &trainer.program;
        let im = (prog.elbo.imagination.clone()).ok_or_else(|| {
            diag(
                Code::Unsupported,
                format!("`{name}` derives no imagination"),
                "report this with the model file",
            )
        })?;
        let workers = match cfg.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let behaviour = Behaviour::new(
            prog,
            &im,
            &index,
            cfg.starts.max(1),
            workers,
            cfg.behaviour.clone(),
        )
        .map_err(|u| unsupported(&name, u))?;
        let sampler =
            Sampler::new(prog, &index, cfg.starts.max(1)).map_err(|u| unsupported(&name, u))?;
        let roll_sampler = Sampler::new(prog, &index, cfg.roll_episodes.max(1))
            .map_err(|u| unsupported(&name, u))?;
        let roller = Roller::new(prog, &index, cfg.roll_episodes.max(1))
            .map_err(|u| unsupported(&name, u))?;
        let policy = ObsPolicy::new(prog, &index, spec, values.clone(), cfg.seed)?;
        let sizes = (behaviour.state_vars.iter())
            .map(|&v| prog.model.vars[v].ty.size())
            .collect();
        let mut visited = Visited::new(sizes, cfg.buffer);
        if resume {
            let path = dir.join("visited.bin");
            visited.load(&path).map_err(|e| {
                diag(
                    Code::BadCheckpoint,
                    format!("cannot read `{}`: {e}", path.display()),
                    "the run directory is damaged; start a new run",
                )
            })?;
        }
        Ok(Known {
            trainer,
            behaviour,
            sampler,
            roll_sampler,
            roller,
            policy,
            visited,
            values,
            cfg,
            progress,
            changed,
            last_rollout: f64::NAN,
            dir: dir.to_path_buf(),
        })
    }

    /// The start states of update `n`: `prior_share` from the initial distribution, the rest
    /// from the visited states (all from the initial distribution while the buffer is empty).
    pub fn starts(&mut self, n: u64) -> Vec<Vec<f32>> {
        let total = self.sampler.rows();
        let mut r = stream(self.cfg.seed, n, 1);
        let prior = self.sampler.draw(&mut r);
        if self.visited.is_empty() {
            return prior;
        }
        let k = ((total as f64 * self.cfg.prior_share).round() as usize).min(total);
        let sizes: Vec<usize> = (prior.iter()).map(|p| p.len() / total.max(1)).collect();
        let mut out: Vec<Vec<f32>> = (prior.iter().zip(&sizes))
            .map(|(p, &c)| p[..k * c].to_vec())
            .collect();
        self.visited.sample_into(total - k, &mut r, &mut out);
        out
    }

    /// Rolls the sampled policy in p for whole episodes from the initial distribution and adds
    /// every state passed through to the buffer; returns the mean episode return.
    pub fn roll(&mut self, n: u64) -> f64 {
        let mut r = stream(self.cfg.seed, n, 2);
        let start = self.roll_sampler.draw(&mut r);
        let rows = self.roll_sampler.rows();
        let visited = &mut self.visited;
        let ret = self
            .roller
            .roll(&start, self.cfg.episode_steps, &self.values, &mut r, |s| {
                visited.push(s, rows)
            });
        self.progress.rolled += (rows * self.cfg.episode_steps) as u64;
        ret
    }

    /// One behaviour update (rolling the policy into the buffer first when due).
    pub fn update(&mut self) -> Result<BehaviourStats, Diagnostic> {
        let n = self.progress.updates;
        if n.is_multiple_of(self.cfg.roll_every.max(1)) {
            self.last_rollout = self.roll(n);
        }
        let starts = self.starts(n);
        self.trainer.adam.step += 1;
        let mut r = stream(self.cfg.seed, n, 3);
        let bs = self
            .behaviour
            .update(
                &starts,
                None,
                &mut self.values,
                &mut self.trainer.adam,
                &mut r,
            )
            .map_err(|e| {
                diag(
                    Code::NonFinite,
                    format!("behaviour update {}: {e}", n + 1),
                    "lower `--actor-lr`/`--critic-lr` or resume from the last checkpoint",
                )
            })?;
        self.progress.updates += 1;
        Ok(bs)
    }

    /// `n` episodes acting with the policy's mode in `env` from reset seeds `base + k`.
    pub fn evaluate_in(
        &mut self,
        env: &mut dyn Env,
        n: usize,
        base: u64,
    ) -> Result<Vec<f64>, Diagnostic> {
        let spec = env.spec().clone();
        let max = spec.max_steps.unwrap_or(1000);
        let (low, high) = (spec.act.low.clone(), spec.act.high.clone());
        self.policy.set_values(&self.values);
        self.policy.greedy = true;
        (0..n as u64)
            .map(|k| {
                let seed = base + k;
                self.policy.reseed(seed ^ 0x5EED);
                let (l, h) = (low.clone(), high.clone());
                let out = episode_in(
                    env,
                    &mut self.policy as &mut dyn Policy,
                    seed,
                    max,
                    move |a| super::act::to_box(a, &l, &h),
                )?;
                Ok(out.episode.ret())
            })
            .collect()
    }

    /// `n` episodes with the policy's mode from reset seeds `2_000_000 + k` (the dreamer
    /// agent's `--evaluate` starts), nothing learned or written: their returns.
    pub fn evaluate_only(&mut self, env: &mut dyn Env, n: usize) -> Result<Vec<f64>, Diagnostic> {
        self.evaluate_in(env, n, 2_000_000)
    }

    /// Writes the checkpoint, the buffer and the counters.
    pub fn save(&mut self) -> Result<(), Diagnostic> {
        let cannot = |e: String| {
            diag(
                Code::CannotWrite,
                e,
                "check that the run directory is writable and the disk is not full",
            )
        };
        for (v, (_, p)) in self.values.iter().zip(self.trainer.store.iter_mut()) {
            p.set_host(v);
        }
        self.trainer.step = self.progress.updates;
        (self.trainer.save(&self.dir.join("checkpoint.safetensors")))
            .map_err(|e| cannot(e.to_string()))?;
        (self.visited.save(&self.dir.join("visited.bin")))
            .map_err(|e| cannot(format!("cannot write `visited.bin`: {e}")))?;
        self.progress.config = Some(self.cfg.clone());
        let text = serde_json::to_string_pretty(&self.progress).expect("serialises");
        let tmp = self.dir.join("known.json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, self.dir.join("known.json")))
            .map_err(|e| cannot(format!("cannot write `known.json`: {e}")))
    }

    /// Runs updates until `cfg.updates` (or the observer stops it), evaluating in `env` every
    /// `eval_every` updates (from fixed reset seeds `1_000_000 + k`) and checkpointing then.
    pub fn run(
        &mut self,
        env: &mut dyn Env,
        obs: &mut impl KnownObserver,
    ) -> Result<(), Diagnostic> {
        let t0 = Instant::now();
        let secs0 = self.progress.seconds;
        let metrics = self.dir.join("metrics.jsonl");
        let ep_path = self.dir.join("episodes.jsonl");
        let mut mfile = super::episodes::open_log(&metrics)?;
        loop {
            if let Some(due) = self.progress.updates.checked_div(self.cfg.eval_every) {
                if self.progress.evals < due + 1 {
                    let rets = self.evaluate_in(env, self.cfg.eval_episodes, 1_000_000)?;
                    for (k, r) in rets.iter().enumerate() {
                        let rec = Record {
                            env_step: self.progress.updates,
                            ret: *r,
                            length: self.cfg.episode_steps as u64,
                            eval: true,
                            seed: 1_000_000 + k as u64,
                        };
                        episodes::append(&ep_path, &rec)?;
                    }
                    self.progress.evals = due + 1;
                    self.progress.seconds = secs0 + t0.elapsed().as_secs_f64();
                    obs.evaluated(&self.progress, &rets);
                    self.save()?;
                }
            }
            if self.progress.updates >= self.cfg.updates || obs.should_stop() {
                break;
            }
            let bs = self.update()?;
            self.progress.seconds = secs0 + t0.elapsed().as_secs_f64();
            let line = serde_json::to_string(&Metric {
                update: self.progress.updates,
                behaviour: &bs,
                rollout_return: self.last_rollout,
                buffer: self.visited.len(),
                time: self.progress.seconds,
            })
            .expect("serialises");
            use std::io::Write;
            let _ = writeln!(mfile, "{line}");
            obs.updated(&self.progress, &bs, self.last_rollout);
        }
        self.progress.seconds = secs0 + t0.elapsed().as_secs_f64();
        self.save()
    }
}
