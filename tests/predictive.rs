//! `vic sample --posterior` against closed forms on the linear-Gaussian toy.
//!
//! At q = N(m, σ²) (not amortised: the same for every data point) the posterior predictive
//! of x is x̃ = z + ε ~ N(m, σ² + 1). With m = 0.5, σ² = 0.5 (the exact posterior given
//! x = 1) its central 50% interval is 0.5 ± 0.6745·√1.5 = [−0.326, 1.326] and its 90%
//! interval 0.5 ± 1.6449·√1.5 = [−1.515, 2.515].

use std::collections::BTreeMap;
use std::path::Path;

use vic::data::{Dataset, RawArray};
use vic::lower::Program;
use vic::runtime::rng;
use vic::train::{data_batch, specs_of, TrainConfig, Trainer};

fn lg_toy() -> Program {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lg_toy.vmodel");
    let m = vic::compile(
        &std::fs::read_to_string(path).expect("readable"),
        "lg_toy.vmodel",
    )
    .expect("compiles");
    Program::new(m.ir(), &m.elbo()).expect("lowers")
}

/// softplus⁻¹(√0.5): q's scale parameter at the exact posterior.
fn s_exact() -> f32 {
    (0.5f64.sqrt().exp_m1().ln()) as f32
}

fn trainer(xs: &[f32]) -> Trainer {
    let p = lg_toy();
    let raw = BTreeMap::from([(
        "x".to_string(),
        RawArray::new(vec![xs.len(), 1], xs.to_vec()),
    )]);
    let d = Dataset::from_raw("inline", raw, &specs_of(&p), 1).expect("data");
    let cfg = TrainConfig {
        holdout: 0.0,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(p, Some(d), cfg).expect("trainer");
    tr.store.get_mut("param.m").expect("m").set_host(&[0.5]);
    tr.store
        .get_mut("param.s")
        .expect("s")
        .set_host(&[s_exact()]);
    tr
}

#[test]
fn posterior_predictive_draws_have_the_closed_form_quantiles() {
    let tr = trainer(&[1.0]);
    let n = 20000;
    let batch = data_batch(
        &tr.program,
        tr.train.as_ref().expect("data"),
        &vec![0; n],
        1,
    );
    let drawn = tr
        .program
        .posterior_predictive(&tr.store, &batch, &mut rng::seeded(9))
        .expect("draws");
    let x = tr.program.model.var_id("x").expect("x");
    let mut v = drawn[&x].clone();
    assert_eq!(v.len(), n);
    v.sort_by(|a, b| a.total_cmp(b));
    let sd = 1.5f64.sqrt();
    // Quantile standard errors at n = 20000 are ≤ 0.02 here; tolerance 0.06.
    for (q, z) in [
        (0.05, -1.6449),
        (0.25, -0.6745),
        (0.5, 0.0),
        (0.75, 0.6745),
        (0.95, 1.6449),
    ] {
        let emp = f64::from(v[(q * (n - 1) as f64).round() as usize]);
        let want = 0.5 + z * sd;
        eprintln!("quantile {q}: draws {emp:.4}, N(0.5, 1.5) {want:.4}");
        assert!((emp - want).abs() < 0.06, "q{q}: {emp} vs {want}");
    }
}

#[test]
fn predictive_check_counts_observations_inside_the_intervals() {
    // 50% interval [−0.326, 1.326] holds −0.1, 0.6, 1.2 (3 of 6); the 90% interval
    // [−1.515, 2.515] also holds 2.0 (4 of 6). The nearest data point to a bound is 0.126 away,
    // five standard errors of the empirical quantile at 4000 draws.
    let xs = [-2.0f32, -0.1, 0.6, 1.2, 2.0, 3.0];
    let tr = trainer(&xs);
    let dir = std::env::temp_dir().join(format!("vic-predictive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ckpt = dir.join("checkpoint.safetensors");
    tr.save(&ckpt).expect("save");
    let csv = dir.join("x.csv");
    let body: String = std::iter::once("x".to_string())
        .chain(xs.iter().map(|x| x.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&csv, body + "\n").expect("csv");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lg_toy.vmodel");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vic"))
        .args(["sample", model.to_str().expect("utf-8"), "--params"])
        .arg(&ckpt)
        .arg("--data")
        .arg(&csv)
        .args(["--posterior", "--draws", "4000", "--n", "6", "--out"])
        .arg(dir.join("pp.npz"))
        .arg("--plot")
        .arg(dir.join("pp.svg"))
        .output()
        .expect("vic runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    assert!(
        stdout.contains("50.0% of 6 observations inside the central 50% interval, 66.7% inside the 90% interval"),
        "{stdout}"
    );
    assert!(dir.join("pp.svg").exists() && dir.join("pp.npz").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// One-step predictions on `lgssm_filter` against their closed form. With
/// q(z_t | z_{t−1}, x_t) = N(0.3 z_{t−1} + 0.5 x_t + 0.1, 0.8²), z_0 = 0 and x = [1, −0.5, 0.3],
/// q's marginals are z_1 ~ N(0.6, 0.64) and z_2 ~ N(0.03, 0.09·0.64 + 0.64); one step of p
/// (z_t = 0.5 z_{t−1} + N(0, 1), x_t = z_t + N(0, 1)) gives x̃_2 ~ N(0.3, 0.25·0.64 + 2) and
/// x̃_3 ~ N(0.015, 0.25·0.6976 + 2). Step 1 has no prediction (NaN).
#[test]
fn one_step_predictions_match_the_closed_form() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lgssm_filter.vmodel");
    let m = vic::compile(
        &std::fs::read_to_string(path).expect("readable"),
        "lgssm_filter",
    )
    .expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let raw = BTreeMap::from([(
        "x".to_string(),
        RawArray::new(vec![1, 3], vec![1.0, -0.5, 0.3]),
    )]);
    let d = Dataset::from_raw("inline", raw, &specs_of(&p), 1).expect("data");
    let mut store = p
        .init_params(&vic::runtime::Dev::default(), &mut rng::seeded(0))
        .expect("params");
    let sp_inv = |y: f64| y.exp_m1().ln() as f32;
    for (name, v) in [("a", 0.3), ("b", 0.5), ("c", 0.1)] {
        store
            .get_mut(&format!("param.{name}"))
            .expect("param")
            .set_host(&[v]);
    }
    store
        .get_mut("param.s")
        .expect("s")
        .set_host(&[sp_inv(0.8)]);
    let n = 20000;
    let batch = data_batch(&p, &d, &vec![0; n], 1);
    let drawn = p
        .one_step_predictive(&store, &batch, &mut rng::seeded(4))
        .expect("draws");
    let x = drawn[&p.model.var_id("x").expect("x")].clone();
    assert!(
        x.iter().step_by(3).all(|v| v.is_nan()),
        "no prediction at step 1"
    );
    for (t, mean, var) in [
        (1usize, 0.3, 0.25 * 0.64 + 2.0),
        (2, 0.015, 0.25 * 0.6976 + 2.0),
    ] {
        let v: Vec<f64> = (0..n).map(|i| f64::from(x[i * 3 + t])).collect();
        let m = v.iter().sum::<f64>() / n as f64;
        let s2 = v.iter().map(|y| (y - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        eprintln!(
            "x̃_{}: mean {m:.4} (want {mean}), var {s2:.4} (want {var:.4})",
            t + 1
        );
        // Standard errors: mean ≈ 0.0104, variance ≈ 0.022; tolerances ≈ 5 of them.
        assert!((m - mean).abs() < 0.05, "step {}: mean {m}", t + 1);
        assert!((s2 - var).abs() < 0.11, "step {}: var {s2}", t + 1);
    }
}
