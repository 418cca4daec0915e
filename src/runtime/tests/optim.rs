//! Adam vs a hand computation and vs dfdx's own Adam kernel; clipping; schedules.

use dfdx::prelude::*;

use crate::runtime::nets::params::{GradMap, ParamStore};
use crate::runtime::optim::{clip_global_norm, global_norm, Adam, AdamConfig, LrSchedule};
use crate::runtime::Dev;

fn one(p: &[f32], g: &[f32], cfg: AdamConfig, steps: usize) -> (Vec<f32>, Adam) {
    let mut st = ParamStore::new(Dev::default());
    st.insert_host("w", &[p.len()], p.to_vec()).unwrap();
    let mut adam = Adam::new(cfg);
    let grads: GradMap = [("w".to_string(), g.to_vec())].into_iter().collect();
    for _ in 0..steps {
        adam.update(&mut st, &grads, cfg.lr).unwrap();
    }
    (st.get("w").unwrap().to_host(), adam)
}

#[test]
fn adam_first_step_by_hand() {
    // step 1: m̂ = g, v̂ = g², so p ← p − lr·g/(|g| + ε): exactly ∓lr per entry (tol 1e-6)
    let cfg = AdamConfig {
        lr: 0.1,
        ..Default::default()
    };
    let (p, adam) = one(&[1.0, -2.0, 0.5], &[0.5, -0.1, 2.0], cfg, 1);
    for (a, b) in p.iter().zip([0.9f32, -1.9, 0.4]) {
        assert!((a - b).abs() < 1e-6, "{p:?}");
    }
    assert_eq!(adam.step, 1);
    // f32 rounding of 1 − β: relative 1e-4
    assert!((adam.state["w"].m[0] / 0.05 - 1.0).abs() < 1e-4);
    assert!((adam.state["w"].v[0] / 0.00025 - 1.0).abs() < 1e-4);
}

#[test]
fn adam_two_steps_weight_decay_by_hand() {
    // hand computation in f64 of two L2-decayed steps with a constant gradient (tol 1e-6)
    let (lr, b1, b2, eps, wd) = (0.01f64, 0.8f64, 0.9f64, 1e-8f64, 0.1f64);
    let (mut p, g) = (1.5f64, 0.3f64);
    let (mut m, mut v) = (0.0, 0.0);
    for t in 1..=2 {
        let gt = g + wd * p;
        m = b1 * m + (1.0 - b1) * gt;
        v = b2 * v + (1.0 - b2) * gt * gt;
        let mh = m / (1.0 - b1.powi(t));
        let vh = v / (1.0 - b2.powi(t));
        p -= lr * mh / (vh.sqrt() + eps);
    }
    let cfg = AdamConfig {
        lr,
        betas: [b1, b2],
        eps,
        weight_decay: wd,
        decoupled: false,
    };
    let (got, _) = one(&[1.5], &[0.3], cfg, 2);
    assert!((got[0] as f64 - p).abs() < 1e-6, "{} vs {p}", got[0]);
}

#[test]
fn adam_matches_dfdx_kernel() {
    // 5 steps of ours vs dfdx's AdamConfig::try_update (both weight-decay modes), tol 1e-6
    let p0 = vec![0.3f32, -1.2, 2.0, 0.0];
    let g = vec![0.1f32, -0.4, 1.5, 0.02];
    for decoupled in [false, true] {
        let cfg = AdamConfig {
            lr: 0.05,
            betas: [0.9, 0.99],
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled,
        };
        let (ours, _) = one(&p0, &g, cfg, 5);
        let dev = Dev::default();
        let mut p: Tensor<(usize,), f32, Dev> = dev.tensor_from_vec(p0.clone(), (4,));
        let gt: Tensor<(usize,), f32, Dev> = dev.tensor_from_vec(g.clone(), (4,));
        let mut grads = (p.leaky_trace() * gt).sum::<(), _>().backward();
        let gv = grads.get_or_alloc_mut(&p).unwrap().clone();
        let (mut ms, mut vs) = (Gradients::leaky(), Gradients::leaky());
        let dcfg = dfdx::optim::AdamConfig {
            lr: cfg.lr,
            betas: cfg.betas,
            eps: cfg.eps,
            weight_decay: Some(if decoupled {
                dfdx::optim::WeightDecay::Decoupled(cfg.weight_decay)
            } else {
                dfdx::optim::WeightDecay::L2(cfg.weight_decay)
            }),
        };
        for t in 1..=5 {
            let m = ms.get_or_alloc_mut(&p).unwrap();
            let v = vs.get_or_alloc_mut(&p).unwrap();
            dcfg.try_update(t, &mut p, m, v, &gv).unwrap();
        }
        for (a, b) in ours.iter().zip(p.as_vec()) {
            assert!(
                (a - b).abs() < 1e-6,
                "decoupled={decoupled}: {ours:?} vs {:?}",
                p.as_vec()
            );
        }
    }
}

#[test]
fn clipping_and_schedules() {
    let mut g: GradMap = [
        ("a".to_string(), vec![3.0, 0.0]),
        ("b".to_string(), vec![4.0]),
    ]
    .into_iter()
    .collect();
    assert!((global_norm(&g) - 5.0).abs() < 1e-12);
    let n = clip_global_norm(&mut g, 1.0);
    assert!((n - 5.0).abs() < 1e-12);
    assert!((global_norm(&g) - 1.0).abs() < 1e-5);
    let before = g.clone();
    clip_global_norm(&mut g, 10.0);
    assert_eq!(g, before, "no clipping below the threshold");
    assert_eq!(LrSchedule::Constant.lr(0.1, 1000), 0.1);
    let w = LrSchedule::LinearWarmup { warmup: 4 };
    assert_eq!(
        [0, 1, 3, 4, 100].map(|s| w.factor(s)),
        [0.25, 0.5, 1.0, 1.0, 1.0]
    );
    let c = LrSchedule::Cosine {
        warmup: 2,
        total: 12,
        min_factor: 0.1,
    };
    assert!((c.factor(2) - 1.0).abs() < 1e-12);
    assert!((c.factor(7) - 0.55).abs() < 1e-12);
    assert!((c.factor(12) - 0.1).abs() < 1e-12 && (c.factor(50) - 0.1).abs() < 1e-12);
}
