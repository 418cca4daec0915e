//! `vic.agent(model, env, …)`: `vic agent`'s loop (`vic::agent::learn::Agent`) acting in a
//! Python environment object in-process — any object with Gymnasium's `reset(seed=…)`,
//! `step(action)`, a Box `observation_space` and a Box or Discrete `action_space` — with the same run directory
//! (episodes, metrics, checkpoint, replay) and resume as `vic agent`. The loop runs with the GIL
//! released; only the environment's `reset`/`step`, the callback and the check for Ctrl-C take
//! it, so other Python threads run while the agent trains. Ctrl-C is heard between updates and
//! episodes.

use super::{coded, flag_error, to_py, Model, Unsent};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::path::PathBuf;
use vic::agent::behaviour::BehaviourConfig;
use vic::agent::env::Space;
use vic::agent::episodes::Record;
use vic::agent::learn::{Agent, AgentConfig, AgentObserver, Progress};
use vic::agent::{Env, EnvSpec, Step};
use vic::diag::{Code, Diagnostic};

/// The defaults of every keyword (the library's, shared with `vic agent`'s flags).
const D: AgentConfig = AgentConfig::DEFAULT;

/// A Python environment object as a [`vic::agent::Env`].
struct PyEnv {
    env: PyObject,
    spec: EnvSpec,
    /// A Discrete action space's `start`: the action sent is `start` + the hot index.
    act_start: i64,
    /// The Python exception of the last failed call (re-raised as it was).
    error: Option<PyErr>,
}

fn flat(obj: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    let np = obj.py().import("numpy")?;
    np.call_method1("asarray", (obj, "float32"))?
        .call_method0("ravel")?
        .call_method0("tolist")?
        .extract()
}

/// A Box space's bounds; a Discrete one (`n`, `start`, no `low`) as the one-hot box [0, 1]ⁿ
/// with its `n` and `start`, as the bridge sees it.
fn space(env: &Bound<'_, PyAny>, attr: &str) -> PyResult<(Space, Option<(usize, i64)>)> {
    let sp = env.getattr(attr)?;
    if !sp.hasattr("low")? && sp.hasattr("n")? {
        let n: usize = sp.getattr("n")?.extract()?;
        let start = match sp.getattr("start") {
            Ok(s) => s.extract::<i64>()?,
            Err(_) => 0,
        };
        let hot = Space {
            low: vec![0.0; n],
            high: vec![1.0; n],
        };
        return Ok((hot, Some((n, start))));
    }
    let bounds = Space {
        low: flat(&sp.getattr("low")?)?,
        high: flat(&sp.getattr("high")?)?,
    };
    Ok((bounds, None))
}

impl PyEnv {
    fn new(env: &Bound<'_, PyAny>, id: Option<String>) -> PyResult<PyEnv> {
        let (obs, obs_n) = space(env, "observation_space")?;
        let (act, act_n) = space(env, "action_space")?;
        let unusable = |what: String| {
            let d = Diagnostic::new(Code::EnvSpace, format!("the environment cannot be used: {what}"))
                .help("vic's agent acts on vector observations with continuous (Box) or discrete (Discrete) actions: pick an environment with a Box observation space");
            diag_error(env.py(), &d)
        };
        if obs_n.is_some() {
            return Err(unusable("its observation space is Discrete".into()));
        }
        if act_n.is_some_and(|(n, _)| n == 0) {
            return Err(unusable("its action space is Discrete(0)".into()));
        }
        let spec_attr = env.getattr("spec").ok().filter(|s| !s.is_none());
        let max_steps = spec_attr
            .as_ref()
            .and_then(|s| s.getattr("max_episode_steps").ok())
            .and_then(|m| m.extract::<usize>().ok());
        let id = id
            .or_else(|| {
                spec_attr
                    .as_ref()
                    .and_then(|s| s.getattr("id").ok())
                    .and_then(|i| i.extract::<String>().ok())
                    .map(|i| format!("python:{i}"))
            })
            .unwrap_or_else(|| "python".to_string());
        Ok(PyEnv {
            env: env.clone().unbind(),
            spec: EnvSpec {
                id,
                obs,
                act,
                max_steps,
                discrete: act_n.map(|(n, _)| n),
            },
            act_start: act_n.map_or(0, |(_, start)| start),
            error: None,
        })
    }

    fn fail(&mut self, what: &str, e: PyErr) -> Diagnostic {
        let msg = format!("the environment's {what} failed: {e}");
        self.error = Some(e);
        Diagnostic::new(Code::EnvProtocol, msg)
            .help("`reset(seed=…)` returns (obs, info); `step(action)` returns (obs, reward, terminated, truncated, info)")
    }
}

impl Env for PyEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: u64) -> Result<Vec<f32>, Diagnostic> {
        let r = Python::with_gil(|py| -> PyResult<Vec<f32>> {
            let kw = PyDict::new(py);
            kw.set_item("seed", seed)?;
            let r = self.env.bind(py).call_method("reset", (), Some(&kw))?;
            match r.downcast::<PyTuple>() {
                Ok(t) => flat(&t.get_item(0)?),
                Err(_) => flat(&r),
            }
        });
        r.map_err(|e| self.fail("reset", e))
    }

    fn step(&mut self, action: &[f32]) -> Result<Step, Diagnostic> {
        let r = Python::with_gil(|py| -> PyResult<Step> {
            let env = self.env.bind(py);
            let r = match self.spec.discrete {
                // A Discrete space takes an int: `start` + the index of the hot entry.
                Some(_) => {
                    let k = self.act_start + vic::agent::env::hot_index(action) as i64;
                    env.call_method1("step", (k,))?
                }
                None => env.call_method1("step", (PyArray1::from_slice(py, action),))?,
            };
            let t = r.downcast::<PyTuple>()?;
            let obs = flat(&t.get_item(0)?)?;
            let reward: f64 = t.get_item(1)?.extract()?;
            let (terminated, truncated) = match t.len() {
                5 => (t.get_item(2)?.is_truthy()?, t.get_item(3)?.is_truthy()?),
                // The older Gym API: (obs, reward, done, info).
                _ => (t.get_item(2)?.is_truthy()?, false),
            };
            Ok(Step {
                obs,
                reward,
                terminated,
                truncated,
            })
        });
        r.map_err(|e| self.fail("step", e))
    }
}

/// Ctrl-C between updates and episodes; the callback sees every episode.
struct PyAgentObserver {
    callback: Option<PyObject>,
    error: Option<PyErr>,
}

impl AgentObserver for PyAgentObserver {
    fn should_stop(&mut self) -> bool {
        if self.error.is_some() {
            return true;
        }
        Python::with_gil(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                self.error = Some(e);
                true
            }
        })
    }

    fn episode(&mut self, rec: &Record, _progress: &Progress) {
        if let Some(cb) = &self.callback {
            let r = Python::with_gil(|py| -> PyResult<()> {
                let v = serde_json::to_value(rec).unwrap_or_default();
                cb.call1(py, (to_py(py, &v)?,))?;
                Ok(())
            });
            if let Err(e) = r {
                self.error.get_or_insert(e);
            }
        }
    }
}

fn diag_error(py: Python<'_>, d: &Diagnostic) -> PyErr {
    coded(py, "VicError", d.code.as_str(), d.message.clone(), &d.help)
}

/// Learn a world model and a behaviour in a Python environment, as `vic agent` does.
///
/// `model`: a `vic.Model` or a `.vmodel` path with an `imagine` block; `env`: an object with
/// Gymnasium's `reset(seed=…)`, `step(action)`, a Box `observation_space` and a Box or
/// Discrete `action_space` (a Discrete one is acted in with ints, `start` + the class).
/// Writes `out` as `vic agent --out` does (`episodes.jsonl`, `metrics.jsonl`, checkpoint,
/// replay); `resume=True` continues it. Returns the loop's counters and the episode records.
#[pyfunction]
#[pyo3(signature = (model, env, *, out, env_steps = D.env_steps, prefill = D.prefill,
    train_every = D.train_every, batch = D.batch, length = D.length, starts = None,
    model_lr = D.model_lr,
    actor_lr = D.behaviour.actor_lr, critic_lr = D.behaviour.critic_lr,
    return_norm = D.behaviour.return_norm, symlog_rewards = D.behaviour.symlog_rewards,
    slow_critic = D.behaviour.slow_critic, eval_every = D.eval_every,
    eval_episodes = D.eval_episodes, seed = D.seed, resume = false, force = false,
    callback = None, id = None))]
#[allow(clippy::too_many_arguments)]
pub fn agent(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    env: &Bound<'_, PyAny>,
    out: PathBuf,
    env_steps: u64,
    prefill: u64,
    train_every: u64,
    batch: usize,
    length: usize,
    starts: Option<usize>,
    model_lr: f64,
    actor_lr: f64,
    critic_lr: f64,
    return_norm: bool,
    symlog_rewards: bool,
    slow_critic: f64,
    eval_every: u64,
    eval_episodes: usize,
    seed: u64,
    resume: bool,
    force: bool,
    callback: Option<PyObject>,
    id: Option<String>,
) -> PyResult<PyObject> {
    let model: Model = match model.extract::<PyRef<'_, Model>>() {
        Ok(m) => Model {
            inner: m.inner.clone(),
            file: m.file.clone(),
        },
        Err(_) => Model::from_file(py, model.extract::<PathBuf>()?)?,
    };
    for (name, v) in [
        ("env_steps", env_steps),
        ("train_every", train_every),
        ("batch", batch as u64),
        ("length", length as u64),
    ] {
        if v == 0 {
            return Err(flag_error(
                py,
                format!("{name} must be at least 1"),
                "pass a positive number",
            ));
        }
    }
    // Checked before `out` is touched ([`vic::agent::Agent::new`] resolves it).
    vic::agent::learn::resolve_starts("starts=", starts, batch, length)
        .map_err(|(msg, help)| flag_error(py, msg, &help))?;
    for (name, v) in [
        ("model_lr", model_lr),
        ("actor_lr", actor_lr),
        ("critic_lr", critic_lr),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(flag_error(
                py,
                format!("{name} must be a positive number, not {v}"),
                &format!(
                    "the defaults: model_lr={}, actor_lr={}, critic_lr={}",
                    D.model_lr, D.behaviour.actor_lr, D.behaviour.critic_lr
                ),
            ));
        }
    }
    let mut env = PyEnv::new(env, id)?;
    // The model's sizes from the environment (`dim O = env(obs, 3), A = env(act, 1)`), as
    // `vic agent` compiles it.
    let shape = env.spec.shape();
    let sized = super::compile_for(py, &model.inner.source, &model.inner.name, Some(&shape))?;
    let program = super::lower(py, &sized)?;
    // Created and claimed as `vic agent` does ([`vic::train::rundir::prepare`]): the lock file,
    // E094 while another run holds it, E095 when it holds a run and the call neither resumes
    // nor forces; a forced new run removes the earlier run's files.
    let _lock = super::prepare(py, &out, resume, force, &vic::agent::learn::OUTPUTS)?;
    let cfg = AgentConfig {
        env_steps,
        prefill,
        train_every,
        batch,
        length,
        starts,
        model_lr,
        model_clip: D.model_clip,
        behaviour: BehaviourConfig {
            actor_lr,
            critic_lr,
            return_norm,
            symlog_rewards,
            slow_critic,
            ..D.behaviour
        },
        eval_every,
        eval_episodes,
        seed,
        threads: 0,
    };
    let spec = env.spec.clone();
    let mut agent =
        Agent::new(program, &spec, cfg, &out, resume).map_err(|d| diag_error(py, &d))?;
    let _ = std::fs::write(out.join(vic::train::rundir::SOURCE), &model.inner.source);
    let mut obs = PyAgentObserver {
        callback,
        error: None,
    };
    // The updates run without the GIL; the environment's `reset`/`step`, the callback and the
    // signal check take it (`Python::with_gil`), so other Python threads run meanwhile.
    let job = Unsent((&mut agent, &mut env, &mut obs));
    let result = py.allow_threads(move || {
        let job = job;
        let (agent, env, obs) = job.0;
        agent.run(env, obs)
    });
    if let Some(e) = obs.error.take() {
        return Err(e);
    }
    if let Err(d) = result {
        return Err(env.error.take().unwrap_or_else(|| diag_error(py, &d)));
    }
    let summary = PyDict::new(py);
    summary.set_item("out", out.clone())?;
    summary.set_item(
        "progress",
        to_py(
            py,
            &serde_json::to_value(&agent.progress).unwrap_or_default(),
        )?,
    )?;
    let loads = py.import("json")?.getattr("loads")?;
    let episodes = PyList::empty(py);
    for line in std::fs::read_to_string(out.join("episodes.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        episodes.append(loads.call1((line,))?)?;
    }
    summary.set_item("episodes", episodes)?;
    Ok(summary.into_any().unbind())
}
