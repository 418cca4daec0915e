//! Running a posterior predictive program ([`super::build::build_predictive`]) on one worker:
//! the batch's data and the noise in, the draws and the posterior's latents out.
//!
//! Input: a lowered program, the parameters, a data batch and the noise stream. Output: per
//! observed variable and latent, host values batch-major `(b, t, size)` (`(b, size)` when
//! static) — the layout of [`crate::lower::Program::posterior_predictive`], which draws the
//! same values from the same seed. Invariants: the noise is drawn view by view in the order
//! the lowering pushed it (the reference's), all rows of a view at once.

use super::build::{
    build_one_step, build_predictive, param_index, ParamIndex, Predictive, Unsupported,
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
    let (p, w) = run(prog, store, batch, rng, build_predictive)?;
    let built = &p.built;
    let mut out = HashMap::new();
    // Time-major rows (step-major blocks of b) to batch-major (b, t, size).
    let batch_major = |rows: &[f32], steps: usize, size: usize, host: &mut [f32], t0: usize| {
        for t in 0..steps {
            for i in 0..b {
                let src = (t * b + i) * size;
                let dst = (i * tt + t0 + t) * size;
                host[dst..dst + size].copy_from_slice(&rows[src..src + size]);
            }
        }
    };
    for (v, steps) in &p.draws {
        let size = m.vars[*v].ty.size();
        if !m.vars[*v].timed {
            if let Some(Some(x)) = steps.first() {
                out.insert(*v, w.view(*x).to_vec());
            }
            continue;
        }
        let mut host = vec![0.0f32; b * tt * size];
        for (t, x) in steps.iter().enumerate() {
            if let Some(x) = x {
                batch_major(w.view(*x), 1, size, &mut host, t);
            }
        }
        out.insert(*v, host);
    }
    for &(v, buf) in &p.latents {
        let size = m.vars[v].ty.size();
        let vals = w.vals(buf);
        if m.vars[v].timed {
            let mut host = vec![0.0f32; b * tt * size];
            let rows = &vals[built.k * b * size..(built.k + tt) * b * size];
            batch_major(rows, tt, size, &mut host, 0);
            out.insert(v, host);
        } else {
            out.insert(v, vals[..b * size].to_vec());
        }
    }
    Ok(out)
}

/// One-step predictive draws of every time-indexed observed variable, batch-major
/// `(b, t, size)`; step 1 (no posterior before it) is NaN — the layout of
/// [`crate::lower::Program::one_step_predictive`], which draws the same values from the same
/// seed.
pub fn one_step_predictive(
    prog: &Program,
    store: &ParamStore,
    batch: &Batch,
    rng: &mut Rng,
) -> Result<HashMap<VarId, Vec<f32>>, Unsupported> {
    let m = &prog.model;
    let (b, tt) = (batch.b, batch.t.max(1));
    let (p, w) = run(prog, store, batch, rng, build_one_step)?;
    let mut out = HashMap::new();
    for (v, var) in m.vars.iter().enumerate() {
        if var.role == Role::Observed && var.timed {
            out.insert(v, vec![f32::NAN; b * tt * var.ty.size()]);
        }
    }
    for (v, x) in &p.draws {
        let (Some(Some(x)), Some(host)) = (x.first(), out.get_mut(v)) else {
            continue;
        };
        let size = m.vars[*v].ty.size();
        let rows = w.view(*x);
        for s in 1..tt {
            for i in 0..b {
                let src = ((s - 1) * b + i) * size;
                let dst = (i * tt + s) * size;
                host[dst..dst + size].copy_from_slice(&rows[src..src + size]);
            }
        }
    }
    Ok(out)
}

/// The program `build` lowers for the batch's shape, run forward on one worker with the
/// batch's data, fresh noise and the store's parameter values.
fn run(
    prog: &Program,
    store: &ParamStore,
    batch: &Batch,
    rng: &mut Rng,
    build: impl FnOnce(&Program, &ParamIndex, usize, usize) -> Result<Predictive, Unsupported>,
) -> Result<(Predictive, Worker), Unsupported> {
    let m = &prog.model;
    let (b, tt) = (batch.b, batch.t.max(1));
    let (index, values) = param_index(store);
    let mut p = build(prog, &index, b, tt)?;
    let mut w = Worker::new(std::mem::take(&mut p.built.g));
    let built = &p.built;
    for slot in &built.data {
        let size = m.vars[slot.var].ty.size();
        let Some(host) = batch.data.get(&slot.var) else {
            return Err(Unsupported(format!(
                "no data for `{}`",
                m.vars[slot.var].name
            )));
        };
        let n = if slot.timed { tt * b } else { b } * size;
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
