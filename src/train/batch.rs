//! Datasets → time-major batches.

use crate::data::{Dataset, ValueKind, VarSpec};
use crate::family::Family;
use crate::ir::{Block, FactorBody, Role, VarType};
use crate::lower::{Batch, Program};
use std::collections::HashMap;

/// What the model reads from a data file: its observed and input variables.
pub fn specs_of(p: &Program) -> Vec<VarSpec> {
    p.model
        .vars
        .iter()
        .enumerate()
        .filter(|(_, v)| matches!(v.role, Role::Observed | Role::Input))
        .map(|(id, v)| {
            let by_type = match v.ty {
                VarType::Real { .. } => ValueKind::Real,
                VarType::Unit { .. } => ValueKind::Unit,
                VarType::Binary { .. } => ValueKind::Binary,
                VarType::OneHot { groups, classes } => ValueKind::OneHot { groups, classes },
            };
            // A likelihood with a narrower support than the type's: counts, positive values,
            // the open unit interval (a value outside it is E111, never a NaN ELBO).
            let kind = p
                .model
                .factors
                .iter()
                .filter(|f| f.block == Block::P && f.var == id)
                .find_map(|f| match &f.body {
                    FactorBody::Sample(d) => match d.family {
                        Family::Poisson => Some(ValueKind::Count),
                        Family::Gamma | Family::LogNormal => {
                            Some(ValueKind::Positive(d.family.name()))
                        }
                        Family::Beta => Some(ValueKind::OpenUnit),
                        _ => None,
                    },
                    FactorBody::Define(_) => None,
                })
                .unwrap_or(by_type);
            VarSpec::new(v.name.clone(), v.timed, v.ty.size(), kind)
        })
        .collect()
}

/// Sequences `idx` of `d`, each repeated `copies` times (IWAE samples; copy-major), laid out
/// time-major.
pub fn data_batch(p: &Program, d: &Dataset, idx: &[usize], copies: usize) -> Batch {
    let idx: Vec<usize> = (0..copies.max(1))
        .flat_map(|_| idx.iter().copied())
        .collect();
    let b = idx.len();
    let t = d.t.unwrap_or(1);
    let mut data = HashMap::new();
    for (v, var) in p.model.vars.iter().enumerate() {
        if !matches!(var.role, Role::Observed | Role::Input) {
            continue;
        }
        let Some(arr) = d.array(&var.name) else {
            continue;
        };
        let size = var.ty.size();
        let mut out = Vec::with_capacity(b * t * size);
        if var.timed {
            for step in 0..t {
                for &i in &idx {
                    let at = (i * t + step) * size;
                    out.extend_from_slice(&arr[at..at + size]);
                }
            }
        } else {
            for &i in &idx {
                out.extend_from_slice(&arr[i * size..(i + 1) * size]);
            }
        }
        data.insert(v, out);
    }
    let mask = d.mask.as_ref().map(|m| {
        let mut out = Vec::with_capacity(b * t);
        for step in 0..t {
            for &i in &idx {
                out.push(m[i * t + step]);
            }
        }
        out
    });
    Batch {
        b,
        t: if p.model.is_sequential() { t } else { 1 },
        data,
        mask,
    }
}

/// A control problem's batch: `b` rollouts of `horizon` steps, no data.
pub fn control_batch(p: &Program, b: usize, horizon: usize) -> Batch {
    Batch {
        b,
        t: if p.model.is_sequential() { horizon } else { 1 },
        data: HashMap::new(),
        mask: None,
    }
}

/// Rows `rows` of `batch` (a window of its sequences, every step; its mask too).
pub(crate) fn rows_of(p: &Program, batch: &Batch, rows: std::ops::Range<usize>) -> Batch {
    let (b, w) = (batch.b, rows.len());
    let cut = |host: &[f32], size: usize| -> Vec<f32> {
        let steps = host.len() / (b * size).max(1);
        let mut out = Vec::with_capacity(steps * w * size);
        for t in 0..steps {
            out.extend_from_slice(&host[(t * b + rows.start) * size..(t * b + rows.end) * size]);
        }
        out
    };
    Batch {
        b: w,
        t: batch.t,
        data: (batch.data.iter())
            .map(|(v, host)| (*v, cut(host, p.model.vars[*v].ty.size())))
            .collect(),
        mask: batch.mask.as_deref().map(|m| cut(m, 1)),
    }
}
