//! Adam (PyTorch semantics) on host copies, global-norm clipping and learning-rate schedules.
//!
//! Per step: `g ← g + wd·p` (L2 mode) or `p ← p − lr·wd·p` (decoupled/AdamW mode);
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)`.

use std::collections::BTreeMap;

use super::nets::params::{GradMap, ParamStore};
use super::RtError;

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// β₁, β₂: decay of the first and second moments.
    pub betas: [f64; 2],
    /// ε in the denominator.
    pub eps: f64,
    /// L2 weight decay (added to the gradient unless decoupled).
    pub weight_decay: f64,
    /// `true`: AdamW (decoupled) decay; `false`: L2 added to the gradient (torch `Adam`).
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

/// Moments of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// First moment (mean of the gradient).
    pub m: Vec<f32>,
    /// Second moment (mean of its square).
    pub v: Vec<f32>,
}

/// Adam with its state (`step` = number of updates done).
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    /// Its settings.
    pub cfg: AdamConfig,
    /// Updates taken.
    pub step: u64,
    /// Moments by parameter name.
    pub state: BTreeMap<String, Moments>,
}

impl Adam {
    /// Fresh optimiser (state is created lazily per parameter).
    pub fn new(cfg: AdamConfig) -> Self {
        Self {
            cfg,
            step: 0,
            state: BTreeMap::new(),
        }
    }

    /// One update of every parameter having a gradient in `grads`, at learning rate `lr`
    /// (use [`LrSchedule::lr`]; pass `self.cfg.lr` for a constant rate).
    pub fn update(
        &mut self,
        store: &mut ParamStore,
        grads: &GradMap,
        lr: f64,
    ) -> Result<(), RtError> {
        self.step += 1;
        for (name, g) in grads {
            let param = store.get_mut(name)?;
            if g.len() != param.numel() {
                return Err(RtError::ParamShape {
                    name: name.clone(),
                    found: vec![g.len()],
                    expected: param.shape(),
                });
            }
            let mut p = param.to_host();
            self.apply(name, &mut p, g, lr);
            param.set_host(&p);
        }
        Ok(())
    }

    /// Start an update done by the caller, parameter by parameter (possibly on several
    /// threads): counts the step and returns its coefficients; [`Adam::moments`] gives the
    /// state and [`AdamStep::apply`] the update.
    pub fn begin(&mut self, lr: f64) -> AdamStep {
        self.step += 1;
        self.coefficients(lr)
    }

    /// The coefficients of an update at the current step count, without counting a step
    /// (a second learner stepping alongside the one that called [`Adam::begin`]).
    pub fn at_step(&self, lr: f64) -> AdamStep {
        self.coefficients(lr.max(0.0))
    }

    /// The moments of `(name, size)` in that order, created on first use.
    pub fn moments<'a>(&'a mut self, params: &[(&str, usize)]) -> Vec<&'a mut Moments> {
        for (name, n) in params {
            if !self.state.contains_key(*name) {
                self.state.insert(
                    name.to_string(),
                    Moments {
                        m: vec![0.0; *n],
                        v: vec![0.0; *n],
                    },
                );
            }
        }
        let mut by_name: std::collections::HashMap<&str, &'a mut Moments> = self
            .state
            .iter_mut()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        params
            .iter()
            .map(|(name, _)| by_name.remove(name).expect("inserted above"))
            .collect()
    }

    fn coefficients(&self, lr: f64) -> AdamStep {
        let t = self.step as i32;
        let [b1, b2] = self.cfg.betas;
        AdamStep {
            b1: b1 as f32,
            b2: b2 as f32,
            bc1: (1.0 - b1.powi(t)) as f32,
            bc2: (1.0 - b2.powi(t)) as f32,
            eps: self.cfg.eps as f32,
            wd: self.cfg.weight_decay as f32,
            lr: lr as f32,
            decoupled: self.cfg.decoupled,
        }
    }

    /// The update of one parameter at step `self.step` (moments created on first use).
    fn apply(&mut self, name: &str, p: &mut [f32], g: &[f32], lr: f64) {
        let k = self.coefficients(lr);
        let st = self
            .state
            .entry(name.to_string())
            .or_insert_with(|| Moments {
                m: vec![0.0; p.len()],
                v: vec![0.0; p.len()],
            });
        k.apply(p, g, st);
    }
}

/// The coefficients of one Adam step.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    b1: f32,
    b2: f32,
    bc1: f32,
    bc2: f32,
    eps: f32,
    wd: f32,
    lr: f32,
    decoupled: bool,
}

impl AdamStep {
    /// Update `p` with gradient `g` and its moments.
    pub fn apply(&self, p: &mut [f32], g: &[f32], st: &mut Moments) {
        #[cfg(target_arch = "x86_64")]
        if super::simd::avx2() {
            // SAFETY: the CPU has the features.
            unsafe { adam_avx2(self, p, g, &mut st.m, &mut st.v) };
            return;
        }
        adam_loop(self, p, g, &mut st.m, &mut st.v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn adam_avx2(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    adam_loop(k, p, g, m, v)
}

#[inline(always)]
fn adam_loop(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    match (k.wd != 0.0, k.decoupled) {
        (false, _) => adam_elems::<0>(k, p, g, m, v),
        (true, false) => adam_elems::<1>(k, p, g, m, v),
        (true, true) => adam_elems::<2>(k, p, g, m, v),
    }
}

/// The element loop, without branches (`WD`: 0 none, 1 L2 on the gradient, 2 decoupled) so it
/// vectorises.
#[inline(always)]
fn adam_elems<const WD: u8>(k: &AdamStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let (ib1, ib2) = (1.0 - k.b1, 1.0 - k.b2);
    let (r1, r2) = (1.0 / k.bc1, 1.0 / k.bc2);
    for (((pi, gi), mi), vi) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mut gi = *gi;
        if WD == 1 {
            gi += k.wd * *pi;
        }
        if WD == 2 {
            *pi -= k.lr * k.wd * *pi;
        }
        *mi = k.b1 * *mi + ib1 * gi;
        *vi = k.b2 * *vi + ib2 * gi * gi;
        *pi -= k.lr * (*mi * r1) / ((*vi * r2).sqrt() + k.eps);
    }
}

/// Global L2 norm of gradients held in slices.
pub fn norm_of<'a>(grads: impl IntoIterator<Item = &'a [f32]>) -> f64 {
    grads.into_iter().map(sum_sq).sum::<f64>().sqrt()
}

/// `Σ x²` of one slice: eight f32 partial sums per block of 4096 (so the loop vectorises),
/// blocks added in f64.
fn sum_sq(g: &[f32]) -> f64 {
    g.chunks(4096)
        .map(|block| {
            let mut acc = [0.0f32; 8];
            let mut it = block.chunks_exact(8);
            for c in &mut it {
                for (a, x) in acc.iter_mut().zip(c) {
                    *a += x * x;
                }
            }
            let tail: f32 = it.remainder().iter().map(|x| x * x).sum();
            acc.iter().map(|a| f64::from(*a)).sum::<f64>() + f64::from(tail)
        })
        .sum()
}

/// The factor `clip_grad_norm_` scales gradients by (1 when the norm is within `max_norm`).
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}

/// Global L2 norm of all gradients.
pub fn global_norm(grads: &GradMap) -> f64 {
    norm_of(grads.values().map(|g| g.as_slice()))
}

/// Scales all gradients so their global norm is at most `max_norm` (PyTorch
/// `clip_grad_norm_`: factor `max_norm / (norm + 1e-6)` when below 1). Returns the norm
/// before clipping.
pub fn clip_global_norm(grads: &mut GradMap, max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    let coef = clip_factor(norm, max_norm);
    if coef < 1.0 {
        for g in grads.values_mut() {
            for x in g.iter_mut() {
                *x = (*x as f64 * coef) as f32;
            }
        }
    }
    norm
}

/// Learning-rate schedule: `lr(step) = base · factor(step)`, `step` counted from 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Linear ramp from `1/warmup` to 1 over the first `warmup` steps.
    LinearWarmup {
        /// Steps of the linear warm-up.
        warmup: u64,
    },
    /// Linear warmup, then cosine decay from 1 to `min_factor` at `total` steps.
    Cosine {
        /// Steps of the linear warm-up.
        warmup: u64,
        /// The step at which the cosine reaches its end.
        total: u64,
        /// The final rate as a fraction of the base rate.
        min_factor: f64,
    },
}

impl LrSchedule {
    /// Multiplier of the base learning rate at `step`.
    pub fn factor(&self, step: u64) -> f64 {
        let warm = |w: u64| {
            if w > 0 && step < w {
                Some((step + 1) as f64 / w as f64)
            } else {
                None
            }
        };
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::LinearWarmup { warmup } => warm(warmup).unwrap_or(1.0),
            LrSchedule::Cosine {
                warmup,
                total,
                min_factor,
            } => warm(warmup).unwrap_or_else(|| {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let prog = ((step - warmup.min(step)) as f64 / span).min(1.0);
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * prog).cos())
            }),
        }
    }
    /// Learning rate at `step`.
    pub fn lr(&self, base: f64, step: u64) -> f64 {
        base * self.factor(step)
    }
}
