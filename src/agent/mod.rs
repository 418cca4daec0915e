//! The agent's side of the world (issue 9): environments it acts in, the replay of what it
//! saw, the λ-returns behaviour learning regresses on, and the episode log.
//!
//! Input: an environment name (`pendulum`, `gym:ID`) and actions; output: observations,
//! rewards and episode boundaries, stored as a replay dataset in vic's npz layout (so the
//! world model trains on it as on any other dataset), and one JSON line per episode.
//!
//! Invariants: an environment never panics on a bad action or a dead bridge — every fault is
//! a [`Diagnostic`](crate::diag::Diagnostic) with a code in the E3xx group; time indexing of
//! stored episodes follows the simulator's convention (`obs[t]` is seen before `act[t]`,
//! `rew[t]` is the reward of that step).

pub mod act;
pub mod behaviour;
pub mod bridge;
mod critic_copy;
pub mod env;
pub mod episodes;
pub mod known;
pub mod learn;
pub mod pendulum;
pub mod replay;
pub mod returns;
pub mod rollout;

pub use env::{open, Env, EnvSpec, Step};
