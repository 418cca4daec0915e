//! Runtime v2: each model compiled once per batch shape into a static program of fused
//! kernels over planned buffers, run on both cores.
//!
//! Input: a lowered [`crate::lower::Program`] and the parameter store. Output: an [`Engine`]
//! whose `forward`/`backward` give the ELBO, its terms and the parameters' gradients, exactly
//! as the reference path ([`crate::lower::Program::forward`] on dfdx) defines them.
//! Stages: [`build`] lowers the model to a [`graph::Graph`] (ops over views of planned
//! buffers); [`kernels`] runs it (one forward and one hand-written backward per op, matrix
//! products through `gemm`; one-hot latents' kernels in [`discrete`]); [`engine`] splits the
//! batch over workers, draws the noise in the reference order and applies the loss head.
//! Invariants: the same seed gives the same noise as the reference path, so values and
//! gradients agree with it up to float rounding (`tests/fused.rs`); whether a program runs
//! here is decided once, from the table in [`caps`], before anything is built.

pub mod build;
pub mod caps;
pub mod discrete;
pub mod engine;
pub mod families;
pub mod graph;
pub(crate) mod handoff;
pub mod hmm;
pub mod kernels;
pub mod math;
pub mod predictive;
pub mod small512;
pub mod special;

pub use build::Unsupported;
pub use caps::support;
pub use engine::{Engine, Fwd};
