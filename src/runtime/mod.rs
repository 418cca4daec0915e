//! Numeric runtime of vic: distributions, networks, optimiser and checkpoints on dfdx 0.13.
//!
//! **Input.** Every value is a 2-D tensor [`T2`] = `Tensor<(usize, usize), f32, Dev, T>` with
//! run-time shape `(rows, cols)`: rows are the batch (or batch×time flattened time-major, see
//! [`nets::gru::stack_time`]), cols the feature size. Parameters live in a
//! [`nets::params::ParamStore`] (name → 2-D matrix or 1-D bias). Randomness always comes from
//! an explicit [`rng::Rng`] (seeded `StdRng`), never from the device RNG.
//!
//! **Output.** Log-densities, entropies and KLs are summed over cols and returned as `(rows, 1)`
//! tensors (`*_elem` variants keep `(rows, cols)`); samples are `(rows, cols)`.
//! [`tape::backward`] turns a scalar loss into `Gradients`; [`nets::params::ParamStore::grads`]
//! copies out one host gradient per parameter (zeros for unused ones), which
//! [`optim::Adam`] consumes; [`checkpoint`] saves/loads parameters, Adam state and metadata.
//!
//! **Invariants.**
//! - Training uses [`tape::SharedTape`] ([`Tp`]): every traced tensor shares one tape, so
//!   `clone()` of a traced value is the right way to use it twice and dropping a value never
//!   loses backward ops. Functions here are generic over [`tape::RtTape`] (also `NoneTape`
//!   for evaluation and dfdx's `OwnedTape`; with `OwnedTape` the *first* output of a
//!   multi-output function carries the tape).
//! - In a binary op at least the left operand is taped (dfdx rule); both operands must not be
//!   the same tensor id (`x.clone() * x` panics in backward): use [`ops::fresh`] or `square()`.
//! - Shapes are checked by vic's checker before any op runs; dfdx panics on mismatch.
//! - The same seed gives bit-identical results; nothing here returns NaN for a well-posed
//!   input: impossible KLs are `Err(RtError::InfiniteKl)`, out-of-support log-densities `-inf`.

pub mod checkpoint;
pub mod dist;
pub mod error;
pub mod nets;
pub mod ops;
pub mod optim;
pub mod rng;
pub mod simd;
pub mod special;
pub mod tape;

#[cfg(test)]
mod tests;

use dfdx::tensor::{NoneTape, Tensor};

/// The device every tensor lives on.
#[cfg(not(feature = "cuda"))]
pub type Dev = dfdx::tensor::Cpu;
/// The device every tensor lives on.
#[cfg(feature = "cuda")]
pub type Dev = dfdx::tensor::Cuda;

/// A 2-D value `(rows, cols)`.
pub type T2<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;
/// A 1-D tensor (biases).
pub type T1<T = NoneTape> = Tensor<(usize,), f32, Dev, T>;
/// A scalar (losses).
pub type T0<T = NoneTape> = Tensor<(), f32, Dev, T>;
/// The training tape.
pub type Tp = tape::SharedTape<f32, Dev>;

pub use error::RtError;
pub use tape::{backward, RtTape, SharedTape};
