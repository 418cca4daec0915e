//! The agent's loop (Dreamer's): act in the environment from the filtered posterior, store
//! the episodes in the replay, and alternate world-model updates (the ELBO on replay windows)
//! with behaviour updates (imagination from the posterior states of the same windows);
//! evaluate with the policy's mode every so many environment steps; checkpoint after every
//! episode.
//!
//! Input: a checked model with an `imagine` block, an environment, an [`AgentConfig`] and a
//! run directory. Output (in the directory): `episodes.jsonl`, `metrics.jsonl` (one line per
//! update), `checkpoint.safetensors` (every parameter and every Adam moment), `replay.npz`,
//! `agent.json` (the loop's counters, for resume). The library owns the loop; the caller sees
//! it through an [`AgentObserver`].

use super::act::{to_box, Filtered};
use super::behaviour::{Behaviour, BehaviourConfig, BehaviourStats};
use super::env::Env;
use super::episodes::{self, Record};
use super::replay::{Episode, Names, Replay};
use super::rollout::{episode_in, Policy, Random};
use crate::diag::{Code, Diagnostic};
use crate::fused::build::ParamIndex;
use crate::ir::{Role, VarId};
use crate::lower::{Batch, Program};
use crate::train::{EngineChoice, TrainConfig, Trainer};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The files of an agent's run directory (what `--force` replaces).
pub const OUTPUTS: [&str; 8] = [
    "episodes.jsonl",
    "metrics.jsonl",
    "checkpoint.safetensors",
    "replay.npz",
    "agent.json",
    "slow_critic.bin",
    "returns.svg",
    "model.vmodel",
];

/// How the agent learns (defaults: Dreamer's, with twice its update ratio and faster actor and
/// critic rates for a 20k–50k-step budget: the settings of docs/agent.md's runs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Training environment steps.
    pub env_steps: u64,
    /// Steps of uniformly random actions before learning starts.
    pub prefill: u64,
    /// Environment steps per update (default 5; Dreamer: 1000 steps, 100 updates → 10).
    pub train_every: u64,
    /// World-model batch: windows per update.
    pub batch: usize,
    /// World-model batch: steps per window.
    pub length: usize,
    /// Start states of each behaviour update: this many of the batch's B·T posterior states,
    /// evenly spaced along each window ([`start_rows`]); `None`: half of them
    /// ([`default_starts`]). [`Agent::new`] resolves it, so a run's `agent.json` records the
    /// number (runs written before it was a setting lack it: they imagined from all B·T).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<usize>,
    /// The world model's Adam learning rate (Dreamer: 6·10⁻⁴).
    pub model_lr: f64,
    /// The world model's gradient-norm clipping (Dreamer: 100).
    pub model_clip: f64,
    /// The actor's and critic's optimisers.
    pub behaviour: BehaviourConfig,
    /// Environment steps between evaluations.
    pub eval_every: u64,
    /// Episodes per evaluation (the policy's mode).
    pub eval_episodes: usize,
    /// Seeds the parameters, the environment's resets, the replay windows and the noise.
    pub seed: u64,
    /// Workers (0: one per core, at most 2).
    #[serde(default)]
    pub threads: usize,
}

impl AgentConfig {
    /// The defaults, the one home of `vic agent`'s flags and `vic.agent`'s keywords.
    pub const DEFAULT: AgentConfig = AgentConfig {
        env_steps: 20_000,
        prefill: 1_000,
        train_every: 5,
        batch: 16,
        length: 50,
        starts: None,
        model_lr: 6e-4,
        model_clip: 100.0,
        behaviour: BehaviourConfig::DEFAULT,
        eval_every: 2_000,
        eval_episodes: 5,
        seed: 0,
        threads: 0,
    };
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig::DEFAULT
    }
}

/// The loop's counters (`agent.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Training environment steps taken.
    pub env_steps: u64,
    /// Training episodes finished.
    pub episodes: u64,
    /// Updates done.
    pub updates: u64,
    /// Evaluations done.
    pub evals: u64,
    /// Seconds of wall-clock time spent, summed over sessions.
    pub seconds: f64,
    /// The settings of the session that wrote it.
    #[serde(default)]
    pub config: Option<AgentConfig>,
    /// The return normalisation's moving 5th and 95th percentiles (with `--return-norm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_percentiles: Option<(f64, f64)>,
}

/// What the loop tells its caller.
pub trait AgentObserver {
    /// Whether to stop (checkpointed first).
    fn should_stop(&mut self) -> bool {
        false
    }
    /// An episode ended (training or evaluation).
    fn episode(&mut self, _rec: &Record, _progress: &Progress) {}
    /// An update was done.
    fn updated(&mut self, _progress: &Progress, _elbo: f64, _b: &BehaviourStats) {}
}

impl AgentObserver for () {}

/// One metrics line.
#[derive(Serialize)]
struct Metric<'a> {
    update: u64,
    env_step: u64,
    elbo: f64,
    #[serde(flatten)]
    behaviour: &'a BehaviourStats,
    time: f64,
}

/// The agent: world-model trainer, behaviour learner, acting policy, replay.
pub struct Agent {
    /// The world model's trainer (its store holds every parameter).
    pub trainer: Trainer,
    behaviour: Option<Behaviour>,
    policy: Filtered,
    /// Every episode lived.
    pub replay: Replay,
    names: Names,
    obs_var: VarId,
    rew_var: VarId,
    act_var: VarId,
    cont_var: Option<VarId>,
    index: ParamIndex,
    /// All parameter values (index order); the actor's and critic's are authoritative here.
    values: Vec<Vec<f32>>,
    /// The configuration.
    pub cfg: AgentConfig,
    /// The loop's counters.
    pub progress: Progress,
    /// On resume: the settings that differ from the saved run's (`train_every 5 → 10`).
    pub changed: Vec<String>,
    /// The batch rows (time-major) the behaviour imagines from ([`start_rows`]); `None`: all.
    start_rows: Option<Vec<usize>>,
    dir: PathBuf,
}

/// The settings of a resumed run that differ from the saved run's (`train_every 5 → 10`),
/// `skip` left out (the budget a resume may extend, the worker count).
pub(crate) fn config_changes<C: Serialize>(then: &C, now: &C, skip: &[&str]) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(then).unwrap_or_default(),
        serde_json::to_value(now).unwrap_or_default(),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    // A setting absent from one side (a run written before it existed, an unset option) is a
    // change too, shown as `unset`.
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show =
        |v: Option<&serde_json::Value>| v.map_or_else(|| "unset".to_string(), |v| v.to_string());
    (keys.into_iter())
        .filter(|k| !skip.contains(&k.as_str()) && a.get(*k) != b.get(*k))
        .map(|k| format!("{k} {} → {}", show(a.get(k)), show(b.get(k))))
        .collect()
}

fn diag(code: Code, msg: impl Into<String>, help: &str) -> Diagnostic {
    Diagnostic::new(code, msg.into()).help(help.to_string())
}

/// The observation and reward variables of a model for an environment with `obs_dim`
/// observation values: the timed observed variables, one of that size and one scalar (the
/// continuation flag `cont`, when the model has one, apart).
fn io_vars(p: &Program, obs_dim: usize, cont: Option<VarId>) -> Result<(VarId, VarId), Diagnostic> {
    let m = &p.model;
    let observed: Vec<VarId> = (0..m.vars.len())
        .filter(|&v| m.vars[v].role == Role::Observed && m.vars[v].timed && Some(v) != cont)
        .collect();
    let help = "an agent's model observes two timed variables: the observation (of the \
                environment's size) and the scalar reward, e.g. `observed o[t] : real[3]` and \
                `observed r[t] : real`";
    if observed.len() != 2 {
        return Err(diag(
            Code::EnvSpace,
            format!(
                "`{}` observes {} timed variables; an agent needs the observation and the reward",
                m.name,
                observed.len()
            ),
            help,
        ));
    }
    let size = |v: VarId| m.vars[v].ty.size();
    let (a, b) = (observed[0], observed[1]);
    match (size(a), size(b)) {
        (x, 1) if x == obs_dim => Ok((a, b)),
        (1, x) if x == obs_dim => Ok((b, a)),
        (x, y) => Err(diag(
            Code::EnvSpace,
            format!(
                "the environment observes {obs_dim} values; `{}` observes `{}` ({x}) and `{}` ({y})",
                m.name, m.vars[a].name, m.vars[b].name
            ),
            help,
        )),
    }
}

pub use crate::fused::build::param_index;

fn stream(seed: u64, k: u64, purpose: u64) -> crate::runtime::rng::Rng {
    crate::runtime::rng::Rng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)
            ^ purpose.wrapping_mul(0x94D0_49BB_1331_11EB),
    )
}

impl Agent {
    /// A new agent for `program` acting in an environment of `spec`, writing to `dir`; with
    /// `resume`, the state saved in `dir` is loaded.
    pub fn new(
        program: Program,
        spec: &super::EnvSpec,
        cfg: AgentConfig,
        dir: &Path,
        resume: bool,
    ) -> Result<Agent, Diagnostic> {
        let m = &program.model;
        let Some(b) = &m.behaviour else {
            return Err(diag(
                Code::Unsupported,
                format!("`{}` has no `imagine` block", m.name),
                "an agent learns its behaviour in imagination: add an `imagine { … }` block \
                 (see models/dreamer_pendulum.vmodel)",
            ));
        };
        let act_var = b.action;
        let discrete = matches!(m.vars[act_var].ty, crate::ir::VarType::OneHot { .. });
        match (discrete, spec.discrete) {
            (true, None) => {
                return Err(diag(
                    Code::EnvSpace,
                    format!(
                        "`{}` acts with a discrete (one-hot) `{}`; `{}` has a continuous action space {}",
                        m.name,
                        m.vars[act_var].name,
                        spec.id,
                        spec.act_kind()
                    ),
                    "a Categorical policy acts in a Discrete(n) space: declare the action `input a[t] : real[A]` with a TanhNormal policy for a Box space",
                ))
            }
            (false, Some(_)) => {
                return Err(diag(
                    Code::EnvSpace,
                    format!(
                        "`{}` acts with a real `{}`; `{}` has a discrete action space {}",
                        m.name,
                        m.vars[act_var].name,
                        spec.id,
                        spec.act_kind()
                    ),
                    "declare the action `input a[t] : onehot[A]` with `policy a[t] ~ Categorical(logits = actor(h[t], s[t]))` for a Discrete space (models/dreamer.vmodel does it from the environment)",
                ))
            }
            _ => {}
        }
        if m.vars[act_var].ty.size() != spec.act.dim() {
            return Err(diag(
                Code::EnvSpace,
                format!(
                    "the environment's action has {} values; `{}` has {}",
                    spec.act.dim(),
                    m.vars[act_var].name,
                    m.vars[act_var].ty.size()
                ),
                "choose the model whose action size matches the environment",
            ));
        }
        let cont_var = b.cont.as_ref().map(|c| c.var);
        let (obs_var, rew_var) = io_vars(&program, spec.obs.dim(), cont_var)?;
        let names = Names {
            obs: m.vars[obs_var].name.clone(),
            act: m.vars[act_var].name.clone(),
            rew: m.vars[rew_var].name.clone(),
            cont: cont_var.map(|v| m.vars[v].name.clone()),
        };
        let tc = TrainConfig {
            batch: cfg.batch,
            lr: cfg.model_lr,
            clip: Some(cfg.model_clip),
            seed: cfg.seed,
            holdout: 0.0,
            engine: EngineChoice::Fused,
            threads: cfg.threads,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(program, None, tc).map_err(|e| match e {
            crate::train::TrainError::Unsupported(why) => diag(
                Code::Unsupported,
                format!("the agent's world model needs the fused runtime, which lacks {why}"),
                "write the world model with the features the fused runtime runs (ARCHITECTURE.md, `fused::caps`)",
            ),
            e => diag(Code::Backend, e.to_string(), "report this with the model file"),
        })?;
        let mut progress = Progress::default();
        let mut replay = Replay::new(spec.obs.dim(), spec.act.dim());
        if resume {
            let ck = dir.join("checkpoint.safetensors");
            trainer.resume(&ck).map_err(|e| {
                diag(
                    Code::BadCheckpoint,
                    format!("cannot resume from `{}`: {e}", ck.display()),
                    "resume with the model and settings that wrote the run, or start a new one",
                )
            })?;
            let text = std::fs::read_to_string(dir.join("agent.json")).map_err(|e| {
                diag(
                    Code::BadCheckpoint,
                    format!("cannot read `{}`: {e}", dir.join("agent.json").display()),
                    "the run directory is incomplete; start a new run",
                )
            })?;
            progress = serde_json::from_str(&text).map_err(|e| {
                diag(
                    Code::BadCheckpoint,
                    format!("`agent.json`: {e}"),
                    "the run directory is damaged; start a new run",
                )
            })?;
            replay = Replay::load(&dir.join("replay.npz"), &names)?;
        }
        let (bt, starts) = (cfg.batch * cfg.length, cfg.starts);
        let n = resolve_starts("starts ", starts, cfg.batch, cfg.length)
            .map_err(|(msg, help)| diag(Code::BadFlag, msg, &help))?;
        let cfg = AgentConfig {
            starts: Some(n),
            ..cfg
        };
        let start_rows = (n < bt).then(|| start_rows(cfg.batch, cfg.length, n));
        let changed = progress.config.take().map_or_else(Vec::new, |then| {
            config_changes(&then, &cfg, &["env_steps", "threads"])
        });
        let (index, values) = param_index(&trainer.store);
        let policy = Filtered::new(
            &trainer.program,
            &index,
            obs_var,
            values.clone(),
            cfg.seed,
        )
        .map_err(|u| {
            diag(
                Code::Unsupported,
                format!("cannot act with `{}`: {}", trainer.program.model.name, u.0),
                "acting runs the model one step at a time: nets over whole sequences (`rnn`), static latents and discrete draws are not available there",
            )
        })?;
        Ok(Agent {
            trainer,
            behaviour: None,
            start_rows,
            policy,
            replay,
            names,
            obs_var,
            rew_var,
            act_var,
            cont_var,
            index,
            values,
            cfg,
            progress,
            changed,
            dir: dir.to_path_buf(),
        })
    }

    fn batch(&self, w: &super::replay::Batch) -> Batch {
        let (b, t) = (self.cfg.batch, self.cfg.length);
        let mut data = HashMap::new();
        let tm = |src: &[f32], size: usize| {
            let mut out = vec![0.0f32; b * t * size];
            for i in 0..b {
                for s in 0..t {
                    let from = (i * t + s) * size;
                    let to = (s * b + i) * size;
                    out[to..to + size].copy_from_slice(&src[from..from + size]);
                }
            }
            out
        };
        data.insert(self.obs_var, tm(&w.obs, self.replay.obs_dim));
        data.insert(self.act_var, tm(&w.act, self.replay.act_dim));
        if self.cfg.behaviour.symlog_rewards {
            let r: Vec<f32> = w.rew.iter().map(|&x| super::behaviour::symlog(x)).collect();
            data.insert(self.rew_var, tm(&r, 1));
        } else {
            data.insert(self.rew_var, tm(&w.rew, 1));
        }
        if let Some(c) = self.cont_var {
            data.insert(c, tm(&w.cont, 1));
        }
        Batch {
            b,
            t,
            data,
            mask: w.mask.as_ref().map(|m| tm(m, 1)),
        }
    }

    /// One world-model update and one behaviour update.
    fn update(&mut self) -> Result<(f64, BehaviourStats), Diagnostic> {
        let n = self.progress.updates;
        let (b, t) = (self.cfg.batch, self.cfg.length);
        let mut rng = stream(self.cfg.seed, n, 1);
        let w = self.replay.sample(b, t, &mut rng).ok_or_else(|| {
            diag(
                Code::EnvSpace,
                "the replay holds no step to train on".to_string(),
                "raise `--prefill` above 0 so that the first update has episodes",
            )
        })?;
        let batch = self.batch(&w);
        let batch_mask = batch.mask.clone();
        let stats = self.trainer.step_batch(batch).map_err(|e| {
            diag(
                Code::NonFinite,
                format!("world-model update {}: {e}", n + 1),
                "lower `--model-lr` or resume from the last checkpoint",
            )
        })?;
        let eng = self
            .trainer
            .compiled(b, t)
            .expect("the step compiled the program");
        if self.behaviour.is_none() {
            let im = (self.trainer.program.elbo.imagination.clone())
                .expect("a model with an imagine block derives its imagination");
            let bh = Behaviour::new(
                &self.trainer.program,
                &im,
                &self.index,
                self.start_rows.as_ref().map_or(b * t, Vec::len),
                eng.workers(),
                self.cfg.behaviour.clone(),
            )
            .map_err(|u| {
                diag(
                    Code::Unsupported,
                    format!(
                        "cannot imagine with `{}`: {}",
                        self.trainer.program.model.name, u.0
                    ),
                    "imagination runs the model one step at a time: nets over whole sequences (`rnn`), static latents and discrete draws are not available there",
                )
            })?;
            let mut bh = bh;
            if let Some(p) = self.progress.return_percentiles {
                bh.percentiles = p;
            }
            if self.cfg.behaviour.slow_critic > 0.0 && self.progress.updates > 0 {
                bh.slow = self.load_slow(&bh)?;
            }
            self.behaviour = Some(bh);
        }
        let bh = self.behaviour.as_mut().expect("built above");
        let rows = &self.start_rows;
        let pick = |x: Vec<f32>, rows: &Option<Vec<usize>>| match rows {
            None => x,
            Some(r) => {
                let cols = x.len() / (b * t);
                (r.iter())
                    .flat_map(|&i| x[i * cols..(i + 1) * cols].iter().copied())
                    .collect()
            }
        };
        let starts: Vec<Vec<f32>> = bh
            .state_vars
            .iter()
            .map(|&v| pick(eng.chain_values(v).expect("a chain variable"), rows))
            .collect();
        // The world model's current parameters; the actor's and critic's are ours.
        let own: std::collections::HashSet<usize> = bh
            .actor_params
            .iter()
            .chain(&bh.critic_params)
            .copied()
            .collect();
        for (i, v) in eng.values.iter().enumerate() {
            if !own.contains(&i) {
                self.values[i].copy_from_slice(v);
            }
        }
        let mut r = stream(self.cfg.seed, n, 2);
        // Padded steps of short episodes are no start states (the batch mask, time-major as
        // the starts).
        let batch_mask = batch_mask.map(|m| pick(m, rows));
        let weights = batch_mask.as_deref();
        let bs = bh
            .update(
                &starts,
                weights,
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
        if self.cfg.behaviour.return_norm {
            self.progress.return_percentiles = Some(bh.percentiles);
        }
        self.progress.updates += 1;
        Ok((stats.elbo, bs))
    }

    fn episode(
        &mut self,
        random: bool,
        greedy: bool,
        seed: u64,
        env: &mut dyn Env,
    ) -> Result<Episode, Diagnostic> {
        let spec = env.spec().clone();
        let max = spec.max_steps.unwrap_or(1000);
        let (low, high) = (spec.act.low.clone(), spec.act.high.clone());
        let discrete = spec.discrete.is_some();
        // A one-hot action goes to the environment as it is (the bridge sends its index).
        let map = move |a: &[f32]| {
            if discrete {
                a.to_vec()
            } else {
                to_box(a, &low, &high)
            }
        };
        let out = if random {
            let d = spec.act.dim();
            let mut pi = if discrete {
                Random::one_hot(d, seed)
            } else {
                Random::new(&vec![-1.0; d], &vec![1.0; d], seed)
            };
            episode_in(env, &mut pi, seed, max, map)?
        } else {
            self.policy.set_values(&self.values);
            self.policy.greedy = greedy;
            self.policy.reseed(seed ^ 0x5EED);
            episode_in(env, &mut self.policy as &mut dyn Policy, seed, max, map)?
        };
        Ok(out.episode)
    }

    /// The slow target critic of a resumed run (`slow_critic.bin`: its parameters as
    /// little-endian f32 in [`Behaviour::critic_params`] order).
    fn load_slow(&self, bh: &Behaviour) -> Result<Vec<Vec<f32>>, Diagnostic> {
        let path = self.dir.join("slow_critic.bin");
        let bytes = std::fs::read(&path).map_err(|e| {
            diag(
                Code::BadCheckpoint,
                format!("cannot read `{}`: {e}", path.display()),
                "the run was written without `--slow-critic`: resume it without, or start a new run",
            )
        })?;
        let sizes: Vec<usize> = (bh.critic_params.iter())
            .map(|&p| self.values[p].len())
            .collect();
        if bytes.len() != 4 * sizes.iter().sum::<usize>() {
            return Err(diag(
                Code::BadCheckpoint,
                format!("`{}` does not hold this model's critic", path.display()),
                "resume with the model that wrote the run, or start a new one",
            ));
        }
        let mut at = 0;
        Ok(sizes
            .iter()
            .map(|&n| {
                let w = (0..n)
                    .map(|i| {
                        let b = &bytes[at + 4 * i..at + 4 * i + 4];
                        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
                    })
                    .collect();
                at += 4 * n;
                w
            })
            .collect())
    }

    /// Writes the checkpoint, the replay and the counters.
    pub fn save(&mut self) -> Result<(), Diagnostic> {
        if let Some(bh) = self.behaviour.as_ref().filter(|b| !b.slow.is_empty()) {
            let bytes: Vec<u8> = (bh.slow.iter().flatten())
                .flat_map(|x| x.to_le_bytes())
                .collect();
            let tmp = self.dir.join("slow_critic.bin.tmp");
            std::fs::write(&tmp, bytes)
                .and_then(|_| std::fs::rename(&tmp, self.dir.join("slow_critic.bin")))
                .map_err(|e| {
                    diag(
                        Code::CannotWrite,
                        format!("cannot write `slow_critic.bin`: {e}"),
                        "check that the run directory is writable and the disk is not full",
                    )
                })?;
        }
        for (v, (_, p)) in self.values.iter().zip(self.trainer.store.iter_mut()) {
            p.set_host(v);
        }
        self.trainer
            .save(&self.dir.join("checkpoint.safetensors"))
            .map_err(|e| {
                diag(
                    Code::CannotWrite,
                    e.to_string(),
                    "check that the run directory is writable and the disk is not full",
                )
            })?;
        self.replay
            .save(&self.dir.join("replay.npz"), &self.names)?;
        let tmp = self.dir.join("agent.json.tmp");
        self.progress.config = Some(self.cfg.clone());
        let text = serde_json::to_string_pretty(&self.progress).expect("serialises");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, self.dir.join("agent.json")))
            .map_err(|e| {
                diag(
                    Code::CannotWrite,
                    format!("cannot write `agent.json`: {e}"),
                    "check that the run directory is writable and the disk is not full",
                )
            })
    }

    fn evaluate(
        &mut self,
        env: &mut dyn Env,
        obs: &mut impl AgentObserver,
    ) -> Result<(), Diagnostic> {
        let path = self.dir.join("episodes.jsonl");
        for k in 0..self.cfg.eval_episodes as u64 {
            // The same initial states at every evaluation (common random numbers: the curve
            // compares policies, not draws of initial states).
            let seed = 1_000_000 + k;
            let ep = self.episode(false, true, seed, env)?;
            let rec = Record {
                env_step: self.progress.env_steps,
                ret: ep.ret(),
                length: ep.len() as u64,
                eval: true,
                seed,
            };
            episodes::append(&path, &rec)?;
            obs.episode(&rec, &self.progress);
        }
        self.progress.evals += 1;
        Ok(())
    }

    /// Updates due after `env_steps` training steps: none during the prefill, then one per
    /// `train_every` steps counted from the start (the prefill's at once when it ends).
    fn updates_due(&self) -> u64 {
        let (e, p, every) = (
            self.progress.env_steps,
            self.cfg.prefill,
            self.cfg.train_every.max(1),
        );
        if e < p {
            0
        } else {
            p / every + (e - p) / every
        }
    }

    /// `n` episodes acting with the policy's mode from reset seeds `2_000_000 + k` (apart
    /// from the in-run evaluations' starts), nothing learned or written: their returns.
    pub fn evaluate_only(&mut self, env: &mut dyn Env, n: usize) -> Result<Vec<f64>, Diagnostic> {
        (0..n as u64)
            .map(|k| Ok(self.episode(false, true, 2_000_000 + k, env)?.ret()))
            .collect()
    }

    /// Runs the loop until `cfg.env_steps` training steps (or the observer stops it).
    pub fn run(
        &mut self,
        env: &mut dyn Env,
        obs: &mut impl AgentObserver,
    ) -> Result<(), Diagnostic> {
        let t0 = Instant::now();
        let secs0 = self.progress.seconds;
        let ep_path = self.dir.join("episodes.jsonl");
        let metrics = self.dir.join("metrics.jsonl");
        let mut mfile = super::episodes::open_log(&metrics)?;
        loop {
            // The updates due at this many steps (Dreamer trains on the prefill once before
            // the policy first acts), one at a time so that Ctrl-C is heard between them; an
            // interrupted run resumes with the rest.
            while self.progress.updates < self.updates_due() {
                if obs.should_stop() {
                    self.progress.seconds = secs0 + t0.elapsed().as_secs_f64();
                    return self.save();
                }
                let (elbo, bs) = self.update()?;
                let line = serde_json::to_string(&Metric {
                    update: self.progress.updates,
                    env_step: self.progress.env_steps,
                    elbo,
                    behaviour: &bs,
                    time: secs0 + t0.elapsed().as_secs_f64(),
                })
                .expect("serialises");
                use std::io::Write;
                let _ = writeln!(mfile, "{line}");
                obs.updated(&self.progress, elbo, &bs);
            }
            // The evaluation due (the untrained policy at step 0, then every `eval_every`).
            if let Some(due) = self.progress.env_steps.checked_div(self.cfg.eval_every) {
                let due = due + 1;
                if self.progress.evals < due {
                    self.evaluate(env, obs)?;
                    self.progress.evals = due;
                }
            }
            self.progress.seconds = secs0 + t0.elapsed().as_secs_f64();
            self.save()?;
            if self.progress.env_steps >= self.cfg.env_steps || obs.should_stop() {
                break;
            }
            let random = self.progress.env_steps < self.cfg.prefill;
            let seed = self.cfg.seed * 1_000_003 + self.progress.episodes;
            let ep = self.episode(random, false, seed, env)?;
            self.progress.env_steps += ep.len() as u64;
            self.progress.episodes += 1;
            let rec = Record {
                env_step: self.progress.env_steps,
                ret: ep.ret(),
                length: ep.len() as u64,
                eval: false,
                seed,
            };
            self.replay.push(ep);
            episodes::append(&ep_path, &rec)?;
            obs.episode(&rec, &self.progress);
        }
        Ok(())
    }
}

/// The default number of start states: half of a batch's `batch × length` posterior states
/// (every window's even steps), rounded up. It halves an update's imagination, which is most of
/// its time, and passed every target of docs/agent.md.
pub const fn default_starts(batch: usize, length: usize) -> usize {
    (batch * length).div_ceil(2)
}

/// `starts` against the batch it picks from, resolved: `starts`, or [`default_starts`] when it
/// is `None`; `Err((message, help))` unless it is 1 to `batch × length` (`flag` names it as
/// the caller's user wrote it: `--starts `, `starts=`).
pub fn resolve_starts(
    flag: &str,
    starts: Option<usize>,
    batch: usize,
    length: usize,
) -> Result<usize, (String, String)> {
    let bt = batch * length;
    match starts {
        Some(n) if n == 0 || n > bt => Err((
            format!("{flag}{n}: a behaviour update starts from 1 to batch × length = {bt} of the batch's posterior states"),
            format!(
                "pass a number from 1 to {bt} ({bt}: all of them), or leave {} out for half of them ({})",
                flag.trim_end_matches([' ', '=']),
                default_starts(batch, length)
            ),
        )),
        Some(n) => Ok(n),
        None => Ok(default_starts(batch, length)),
    }
}

/// The time-major rows (`step·b + window`) of `n` of a batch's `b` windows × `t` steps, evenly
/// spaced in window-major order (every window, every (b·t/n)-th step of it when `n` divides
/// b·t), in increasing order; all `b·t` rows, in order, when `n ≥ b·t`.
pub fn start_rows(b: usize, t: usize, n: usize) -> Vec<usize> {
    let bt = b * t;
    if n >= bt {
        return (0..bt).collect();
    }
    let mut rows: Vec<usize> = (0..n)
        .map(|i| {
            let k = i * bt / n;
            (k % t) * b + k / t
        })
        .collect();
    rows.sort_unstable();
    rows
}

#[cfg(test)]
mod tests {
    use super::{config_changes, resolve_starts, start_rows, AgentConfig};

    #[test]
    fn starts_default_to_half_the_batch_rounded_up() {
        assert_eq!(resolve_starts("--starts ", None, 16, 50), Ok(400));
        let d = AgentConfig::DEFAULT;
        assert_eq!(
            resolve_starts("--starts ", d.starts, d.batch, d.length),
            Ok(400)
        );
        assert_eq!(resolve_starts("--starts ", None, 3, 5), Ok(8));
        assert_eq!(resolve_starts("--starts ", None, 1, 1), Ok(1));
        assert_eq!(resolve_starts("--starts ", Some(15), 3, 5), Ok(15));
        for bad in [0, 16] {
            let (msg, help) = resolve_starts("--starts ", Some(bad), 3, 5).unwrap_err();
            assert!(msg.starts_with(&format!("--starts {bad}:")), "{msg}");
            assert!(
                help.contains("1 to 15") && help.contains("half of them (8)"),
                "{help}"
            );
        }
    }

    #[test]
    fn a_setting_missing_from_the_saved_run_is_a_change() {
        // A run written before `starts` existed (it imagined from all B·T) resumed with it.
        let now = AgentConfig {
            starts: Some(400),
            ..AgentConfig::DEFAULT
        };
        let then = serde_json::to_value(AgentConfig::DEFAULT).unwrap();
        let then: AgentConfig = serde_json::from_value(then).unwrap();
        assert_eq!(then.starts, None);
        assert_eq!(config_changes(&then, &now, &[]), vec!["starts unset → 400"]);
        assert_eq!(config_changes(&now, &then, &[]), vec!["starts 400 → unset"]);
        assert!(config_changes(&now, &now, &[]).is_empty());
        assert_eq!(
            config_changes(
                &AgentConfig {
                    seed: 1,
                    ..now.clone()
                },
                &now,
                &["seed"]
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn start_rows_take_every_window_and_evenly_spaced_steps() {
        // 3 windows × 4 steps, time-major rows step·3 + window.
        assert_eq!(start_rows(3, 4, 12), (0..12).collect::<Vec<_>>());
        assert_eq!(start_rows(3, 4, 99), (0..12).collect::<Vec<_>>());
        // Half: steps 0 and 2 of each window.
        assert_eq!(start_rows(3, 4, 6), vec![0, 1, 2, 6, 7, 8]);
        // A quarter: step 0 of each window.
        assert_eq!(start_rows(3, 4, 3), vec![0, 1, 2]);
        // 16 × 50 → 400: every window's even steps.
        let r = start_rows(16, 50, 400);
        assert_eq!(r.len(), 400);
        assert!(r.iter().all(|&i| (i / 16) % 2 == 0));
        assert!(r.windows(2).all(|w| w[0] < w[1]));
    }
}
