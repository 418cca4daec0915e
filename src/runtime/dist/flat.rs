//! The improper Flat prior: `ln p(x) = 0`, `KL(q ‖ Flat) = −H(q)`.

use dfdx::prelude::*;

use crate::runtime::tape::RtTape;
use crate::runtime::{Dev, T2};

/// `(rows, 1)` zeros.
pub fn log_prob(dev: &Dev, rows: usize) -> T2 {
    dev.zeros_like(&(rows, 1))
}

/// `KL(q ‖ Flat) = −entropy(q)`, given `entropy(q)` as `(rows, 1)`.
pub fn kl_from_entropy<T: RtTape>(entropy: T2<T>) -> T2<T> {
    entropy.negate()
}
