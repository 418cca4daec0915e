//! Running the lowered draw programs of `vic sample` ([`super::build::build_predictive`],
//! [`super::build::build_one_step`], [`super::build::build_draws`]) on one worker: the
//! batch's data and the noise in, host values out.
//!
//! Input: a lowered program, the parameters, a data batch and the noise stream. Output: per
//! variable, host values batch-major `(b, t, size)` (`(b, size)` when static) — the layouts
//! of [`crate::lower::Program::posterior_predictive`], `one_step_predictive` and `simulate`,
//! which draw the same values from the same seed. Invariants: the noise is drawn view by view
//! in the order the lowering pushed it (the reference's), all rows of a view at once.

use super::build::{
    build_draws, build_one_step, build_predictive, param_index, ParamIndex, Predictive, Unsupported,
};
use super::kernels::Worker;
use crate::ir::{Role, VarId};
use crate::lower::{Batch, Program};
use crate::runtime::nets::params::ParamStore;
use crate::runtime::rng::Rng;
use std::collections::HashMap;

/// Posterior predictive draws of every observed variable and the posterior's latents.
pub fn posterior_predictive(
    prog: &Program,
    store: &ParamStore,
    batch: &Batch,
    rng: &mut Rng,
) -> Result<HashMap<VarId, Vec<f32>>, Unsupported> {
    let m = &prog.model;
    let (b, tt) = (batch.b, batch.t.max(1));
    let (p, w) = run(prog, store, batch, rng, build_predictive, |_| usize::MAX)?;
    let mut out = HashMap::new();
    for (v, steps) in &p.draws {
        let size = m.vars[*v].ty.size();
        if !m.vars[*v].timed {
            if let Some(Some(x)) = steps.first() {
                out.insert(*v, w.view(*x).to_vec());
            }
            continue;
        }
        // One `(b, size)` view per step; a step without a factor stays zero.
        let mut rows = vec![0.0f32; tt * b * size];
        for (t, x) in steps.iter().enumerate() {
            if let Some(x) = x {
                rows[t * b * size..(t + 1) * b * size].copy_from_slice(w.view(*x));
            }
        }
        out.insert(*v, batch_major(&rows, b, tt, size));
    }
    out.extend(values(&p, &w, prog, b, tt));
    Ok(out)
}

/// One-step predictive draws of every time-indexed observed variable, batch-major
/// `(b, t, size)`; step 1 (no posterior before it) is NaN.
pub fn one_step_predictive(
    prog: &Program,
    store: &ParamStore,
    batch: &Batch,
    rng: &mut Rng,
) -> Result<HashMap<VarId, Vec<f32>>, Unsupported> {
    let m = &prog.model;
    let (b, tt) = (batch.b, batch.t.max(1));
    let (p, w) = run(prog, store, batch, rng, build_one_step, |_| usize::MAX)?;
    let mut out = HashMap::new();
    for (v, var) in m.vars.iter().enumerate() {
        if var.role == Role::Observed && var.timed {
            let size = var.ty.size();
            // Window row (s − 1)·b + i predicts step s + 1 of sequence i.
            let mut rows = vec![f32::NAN; tt * b * size];
            if let Some((_, x)) = p.draws.iter().find(|(u, _)| *u == v) {
                if let Some(Some(x)) = x.first() {
                    rows[b * size..].copy_from_slice(w.view(*x));
                }
            }
            out.insert(v, batch_major(&rows, b, tt, size));
        }
    }
    Ok(out)
}

/// Draws from p (`vic sample`): with `condition = k`, q on the first `k` observed steps and
/// p open loop after; `k = 0` is the prior predictive. Every variable of the program.
pub fn draws(
    prog: &Program,
    store: &ParamStore,
    batch: &Batch,
    condition: usize,
    rng: &mut Rng,
) -> Result<HashMap<VarId, Vec<f32>>, Unsupported> {
    let m = &prog.model;
    let (b, tt) = (batch.b, batch.t.max(1));
    let build =
        |p: &Program, i: &ParamIndex, b: usize, t: usize| build_draws(p, i, b, t, condition);
    // Inputs at every step; observed data on the conditioned steps only (p draws the rest).
    let steps = |v: VarId| match m.vars[v].role {
        Role::Observed => condition,
        _ => usize::MAX,
    };
    let (p, w) = run(prog, store, batch, rng, build, steps)?;
    Ok(values(&p, &w, prog, b, tt))
}

/// The values of `p.values`' buffers, batch-major.
fn values(
    p: &Predictive,
    w: &Worker,
    prog: &Program,
    b: usize,
    tt: usize,
) -> HashMap<VarId, Vec<f32>> {
    let k = p.built.k;
    (p.values.iter())
        .map(|&(v, buf)| {
            let var = &prog.model.vars[v];
            let size = var.ty.size();
            let vals = w.vals(buf);
            if var.timed {
                let rows = &vals[k * b * size..(k + tt) * b * size];
                (v, batch_major(rows, b, tt, size))
            } else {
                (v, vals[..b * size].to_vec())
            }
        })
        .collect()
}

/// Time-major rows of `tt` steps of `b` sequences as batch-major `(b, tt, size)`.
fn batch_major(rows: &[f32], b: usize, tt: usize, size: usize) -> Vec<f32> {
    let mut host = vec![0.0f32; b * tt * size];
    for t in 0..tt {
        for i in 0..b {
            let (src, dst) = ((t * b + i) * size, (i * tt + t) * size);
            host[dst..dst + size].copy_from_slice(&rows[src..src + size]);
        }
    }
    host
}

/// The program `build` lowers for the batch's shape, run forward on one worker with the
/// batch's data (of each variable its first `steps(v)` steps), fresh noise and the store's
/// parameter values.
fn run(
    prog: &Program,
    store: &ParamStore,
    batch: &Batch,
    rng: &mut Rng,
    build: impl FnOnce(&Program, &ParamIndex, usize, usize) -> Result<Predictive, Unsupported>,
    steps: impl Fn(VarId) -> usize,
) -> Result<(Predictive, Worker), Unsupported> {
    let m = &prog.model;
    let (b, tt) = (batch.b, batch.t.max(1));
    let (index, values) = param_index(store);
    let mut p = build(prog, &index, b, tt)?;
    let mut w = Worker::new(std::mem::take(&mut p.built.g));
    let built = &p.built;
    for slot in &built.data {
        let size = m.vars[slot.var].ty.size();
        // A variable without data (or past its steps) reads zeros: buffers start zeroed.
        let Some(host) = batch.data.get(&slot.var) else {
            continue;
        };
        let n = match (slot.timed, steps(slot.var)) {
            (true, s) => tt.min(s) * b * size,
            (false, 0) => 0,
            (false, _) => b * size,
        };
        let dst = w.vals_mut(slot.buf);
        dst[slot.row0 * size..slot.row0 * size + n].copy_from_slice(&host[..n]);
    }
    for (v, (kind, _)) in built.noise.iter().zip(&built.noise_meta) {
        let cols = w.g.bufs[v.buf].cols;
        let dst = &mut w.vals_mut(v.buf)[v.r0 * cols..(v.r0 + v.rows) * cols];
        for x in dst {
            *x = kind.draw(rng);
        }
    }
    let params: Vec<&[f32]> = values.iter().map(|v| v.as_slice()).collect();
    w.set_params(&params);
    w.forward();
    Ok((p, w))
}
