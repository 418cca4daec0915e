//! `--env pendulum`: Gymnasium's `Pendulum-v1` on vic's simulator ([`crate::sim::pendulum`]):
//! reset `θ ~ U(−π, π)`, `θ̇ ~ U(−1, 1)`, observation `(cos θ, sin θ, θ̇)`, Gym's reward,
//! torque clipped to `[−2, 2]`, truncated after 200 steps, never terminated.

use super::env::{check_action, Env, EnvSpec, Space, Step};
use crate::diag::Diagnostic;
use crate::sim::pendulum::{observe, step, Params, State};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::f64::consts::PI;

/// Gym's `TimeLimit` for `Pendulum-v1`.
pub const EPISODE_STEPS: usize = 200;

/// The built-in pendulum.
pub struct Pendulum {
    spec: EnvSpec,
    params: Params,
    state: State,
    t: usize,
}

impl Default for Pendulum {
    fn default() -> Self {
        Self::new()
    }
}

impl Pendulum {
    /// A pendulum with Gym's constants, hanging at rest until `reset`.
    pub fn new() -> Self {
        let params = Params::default();
        let ms = params.max_speed as f32;
        let mt = params.max_torque as f32;
        Pendulum {
            spec: EnvSpec {
                discrete: None,
                id: "pendulum".into(),
                obs: Space {
                    low: vec![-1.0, -1.0, -ms],
                    high: vec![1.0, 1.0, ms],
                },
                act: Space {
                    low: vec![-mt],
                    high: vec![mt],
                },
                max_steps: Some(EPISODE_STEPS),
            },
            params,
            state: State {
                theta: PI,
                theta_dot: 0.0,
            },
            t: 0,
        }
    }

    /// The physical state (for tests and plots).
    pub fn state(&self) -> State {
        self.state
    }
}

fn obs(s: &State) -> Vec<f32> {
    observe(s).iter().map(|&v| v as f32).collect()
}

impl Env for Pendulum {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: u64) -> Result<Vec<f32>, Diagnostic> {
        let mut rng = StdRng::seed_from_u64(seed);
        self.state = State {
            theta: rng.gen_range(-PI..PI),
            theta_dot: rng.gen_range(-1.0..1.0),
        };
        self.t = 0;
        Ok(obs(&self.state))
    }

    fn step(&mut self, action: &[f32]) -> Result<Step, Diagnostic> {
        check_action(&self.spec, action)?;
        let (next, reward) = step(&self.params, &self.state, action[0] as f64);
        self.state = next;
        self.t += 1;
        Ok(Step {
            obs: obs(&next),
            reward,
            terminated: false,
            truncated: self.t >= EPISODE_STEPS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_matches_gyms_equations_by_hand() {
        let mut env = Pendulum::new();
        let o = env.reset(7).unwrap();
        let s = env.state();
        assert!((-PI..PI).contains(&s.theta) && (-1.0..1.0).contains(&s.theta_dot));
        assert!((o[0] as f64 - s.theta.cos()).abs() < 1e-6);
        // Gym: newthdot = thdot + (3g/(2l) sin th + 3/(m l²) u) dt, clipped to ±8;
        // newth = th + newthdot dt; reward −(angle_normalize(th)² + .1 thdot² + .001 u²),
        // u clipped to ±2 (an action of 5 acts as 2).
        let st = env.step(&[5.0]).unwrap();
        let u = 2.0;
        let thdot = (s.theta_dot + (15.0 * s.theta.sin() + 3.0 * u) * 0.05).clamp(-8.0, 8.0);
        let th = s.theta + thdot * 0.05;
        let wrapped = (s.theta + PI).rem_euclid(2.0 * PI) - PI;
        let r = -(wrapped * wrapped + 0.1 * s.theta_dot * s.theta_dot + 0.001 * u * u);
        assert!((st.reward - r).abs() < 1e-12, "{} vs {r}", st.reward);
        assert!((st.obs[0] as f64 - th.cos()).abs() < 1e-6);
        assert!((st.obs[1] as f64 - th.sin()).abs() < 1e-6);
        assert!((st.obs[2] as f64 - thdot).abs() < 1e-5);
    }

    #[test]
    fn episodes_truncate_after_200_steps_and_reset_is_seeded() {
        let mut env = Pendulum::new();
        let a = env.reset(3).unwrap();
        let mut last = None;
        for i in 0..EPISODE_STEPS {
            let st = env.step(&[0.0]).unwrap();
            assert!(!st.terminated);
            assert_eq!(st.truncated, i + 1 == EPISODE_STEPS, "step {i}");
            last = Some(st);
        }
        assert!(last.unwrap().truncated);
        assert_eq!(env.reset(3).unwrap(), a);
        assert_ne!(env.reset(4).unwrap(), a);
    }
}
