//! `vic bench`: the W3 workload (no data file needed) runs, prints one JSON line with the
//! peers' result fields, and converges towards the exact posterior.

use std::path::Path;
use std::process::Command;

#[test]
fn bench_w3_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_vic"))
        .args([
            "bench",
            "W3",
            "--steps",
            "3000",
            "--warmup",
            "5",
            "--min-time",
            "0",
            "--loss-window",
            "200",
            "--threads",
            "1",
            "--json",
        ])
        .output()
        .expect("run vic");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
    for k in [
        "steps_per_s",
        "chunk_rate_p10_med_p90",
        "final_loss",
        "peak_rss_kb",
        "rss_start_kb",
        "rss_end_kb",
        "flops_per_step",
        "other_cores",
    ] {
        assert!(v.get(k).is_some(), "missing {k} in {line}");
    }
    assert_eq!(v["system"], "vic");
    assert_eq!(v["workload"], "W3");
    assert_eq!(v["steps"], 3000);
    assert!(v["steps_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["flops_per_step"].as_f64().unwrap(), 0.0);
    // −ELBO of the 1-d linear-Gaussian model: exact optimum 1.5155, sd of a 200-step mean ~0.035
    let f = v["final_loss"].as_f64().unwrap();
    assert!((1.3..1.75).contains(&f), "final loss {f}");
    let (m, s) = (v["q_loc"].as_f64().unwrap(), v["q_scale"].as_f64().unwrap());
    assert!(
        (m - 0.5).abs() < 0.15 && (s - std::f64::consts::FRAC_1_SQRT_2).abs() < 0.1,
        "q = N({m}, {s})"
    );
}

#[test]
fn bench_rejects_bad_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_vic"))
        .args(["bench", "W3", "--steps", "3", "--warmup", "5"])
        .output()
        .expect("run vic");
    assert_eq!(out.status.code(), Some(2));
}

fn bench_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vic"))
        .arg("bench")
        .args(args)
        .args(["--min-time", "0", "--threads", "1", "--json"])
        .output()
        .expect("run vic");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(line.trim()).expect("one JSON line")
}

/// The peers' data folder, as `vic bench` looks for it (None: skip the data workloads).
fn peers_data() -> Option<String> {
    let c = std::env::var("VIC_PEERS_DATA").ok().into_iter().chain(
        [
            "../shared/bench/peers/data",
            "/work/shared/bench/peers/data",
        ]
        .map(String::from),
    );
    c.into_iter()
        .find(|d| std::path::Path::new(d).join("pendulum.npz").exists())
}

/// W4 (RSSM on pendulum obs + reward): a few steps run, the FLOP count includes the GRU and
/// matches the peers' 1.997e9 (NOTES.md), the loss is the plain −ELBO per sequence.
#[test]
fn bench_w4_smoke() {
    let Some(dir) = peers_data() else {
        eprintln!("skipped: no shared/bench/peers/data/pendulum.npz");
        return;
    };
    let v = bench_json(&[
        "W4",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--loss-window",
        "2",
        "--data-dir",
        &dir,
    ]);
    assert_eq!(v["workload"], "W4");
    assert_eq!(v["batch"], 16);
    assert_eq!(v["n_data"], 512);
    assert_eq!(v["finite"], true);
    // 800 rows × (GRU 2·(31·600 + 200·600) + post + prior + dec + rew) × 3
    assert_eq!(v["flops_per_step"].as_f64().unwrap(), 1_996_800_000.0);
    // initial −ELBO per sequence ≈ 1540–1580 at the peers' and vic's inits (NOTES.md)
    let l = v["initial_loss"].as_f64().unwrap();
    assert!((1000.0..2500.0).contains(&l), "initial loss {l}");
    assert!(v.get("alpha").is_none());
}

/// W6 (Deep Markov Model, reverse GRU posterior): runs fused, the FLOP count matches the
/// peers' 2.009e8 (NOTES.md "W6 DMM"), the initial loss is in the peers' range.
#[test]
fn bench_w6_smoke() {
    let Some(dir) = peers_data() else {
        eprintln!("skipped: no shared/bench/peers/data/pendulum.npz");
        return;
    };
    let v = bench_json(&[
        "W6",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--loss-window",
        "2",
        "--data-dir",
        &dir,
    ]);
    assert_eq!(v["workload"], "W6");
    assert_eq!(v["batch"], 32);
    assert_eq!(v["finite"], true);
    // 1600 rows × (GRU 2·(3·192 + 64·192) + emit 9984 + trans 3072 + comb_z 1024 +
    // comb_out 2048) × 3
    assert_eq!(v["flops_per_step"].as_f64().unwrap(), 200_908_800.0);
    // initial −ELBO per sequence ≈ 255–285 at the peers' and vic's inits (NOTES.md)
    let l = v["initial_loss"].as_f64().unwrap();
    assert!((150.0..450.0).contains(&l), "initial loss {l}");
}

/// W5 (SAC-form control, no data): a few steps run, the FLOP count matches the peers'
/// 5.112e9, and the reported −ELBO per rollout equals −(return / α + T · entropy per step).
#[test]
fn bench_w5_smoke() {
    let v = bench_json(&["W5", "--steps", "3", "--warmup", "1", "--loss-window", "2"]);
    assert_eq!(v["workload"], "W5");
    assert_eq!(v["batch"], 256);
    assert_eq!(v["n_data"], serde_json::Value::Null);
    assert_eq!(v["finite"], true);
    // the actor on 50 × 256 rows: 12800 × 2·(2·256 + 256·256 + 256·2) × 3
    assert_eq!(v["flops_per_step"].as_f64().unwrap(), 5_111_808_000.0);
    let alpha = v["alpha"].as_f64().unwrap();
    assert!(
        (alpha - 1.0).abs() < 0.01,
        "alpha {alpha} after 3 steps from 1"
    );
    let (h, ret) = (
        v["policy_entropy"].as_f64().unwrap(),
        v["return"].as_f64().unwrap(),
    );
    assert!(ret < 0.0, "return {ret}");
    let f = v["final_loss"].as_f64().unwrap();
    let elbo = ret + 50.0 * h; // α ≈ 1 within 0.3% over the window
    assert!(
        (-f - elbo).abs() < 0.01 * ret.abs() + 0.05,
        "−ELBO {f} vs return {ret}, entropy {h}"
    );
}

/// W7 (discrete VAE: c enumerated, z straight-through) runs on the fused runtime; the FLOP
/// count is the peers' 4.314e8 (enc_c on B rows, enc_z and dec on 10·B rows, × 3).
#[test]
fn bench_w7_smoke() {
    let Some(dir) = peers_data() else {
        eprintln!("skipped: no shared/bench/peers/data");
        return;
    };
    let v = bench_json(&[
        "W7",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--loss-window",
        "2",
        "--data-dir",
        &dir,
    ]);
    assert_eq!(v["workload"], "W7");
    assert_eq!(v["batch"], 128);
    assert_eq!(v["n_data"], 1797);
    assert_eq!(v["finite"], true);
    assert_eq!(v["flops_per_step"].as_f64().unwrap(), 431_357_952.0);
    // initial −ELBO per image ≈ 44.3–44.5 at the peers' and vic's inits (NOTES.md)
    let l = v["initial_loss"].as_f64().unwrap();
    assert!((40.0..50.0).contains(&l), "initial loss {l}");
    assert!(
        v["runtime"].as_str().unwrap_or("").starts_with("fused"),
        "runtime {}",
        v["runtime"]
    );
}

/// W8 (HMM, the chain summed out by the forward algorithm) runs fused at the peers' K; the
/// FLOP count is the peers' `w8_jax.flops(K)` (3 × 2·B·(T − 1)·K²: 301,056 at K = 4), and the
/// initial loss, from the peers' MU at seed 0, is in the range of theirs (622.04 per sequence
/// on their first minibatch, NOTES.md "W8").
#[test]
fn bench_w8_smoke() {
    let Some(dir) = peers_data() else {
        eprintln!("skipped: no shared/bench/peers/data");
        return;
    };
    if !Path::new(&dir).join("hmm.npz").exists() {
        eprintln!("skipped: no data/hmm.npz (make_hmm_data.py)");
        return;
    }
    for (k, flops) in [(2, 75_264.0), (4, 301_056.0), (8, 1_204_224.0)] {
        let ks = k.to_string();
        let v = bench_json(&[
            "W8",
            "--states",
            &ks,
            "--steps",
            "3",
            "--warmup",
            "1",
            "--loss-window",
            "2",
            "--data-dir",
            &dir,
        ]);
        assert_eq!(v["workload"], "W8");
        assert_eq!(v["K"], k);
        assert_eq!(v["batch"], 64);
        assert_eq!(v["n_data"], 1024);
        assert_eq!(v["finite"], true);
        assert_eq!(v["flops_per_step"].as_f64().unwrap(), flops);
        let l = v["initial_loss"].as_f64().unwrap();
        assert!((300.0..1000.0).contains(&l), "K = {k}: initial loss {l}");
        assert!(
            v["runtime"].as_str().unwrap_or("").starts_with("fused"),
            "runtime {}",
            v["runtime"]
        );
    }
}
