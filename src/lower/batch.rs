//! The data batch both runtimes run on: host arrays of `b` sequences of `t` steps.

use crate::ir::VarId;
use std::collections::HashMap;

/// A batch of `b` sequences of `t` steps (`t = 1` for static models). Time-major layout:
/// row `step·b + seq`.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Sequences in the batch.
    pub b: usize,
    /// Steps per sequence (1 for a static model).
    pub t: usize,
    /// Timed variables `(t·b, size)`, static ones `(b, size)`, row-major host data.
    pub data: HashMap<VarId, Vec<f32>>,
    /// `(t·b)`: 1 where the step is observed.
    pub mask: Option<Vec<f32>>,
}
