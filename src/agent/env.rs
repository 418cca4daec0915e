//! The environment interface: Box observation spaces, Box or Discrete action spaces, reset
//! with a seed, step with an action, Gymnasium's `terminated`/`truncated` distinction.
//!
//! A `Discrete(n)` action space is seen as the box [0, 1]ⁿ of one-hot vectors: the agent's
//! actions are one-hot rows (its policy is a Categorical), and the environment takes the index
//! of the hot entry.

use crate::diag::{Code, Diagnostic};

/// A box space: per-dimension bounds (`±inf` where unbounded).
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    /// Lower bounds, one per dimension.
    pub low: Vec<f32>,
    /// Upper bounds, one per dimension.
    pub high: Vec<f32>,
}

impl Space {
    /// The number of dimensions.
    pub fn dim(&self) -> usize {
        self.low.len()
    }
}

/// What an environment looks like from outside.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvSpec {
    /// The name it was opened with (`pendulum`, `gym:Pendulum-v1`).
    pub id: String,
    /// Observation space.
    pub obs: Space,
    /// Action space.
    pub act: Space,
    /// Episode length at which the environment truncates, when it has one.
    pub max_steps: Option<usize>,
    /// `Some(n)` for a `Discrete(n)` action space (then `act` is the one-hot box [0, 1]ⁿ).
    pub discrete: Option<usize>,
}

impl EnvSpec {
    /// The sizes a model takes from this environment (`dim O = env(obs, 3), A = env(act, 1)`).
    pub fn shape(&self) -> crate::parse::env::EnvShape {
        crate::parse::env::EnvShape {
            obs: self.obs.dim(),
            act: self.act.dim(),
            discrete: self.discrete.is_some(),
        }
    }

    /// The action space in words: `Box(1)`, `Discrete(2)`.
    pub fn act_kind(&self) -> String {
        match self.discrete {
            Some(n) => format!("Discrete({n})"),
            None => format!("Box({})", self.act.dim()),
        }
    }
}

/// The index of a one-hot action's hot entry (the largest, for a row that is not one-hot).
pub fn hot_index(action: &[f32]) -> usize {
    let mut best = 0;
    for (i, &a) in action.iter().enumerate() {
        if a > action[best] {
            best = i;
        }
    }
    best
}

/// The outcome of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The observation after the step.
    pub obs: Vec<f32>,
    /// The reward of the step.
    pub reward: f64,
    /// The episode ended inside the MDP (no bootstrap past it).
    pub terminated: bool,
    /// The episode was cut by a time limit (the state would continue).
    pub truncated: bool,
}

/// An environment the agent acts in.
pub trait Env {
    /// Its spaces and time limit.
    fn spec(&self) -> &EnvSpec;
    /// Starts an episode; the same seed gives the same initial observation.
    fn reset(&mut self, seed: u64) -> Result<Vec<f32>, Diagnostic>;
    /// Applies `action` (of the action space's size; the environment clips it to the box).
    fn step(&mut self, action: &[f32]) -> Result<Step, Diagnostic>;
}

/// The environments `--env` accepts, for help lines.
pub const KNOWN: &str =
    "`pendulum` (built in) or `gym:ID` (any Gymnasium environment with a Box observation space and a Box or Discrete action space)";

/// Opens an environment by name: `pendulum`, or `gym:ID` through the Python bridge.
pub fn open(name: &str) -> Result<Box<dyn Env>, Diagnostic> {
    if name == "pendulum" {
        return Ok(Box::new(super::pendulum::Pendulum::new()));
    }
    if let Some(id) = name.strip_prefix("gym:") {
        if id.is_empty() {
            return Err(
                Diagnostic::new(Code::UnknownEnv, "`gym:` needs an environment id")
                    .help("for example `--env gym:Pendulum-v1`"),
            );
        }
        return Ok(Box::new(super::bridge::GymBridge::start(id)?));
    }
    Err(
        Diagnostic::new(Code::UnknownEnv, format!("unknown environment `{name}`"))
            .help(format!("use {KNOWN}")),
    )
}

/// Checks an action's size and finiteness before it reaches an environment.
pub fn check_action(spec: &EnvSpec, action: &[f32]) -> Result<(), Diagnostic> {
    if action.len() != spec.act.dim() {
        return Err(Diagnostic::new(
            Code::EnvProtocol,
            format!(
                "`{}` takes actions of size {}, got {}",
                spec.id,
                spec.act.dim(),
                action.len()
            ),
        )
        .help("the model's action variable must have the environment's action size"));
    }
    if let Some(i) = action.iter().position(|a| !a.is_finite()) {
        return Err(Diagnostic::new(
            Code::NonFinite,
            format!(
                "the policy produced a non-finite action ({}) in dimension {i}",
                action[i]
            ),
        )
        .help("the policy diverged; lower the learning rate or check the model"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_e300_with_the_known_ones_in_the_help() {
        for name in ["cartpole", "gym:", "Pendulum-v1"] {
            let e = open(name).err().expect("rejected");
            assert_eq!(e.code, Code::UnknownEnv, "{name}");
            assert!(e.help.contains("gym:"), "{name}: {}", e.help);
        }
    }

    #[test]
    fn actions_of_the_wrong_size_or_non_finite_are_diagnostics() {
        let env = open("pendulum").unwrap();
        let spec = env.spec();
        assert_eq!(
            check_action(spec, &[0.5, 0.5]).unwrap_err().code,
            Code::EnvProtocol
        );
        assert_eq!(
            check_action(spec, &[f32::NAN]).unwrap_err().code,
            Code::NonFinite
        );
        assert!(
            check_action(spec, &[3.0]).is_ok(),
            "out-of-box actions are clipped, not errors"
        );
    }
}
