//! Explicit, seeded randomness: every sampler takes an [`Rng`]; same seed → same bits.

use rand::{Rng as _, SeedableRng};
use rand_distr::StandardNormal;

use super::ops::from_host;
use super::{Dev, T2};

/// The runtime's random number generator (ChaCha12, stable across platforms).
pub type Rng = rand::rngs::StdRng;

/// A generator seeded with `seed`.
pub fn seeded(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Standard normal noise `(rows, cols)`.
pub fn normal_noise(dev: &Dev, rng: &mut Rng, rows: usize, cols: usize) -> T2 {
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| rng.sample(StandardNormal))
        .collect();
    from_host(dev, v, rows, cols)
}

/// Uniform noise on `[0, 1)`, `(rows, cols)`.
pub fn uniform_noise(dev: &Dev, rng: &mut Rng, rows: usize, cols: usize) -> T2 {
    let v: Vec<f32> = (0..rows * cols).map(|_| rng.gen::<f32>()).collect();
    from_host(dev, v, rows, cols)
}
