//! vic's own simulators, used to generate benchmark data without Python/gym.
//!
//! * [`pendulum`]: gym `Pendulum-v1` dynamics, observations and rewards.

pub mod pendulum;
