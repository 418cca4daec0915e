//! Data-parallel training over MPI ranks (`cargo test --features mpi --test distributed`;
//! needs Open MPI's `mpirun`).
//!
//! * Equivalence: `mpirun -n 2 vic run … --distributed` reproduces the single-process run of
//!   the same global batch (the same batches and noise; only the gradient's sum over rows is
//!   split between the ranks): per-step ELBO within 1e-5 relative and every parameter within
//!   1e-5 · (1 + |p|) after 8 Adam steps. Why that tolerance: f32 rounding of the sums
//!   (≈ 6e-8 relative per addition over 8 rows) changes an Adam update, which is scale-free in
//!   the gradient, by a few ulps of lr · 1 = 1e-3 per step; 8 steps stay far below 1e-5. A
//!   broken split (other rows, other noise, a gradient not summed, or summed twice) moves
//!   the first step's ELBO by ≫ 1e-3 and parameters by ≈ lr.
//! * Rank 0 alone writes: `metrics.jsonl` has one line per step, not one per rank.
//! * Resume across a change of ranks: 4 steps on 2 ranks, resumed to 8 on 1, ends where the
//!   straight 8-step single-process run ends (same tolerance).
//! * A rank's failure (an injected panic, or an injected error, on rank 1) ends the job with a
//!   non-zero exit and the rank's message within a timeout, instead of leaving rank 0 waiting
//!   in an all-reduce.
//! * Without `--features mpi`, `--distributed` is a usage error naming the feature.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("distributed-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `vic run models/ssm.vmodel` with a fixed global batch of 8 and the given extra flags.
fn run_args(steps: u64, out: &Path, extra: &[&str]) -> Vec<String> {
    let model = root().join("models/ssm.vmodel");
    let mut v: Vec<String> = [
        "run",
        model.to_str().unwrap(),
        "--steps",
        &steps.to_string(),
        "--batch",
        "8",
        "--seed",
        "3",
        "--samples",
        "1",
        "--log-every",
        "1",
        "--eval-every",
        "0",
        "--runtime",
        "fused",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Runs `cmd`, killing it after `limit`; `None` when it had to be killed.
fn within(mut cmd: Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let t0 = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A diagnostic's text with miette's line wrapping undone.
fn flat(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn single(args: &[String]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vic"));
    c.args(args);
    within(c, Duration::from_secs(300)).expect("a single-process run ends")
}

#[cfg(not(feature = "mpi"))]
#[test]
fn without_the_feature_distributed_is_a_usage_error() {
    let dir = scratch("no-mpi");
    let out = single(&run_args(2, &dir.join("run"), &["--distributed"]));
    let err = flat(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("vic::E092"), "{err}");
    assert!(err.contains("--features mpi"), "{err}");
    assert!(!dir.join("run/metrics.jsonl").exists());
}

#[cfg(feature = "mpi")]
mod mpi {
    use super::*;
    use vic::runtime::checkpoint::{self, Checkpoint};
    use vic::runtime::Dev;

    fn succeeded(what: &str, out: &Output) {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The per-step training ELBO of a run directory's `metrics.jsonl`.
    fn train_elbos(dir: &Path) -> Vec<(u64, f64)> {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["split"] == "train" && v.get("final").is_none())
            .map(|v| (v["step"].as_u64().unwrap(), v["elbo"].as_f64().unwrap()))
            .collect()
    }

    /// `mpirun -n ranks vic …`, allowed to run as root and on more ranks than cores (CI
    /// containers), with a time limit so that a hang fails the test instead of the suite.
    fn mpirun(ranks: usize, args: &[String], env: &[(&str, &str)]) -> Option<Output> {
        let mut c = Command::new("mpirun");
        c.args([
            "-n",
            &ranks.to_string(),
            "--oversubscribe",
            "--allow-run-as-root",
        ])
        .arg(env!("CARGO_BIN_EXE_vic"))
        .args(args)
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        // Compare the ranks' parameters after every step.
        .env("VIC_CHECK_EVERY", "1");
        for (k, v) in env {
            c.env(k, v);
        }
        within(c, Duration::from_secs(240))
    }

    fn load(dir: &Path) -> Checkpoint {
        checkpoint::load(&dir.join("checkpoint.safetensors"), &Dev::default())
            .unwrap_or_else(|e| panic!("checkpoint in {}: {e}", dir.display()))
    }

    fn meta_step(c: &Checkpoint) -> u64 {
        let m: serde_json::Value = serde_json::from_str(&c.meta).unwrap();
        m["step"].as_u64().unwrap()
    }

    /// Every parameter of `b` within 1e-5 · (1 + |a|) of `a`'s; returns the largest
    /// difference and whether any parameter moved from `start`.
    fn close(a: &Checkpoint, b: &Checkpoint, start: &Checkpoint, what: &str) -> f64 {
        let mut worst = 0.0f64;
        let mut moved = false;
        for (k, p) in a.params.iter() {
            let (x, y) = (p.to_host(), b.params.get(k).unwrap().to_host());
            let s = start.params.get(k).unwrap().to_host();
            assert_eq!(x.len(), y.len(), "{what}: {k}");
            for ((u, v), w) in x.iter().zip(&y).zip(&s) {
                let d = f64::from((u - v).abs());
                assert!(
                    d <= 1e-5 * (1.0 + f64::from(u.abs())),
                    "{what}: parameter {k}: {u} vs {v}"
                );
                worst = worst.max(d);
                moved |= (u - w).abs() > 1e-6;
            }
        }
        assert!(
            moved,
            "{what}: no parameter moved: the comparison is vacuous"
        );
        worst
    }

    fn elbos_close(a: &[(u64, f64)], b: &[(u64, f64)], what: &str) {
        assert_eq!(
            a.iter().map(|x| x.0).collect::<Vec<_>>(),
            b.iter().map(|x| x.0).collect::<Vec<_>>(),
            "{what}: one metrics line per step"
        );
        for ((s, x), (_, y)) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                "{what}: step {s}: ELBO {x} vs {y}"
            );
        }
    }

    #[test]
    fn two_ranks_reproduce_one_process_and_resume_across_a_change_of_ranks() {
        let dir = scratch("equivalence");
        let (one, two, init) = (dir.join("one"), dir.join("two"), dir.join("init"));
        let t0 = Instant::now();
        succeeded("single, 8 steps", &single(&run_args(8, &one, &[])));
        // A step-0 checkpoint is not written, so "moved" compares against a 1-step run's
        // start: the parameters after 1 step differ from those after 8 by much more.
        succeeded("single, 1 step", &single(&run_args(1, &init, &[])));
        let out = mpirun(2, &run_args(8, &two, &["--distributed"]), &[]).expect("no hang");
        succeeded("mpirun -n 2, 8 steps", &out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("2 rank(s)"), "{stdout}");
        // Rank 0 alone printed the report and wrote the metrics.
        assert_eq!(stdout.matches("checkpoint:").count(), 1, "{stdout}");
        let (e1, e2) = (train_elbos(&one), train_elbos(&two));
        assert_eq!(e1.len(), 8);
        elbos_close(&e1, &e2, "2 ranks vs 1 process");
        let (a, b, s) = (load(&one), load(&two), load(&init));
        assert_eq!(meta_step(&b), 8);
        let worst = close(&a, &b, &s, "2 ranks vs 1 process");
        eprintln!("[2 ranks vs 1 process: largest parameter difference {worst:e}]");

        // Resume across N: 4 steps on 2 ranks, then 4 more in one process.
        let half = dir.join("half");
        let out = mpirun(2, &run_args(4, &half, &["--distributed"]), &[]).expect("no hang");
        succeeded("mpirun -n 2, 4 steps", &out);
        assert_eq!(meta_step(&load(&half)), 4);
        let h = half.to_str().unwrap();
        let out = single(&run_args(8, &half, &["--resume", h]));
        succeeded("resumed on 1 process", &out);
        assert!(String::from_utf8_lossy(&out.stderr).contains("resumed at step 4"));
        let worst = close(&a, &load(&half), &s, "2 ranks → 1 process");
        elbos_close(&e1, &train_elbos(&half), "2 ranks → 1 process");
        eprintln!("[2 ranks → 1 process: largest parameter difference {worst:e}]");
        eprintln!("[{:.1} s]", t0.elapsed().as_secs_f64());
    }

    #[test]
    fn a_failing_rank_ends_the_job_with_its_message() {
        let dir = scratch("failure");
        let t0 = Instant::now();
        let out = mpirun(
            2,
            &run_args(50, &dir.join("run"), &["--distributed"]),
            &[("VIC_FAIL_RANK", "1:3")],
        )
        .expect("the job ends instead of hanging");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains("injected failure (VIC_FAIL_RANK=1:3)"),
            "{err}"
        );
        assert!(err.contains("rank 1 of 2 panicked"), "{err}");
        eprintln!(
            "[failure ended the job in {:.1} s]",
            t0.elapsed().as_secs_f64()
        );
    }

    #[test]
    fn a_rank_whose_step_fails_ends_the_job_with_its_message() {
        let dir = scratch("error");
        let out = mpirun(
            2,
            &run_args(50, &dir.join("run"), &["--distributed"]),
            &[("VIC_FAIL_RANK", "1:2:error")],
        )
        .expect("the job ends instead of hanging");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains("rank 1: training failed (2 step(s) done): distributed training: injected error (VIC_FAIL_RANK=1:2:error)"),
            "{err}"
        );
        assert!(err.contains("rank 1 of 2 failed (exit code 1)"), "{err}");
    }

    /// The reference runtime (the CUDA path) draws each rank's noise from its own stream, so
    /// it is not compared with one process; what holds is that the ranks' parameters stay
    /// identical (checked after every step: a gradient not summed over ranks fails it) and
    /// the parameters move.
    #[test]
    fn the_reference_runtime_keeps_the_ranks_identical() {
        let dir = scratch("reference");
        let mut args = run_args(3, &dir.join("run"), &["--distributed"]);
        let r = args.iter().position(|a| a == "fused").unwrap();
        args[r] = "reference".into();
        let out = mpirun(2, &args, &[]).expect("no hang");
        succeeded("mpirun -n 2 --runtime reference", &out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("runtime: reference"), "{stdout}");
        assert_eq!(train_elbos(&dir.join("run")).len(), 3);
    }

    #[test]
    fn free_nats_after_the_mean_are_refused_on_the_reference_runtime() {
        let dir = scratch("after-mean");
        let model = root().join("models/rssm.vmodel");
        let mut args = run_args(2, &dir.join("run"), &["--distributed"]);
        args[1] = model.to_str().unwrap().into();
        let r = args.iter().position(|a| a == "fused").unwrap();
        args[r] = "reference".into();
        let out = mpirun(2, &args, &[]).expect("no hang");
        let err = flat(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(err.contains("vic::E200"), "{err}");
        assert!(err.contains("free nats after the batch mean"), "{err}");
    }

    #[test]
    fn a_batch_smaller_than_the_ranks_is_refused() {
        let dir = scratch("small-batch");
        let mut args = run_args(2, &dir.join("run"), &["--distributed"]);
        let b = args.iter().position(|a| a == "--batch").unwrap();
        args[b + 1] = "1".into();
        let out = mpirun(2, &args, &[]).expect("no hang");
        let err = flat(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(err.contains("vic::E200"), "{err}");
        assert!(err.contains("cannot be split over 2 ranks"), "{err}");
    }
}
