//! The classic inverted pendulum, as in gym/gymnasium `Pendulum-v1`.
//!
//! Dynamics (θ = 0 is upright):
//! `θ̈ = 3g/(2l)·sin θ + 3/(m l²)·u`, with `g = 10`, `m = l = 1`, `dt = 0.05`,
//! torque clipped to `|u| ≤ 2`, integrated by semi-implicit Euler exactly as gym does:
//! `θ̇ ← clip(θ̇ + θ̈·dt, −8, 8)`, then `θ ← θ + θ̇·dt` (θ itself is not wrapped).
//!
//! Observation `[cos θ, sin θ, θ̇]`. Reward
//! `−(wrap(θ)² + 0.1·θ̇² + 0.001·u²)` with `wrap(θ) ∈ [−π, π)`, computed on the state
//! *before* the step (and the clipped torque), as gym does.
//!
//! Trajectory convention (same as the peer benchmark data): `obs[:, t]` is the
//! observation of the state *before* `act[:, t]` is applied and `reward[:, t]` is the
//! reward of that step. Physics runs in `f64`; outputs are `f32`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::f64::consts::PI;

/// Physical constants (defaults: gym `Pendulum-v1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Gravity (m/s²).
    pub g: f64,
    /// Mass (kg).
    pub m: f64,
    /// Length (m).
    pub l: f64,
    /// Time step (s).
    pub dt: f64,
    /// Angular speed limit (rad/s).
    pub max_speed: f64,
    /// Torque limit (N·m).
    pub max_torque: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            g: 10.0,
            m: 1.0,
            l: 1.0,
            dt: 0.05,
            max_speed: 8.0,
            max_torque: 2.0,
        }
    }
}

/// Pendulum state: angle (rad, 0 = upright, unwrapped) and angular velocity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    /// Angle from upright (rad).
    pub theta: f64,
    /// Angular velocity (rad/s).
    pub theta_dot: f64,
}

/// Wraps an angle to `[−π, π)` (gym's `angle_normalize`: `((x + π) mod 2π) − π`).
pub fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

/// `[cos θ, sin θ, θ̇]`.
pub fn observe(s: &State) -> [f64; 3] {
    [s.theta.cos(), s.theta.sin(), s.theta_dot]
}

/// Reward of applying torque `u` (clipped) in state `s`.
pub fn reward(p: &Params, s: &State, u: f64) -> f64 {
    let u = u.clamp(-p.max_torque, p.max_torque);
    let th = angle_normalize(s.theta);
    -(th * th + 0.1 * s.theta_dot * s.theta_dot + 0.001 * u * u)
}

/// One gym step: returns the next state and the reward of `(s, u)`.
pub fn step(p: &Params, s: &State, u: f64) -> (State, f64) {
    let u = u.clamp(-p.max_torque, p.max_torque);
    let r = reward(p, s, u);
    let acc = 3.0 * p.g / (2.0 * p.l) * s.theta.sin() + 3.0 / (p.m * p.l * p.l) * u;
    let theta_dot = (s.theta_dot + acc * p.dt).clamp(-p.max_speed, p.max_speed);
    let theta = s.theta + theta_dot * p.dt;
    (State { theta, theta_dot }, r)
}

/// How random actions are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActionNoise {
    /// i.i.d. `U(−2, 2)` every step (what the peer benchmarks' `pendulum.npz` uses).
    Uniform,
    /// AR(1)-smoothed: `u_t = clip(ρ·u_{t−1} + sqrt(1−ρ²)·ε_t, −2, 2)`, `ε_t ~ U(−2, 2)`,
    /// `u_0 ~ U(−2, 2)`; `rho ∈ [0, 1)`.
    Smoothed {
        /// Correlation of successive actions (0: white noise).
        rho: f64,
    },
}

/// `n` trajectories of length `t`, row-major `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectories {
    /// Sequences.
    pub n: usize,
    /// Steps per sequence.
    pub t: usize,
    /// `(n, t, 3)`: `[cos θ, sin θ, θ̇]` before each action.
    pub obs: Vec<f32>,
    /// `(n, t, 1)`: the (clipped) torque applied at each step.
    pub act: Vec<f32>,
    /// `(n, t)`: the reward of each step.
    pub reward: Vec<f32>,
}

impl Trajectories {
    /// Per-dimension mean and (population) standard deviation of `obs` over all
    /// `n·t` steps (computed in f64).
    pub fn obs_mean_std(&self) -> ([f32; 3], [f32; 3]) {
        let count = (self.n * self.t).max(1) as f64;
        let mut mean = [0f64; 3];
        for o in self.obs.chunks(3) {
            for d in 0..3 {
                mean[d] += o[d] as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= count);
        let mut var = [0f64; 3];
        for o in self.obs.chunks(3) {
            for d in 0..3 {
                var[d] += (o[d] as f64 - mean[d]).powi(2);
            }
        }
        let std = var.map(|v| (v / count).sqrt() as f32);
        (mean.map(|m| m as f32), std)
    }
}

/// Simulates `n` trajectories of `t` steps: initial `θ ~ U(−π, π)`, `θ̇ ~ U(−1, 1)`
/// (gym's reset distribution), actions per `noise`; deterministic given `seed`
/// (`StdRng`; per trajectory: θ₀, θ̇₀, then one draw per step).
pub fn simulate(p: &Params, n: usize, t: usize, noise: ActionNoise, seed: u64) -> Trajectories {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut obs = Vec::with_capacity(n * t * 3);
    let mut act = Vec::with_capacity(n * t);
    let mut rew = Vec::with_capacity(n * t);
    for _ in 0..n {
        let mut s = State {
            theta: rng.gen_range(-PI..PI),
            theta_dot: rng.gen_range(-1.0..1.0),
        };
        let mut u_prev = 0.0;
        for k in 0..t {
            let e: f64 = rng.gen_range(-p.max_torque..p.max_torque);
            let u = match noise {
                ActionNoise::Uniform => e,
                ActionNoise::Smoothed { rho } if k > 0 => (rho * u_prev
                    + (1.0 - rho * rho).max(0.0).sqrt() * e)
                    .clamp(-p.max_torque, p.max_torque),
                ActionNoise::Smoothed { .. } => e,
            };
            u_prev = u;
            obs.extend(observe(&s).map(|v| v as f32));
            act.push(u as f32);
            let (next, r) = step(p, &s, u);
            rew.push(r as f32);
            s = next;
        }
    }
    Trajectories {
        n,
        t,
        obs,
        act,
        reward: rew,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_step() {
        // θ = 1, θ̇ = 0.5, u = 1:
        // θ̈ = 15·sin(1) + 3·1 = 15·0.8414709848078965 + 3 = 15.622064772118448
        // θ̇' = 0.5 + 0.05·θ̈ = 1.2811032386059224 ; θ' = 1 + 0.05·θ̇' = 1.0640551619302961
        // r = −(1 + 0.1·0.25 + 0.001·1) = −1.026
        let p = Params::default();
        let (s, r) = step(
            &p,
            &State {
                theta: 1.0,
                theta_dot: 0.5,
            },
            1.0,
        );
        assert!(close(s.theta_dot, 1.2811032386059224), "{}", s.theta_dot);
        assert!(close(s.theta, 1.064_055_161_930_296), "{}", s.theta);
        assert!(close(r, -1.026), "{r}");
    }

    #[test]
    fn clips_torque_and_speed_and_wraps_reward() {
        let p = Params::default();
        // u = 5 clips to 2; θ = 3π/2 wraps to −π/2 in the reward.
        let s0 = State {
            theta: 1.5 * PI,
            theta_dot: 7.9,
        };
        let (s, r) = step(&p, &s0, 5.0);
        // θ̈ = 15·sin(3π/2) + 6 = −9 ; θ̇' = 7.9 − 0.45 = 7.45 (no clip)
        assert!(close(s.theta_dot, 7.45), "{}", s.theta_dot);
        assert!(close(s.theta, 1.5 * PI + 0.05 * 7.45));
        let expect = -((PI / 2.0).powi(2) + 0.1 * 7.9 * 7.9 + 0.001 * 4.0);
        assert!((r - expect).abs() < 1e-12, "{r} vs {expect}");
        // Speed clip: θ = π/2 (θ̈ = 15 + 6 = 21), θ̇ = 7.5 → 8.55 → 8.
        let (s, _) = step(
            &p,
            &State {
                theta: PI / 2.0,
                theta_dot: 7.5,
            },
            2.0,
        );
        assert_eq!(s.theta_dot, 8.0);
        assert!(close(s.theta, PI / 2.0 + 0.4));
    }

    #[test]
    fn angle_normalize_matches_gym() {
        assert!(close(angle_normalize(0.0), 0.0));
        assert!(close(angle_normalize(2.0 * PI + 0.1), 0.1));
        assert!(close(angle_normalize(-0.1), -0.1));
        assert!(close(angle_normalize(PI), -PI));
        assert!(close(angle_normalize(-3.0 * PI / 2.0), PI / 2.0));
    }

    #[test]
    fn simulate_is_seeded_and_consistent() {
        let p = Params::default();
        let a = simulate(&p, 4, 20, ActionNoise::Uniform, 7);
        let b = simulate(&p, 4, 20, ActionNoise::Uniform, 7);
        let c = simulate(&p, 4, 20, ActionNoise::Uniform, 8);
        assert_eq!(a, b);
        assert_ne!(a.obs, c.obs);
        assert_eq!(
            (a.obs.len(), a.act.len(), a.reward.len()),
            (4 * 20 * 3, 4 * 20, 4 * 20)
        );
        // Replay trajectory 2 from its first observation and actions.
        let o = &a.obs[2 * 60..3 * 60];
        let mut s = State {
            theta: (o[1] as f64).atan2(o[0] as f64),
            theta_dot: o[2] as f64,
        };
        for k in 0..19 {
            let u = a.act[2 * 20 + k] as f64;
            assert!(u.abs() <= 2.0);
            let (next, r) = step(&p, &s, u);
            assert!((r as f32 - a.reward[2 * 20 + k]).abs() < 1e-4);
            let want = observe(&next);
            for d in 0..3 {
                assert!((want[d] as f32 - o[(k + 1) * 3 + d]).abs() < 1e-4);
            }
            s = next;
        }
        for (i, &th) in a.obs.chunks(3).map(|o| &o[2]).enumerate() {
            assert!(th.abs() <= 8.0, "speed at {i}");
        }
        let sm = simulate(&p, 2, 30, ActionNoise::Smoothed { rho: 0.9 }, 1);
        assert!(sm.act.iter().all(|u| u.abs() <= 2.0));
        let (mean, std) = a.obs_mean_std();
        assert!(mean.iter().all(|m| m.is_finite()) && std.iter().all(|s| *s > 0.0));
    }
}
