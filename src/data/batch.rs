//! Seeded minibatch index samplers.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// How [`MiniBatcher`] draws row indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleMode {
    /// Every step draws `batch_size` indices i.i.d. uniform on `0..n` (with
    /// replacement, also within a batch), as the Pyro/NumPyro benchmarks do
    /// (`torch.randint(0, N, (B,))`, `jax.random.randint(key, (B,), 0, N)`).
    WithReplacement,
    /// Shuffled passes: each epoch is a fresh permutation of `0..n` cut into batches
    /// of `batch_size`; the last batch of an epoch is smaller when `batch_size`
    /// does not divide `n`. Every row is seen exactly once per epoch.
    Epoch,
}

/// A seeded, infinite source of minibatch row indices (also an [`Iterator`]).
#[derive(Debug, Clone)]
pub struct MiniBatcher {
    n: usize,
    batch_size: usize,
    mode: SampleMode,
    rng: StdRng,
    perm: Vec<usize>,
    pos: usize,
    epoch: usize,
    steps: usize,
}

impl MiniBatcher {
    /// `batch_size` is clamped to at least 1; with `n == 0` every batch is empty.
    pub fn new(n: usize, batch_size: usize, mode: SampleMode, seed: u64) -> Self {
        MiniBatcher {
            n,
            batch_size: batch_size.max(1),
            mode,
            rng: StdRng::seed_from_u64(seed),
            perm: Vec::new(),
            pos: 0,
            epoch: 0,
            steps: 0,
        }
    }

    /// The row indices of the next minibatch.
    pub fn next_indices(&mut self) -> Vec<usize> {
        if self.n == 0 {
            return Vec::new();
        }
        self.steps += 1;
        match self.mode {
            SampleMode::WithReplacement => (0..self.batch_size)
                .map(|_| self.rng.gen_range(0..self.n))
                .collect(),
            SampleMode::Epoch => {
                if self.pos >= self.perm.len() {
                    if !self.perm.is_empty() {
                        self.epoch += 1;
                    }
                    self.perm = (0..self.n).collect();
                    self.perm.shuffle(&mut self.rng);
                    self.pos = 0;
                }
                let end = (self.pos + self.batch_size).min(self.n);
                let out = self.perm[self.pos..end].to_vec();
                self.pos = end;
                out
            }
        }
    }

    /// Completed epochs so far (`Epoch` mode); for `WithReplacement`, the number of
    /// full passes' worth of rows drawn (`steps * batch_size / n`).
    pub fn epoch(&self) -> usize {
        match self.mode {
            SampleMode::Epoch => self.epoch,
            SampleMode::WithReplacement => (self.steps * self.batch_size)
                .checked_div(self.n)
                .unwrap_or(0),
        }
    }

    /// Batches returned so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Batches per epoch, `ceil(n / batch_size)`.
    pub fn batches_per_epoch(&self) -> usize {
        self.n.div_ceil(self.batch_size)
    }

    /// Rows per minibatch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// How rows are drawn.
    pub fn mode(&self) -> SampleMode {
        self.mode
    }
}

impl Iterator for MiniBatcher {
    type Item = Vec<usize>;
    fn next(&mut self) -> Option<Vec<usize>> {
        Some(self.next_indices())
    }
}
