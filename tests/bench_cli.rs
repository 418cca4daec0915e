//! `vic bench`: the W3 workload (no data file needed) runs, prints one JSON line with the
//! peers' result fields, and converges towards the exact posterior.

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
