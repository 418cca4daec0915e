//! Acting: a [`Policy`] maps observations to actions, [`episode`] runs one episode of an
//! environment with it and returns what the replay stores.

use super::env::Env;
use super::replay::Episode;
use crate::diag::Diagnostic;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Something that acts. A policy that filters (acts from a posterior over a latent state)
/// keeps its own state and restarts it when `first` is true.
pub trait Policy {
    /// The action for observation `obs`; `first` marks an episode's first observation.
    fn act(&mut self, obs: &[f32], first: bool) -> Result<Vec<f32>, Diagnostic>;
}

/// Uniform actions in the action box (the reference a learning agent must beat).
pub struct Random {
    rng: StdRng,
    low: Vec<f32>,
    high: Vec<f32>,
    one_hot: bool,
}

impl Random {
    /// A seeded uniform policy over `[low, high]`.
    pub fn new(low: &[f32], high: &[f32], seed: u64) -> Self {
        Random {
            rng: StdRng::seed_from_u64(seed),
            low: low.to_vec(),
            high: high.to_vec(),
            one_hot: false,
        }
    }

    /// A seeded uniform policy over the `n` one-hot vectors (a `Discrete(n)` space).
    pub fn one_hot(n: usize, seed: u64) -> Self {
        Random {
            one_hot: true,
            ..Random::new(&vec![0.0; n], &vec![1.0; n], seed)
        }
    }
}

impl Policy for Random {
    fn act(&mut self, _obs: &[f32], _first: bool) -> Result<Vec<f32>, Diagnostic> {
        if self.one_hot {
            let mut a = vec![0.0; self.low.len()];
            let k = self.rng.gen_range(0..a.len());
            a[k] = 1.0;
            return Ok(a);
        }
        Ok(self
            .low
            .iter()
            .zip(&self.high)
            .map(|(&l, &h)| self.rng.gen_range(l..=h))
            .collect())
    }
}

/// What one episode produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The steps, for the replay.
    pub episode: Episode,
    /// Ended inside the MDP (rather than by a time limit or `max_steps`).
    pub terminated: bool,
}

/// Runs one episode from `reset(seed)` until the environment ends it or `max_steps` steps.
pub fn episode(
    env: &mut dyn Env,
    policy: &mut dyn Policy,
    seed: u64,
    max_steps: usize,
) -> Result<Outcome, Diagnostic> {
    episode_in(env, policy, seed, max_steps, |a| a.to_vec())
}

/// [`episode`] with the policy's actions mapped by `to_env` before the environment sees them
/// (the replay keeps the policy's actions).
pub fn episode_in(
    env: &mut dyn Env,
    policy: &mut dyn Policy,
    seed: u64,
    max_steps: usize,
    to_env: impl Fn(&[f32]) -> Vec<f32>,
) -> Result<Outcome, Diagnostic> {
    let (o_dim, a_dim) = (env.spec().obs.dim(), env.spec().act.dim());
    let mut obs = env.reset(seed)?;
    let mut ep = Episode {
        obs: Vec::new(),
        act: Vec::new(),
        rew: Vec::new(),
        cont: Vec::new(),
    };
    let mut terminated = false;
    for t in 0..max_steps {
        let a = policy.act(&obs, t == 0)?;
        let st = env.step(&to_env(&a))?;
        debug_assert_eq!(obs.len(), o_dim);
        debug_assert_eq!(a.len(), a_dim);
        ep.obs.extend_from_slice(&obs);
        ep.act.extend_from_slice(&a);
        ep.rew.push(st.reward as f32);
        // 0 on the last step of a terminated episode; truncation continues (bootstrapped).
        ep.cont.push(if st.terminated { 0.0 } else { 1.0 });
        obs = st.obs;
        if st.terminated || st.truncated {
            terminated = st.terminated;
            break;
        }
    }
    Ok(Outcome {
        episode: ep,
        terminated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::pendulum::{Pendulum, EPISODE_STEPS};

    #[test]
    fn a_random_pendulum_episode_is_200_steps_of_gyms_reward_range() {
        let mut env = Pendulum::new();
        let mut pi = Random::new(&[-2.0], &[2.0], 0);
        let out = episode(&mut env, &mut pi, 1, 10_000).unwrap();
        assert_eq!(out.episode.len(), EPISODE_STEPS);
        assert!(!out.terminated);
        // Gym's reward lies in [−(π² + 0.1·8² + 0.001·2²), 0] = [−16.2736, 0].
        let worst = -(std::f32::consts::PI.powi(2) + 6.4 + 0.004);
        assert!(out.episode.rew.iter().all(|&r| (worst..=0.0).contains(&r)));
        assert!(out.episode.act.iter().all(|a| (-2.0..=2.0).contains(a)));
        // The stored observation at t is the one the action at t saw: the first is reset's.
        let first = env.reset(1).unwrap();
        assert_eq!(out.episode.obs[..3], first[..]);
    }
}
