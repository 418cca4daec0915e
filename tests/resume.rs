//! Resuming and divergence.
//!
//! * A run stopped at step n and resumed (`vic run --steps n`, then
//!   `vic run --steps 2n --resume DIR`) ends with bit-identical parameters and optimiser state
//!   to an uninterrupted `--steps 2n` run (fit on data, control without data, and a
//!   score-function model whose baseline must survive the checkpoint).
//! * A run that diverges exits 1 with `vic::E201`, naming the step and the term, and the last
//!   checkpoint written before the divergence is still there and loads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vic::runtime::checkpoint::{self, Checkpoint};
use vic::runtime::Dev;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("resume-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn vic(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_vic"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the vic binary runs");
    out
}

fn ok(args: &[&str]) -> Output {
    let out = vic(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "vic {}\nstderr:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn load(dir: &Path) -> Checkpoint {
    checkpoint::load(&dir.join("checkpoint.safetensors"), &Dev::default())
        .unwrap_or_else(|e| panic!("checkpoint in {}: {e}", dir.display()))
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn meta_step(c: &Checkpoint) -> u64 {
    let m: serde_json::Value = serde_json::from_str(&c.meta).unwrap();
    m["step"].as_u64().unwrap()
}

/// Runs `model` for 2n steps straight, and for n then resumed to 2n; compares the two final
/// checkpoints bit for bit (parameters, Adam moments and step, metadata step and baseline).
fn resume_is_bit_identical(test: &str, model: &str, n: u64, extra: &[&str]) {
    let dir = scratch(test);
    let (a, b) = (dir.join("straight"), dir.join("resumed"));
    let model = root().join(model);
    let m = model.to_str().unwrap();
    let (n1, n2) = (n.to_string(), (2 * n).to_string());
    let args = |steps: &str, out: &Path, resume: bool| -> Vec<String> {
        let mut v: Vec<String> = ["run", m, "--steps", steps, "--samples", "1", "--out"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(out.to_str().unwrap().to_string());
        if resume {
            v.push("--resume".into());
            v.push(out.to_str().unwrap().to_string());
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let call = |v: Vec<String>| {
        let r: Vec<&str> = v.iter().map(String::as_str).collect();
        ok(&r)
    };
    let t0 = std::time::Instant::now();
    call(args(&n2, &a, false));
    call(args(&n1, &b, false));
    let half = load(&b);
    assert_eq!(meta_step(&half), n);
    let out = call(args(&n2, &b, true));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("resumed at step {n}")), "{err}");
    eprintln!("[{test}: {:.1} s]", t0.elapsed().as_secs_f64());

    let (x, y) = (load(&a), load(&b));
    assert_eq!(meta_step(&x), 2 * n);
    assert_eq!(meta_step(&y), 2 * n);
    let names: Vec<&String> = x.params.iter().map(|(k, _)| k).collect();
    assert_eq!(names, y.params.iter().map(|(k, _)| k).collect::<Vec<_>>());
    let mut moved = false;
    for ((k, p), (_, q)) in x.params.iter().zip(y.params.iter()) {
        assert_eq!(
            bits(&p.to_host()),
            bits(&q.to_host()),
            "{test}: parameter {k} differs after resuming"
        );
        moved |= bits(&p.to_host()) != bits(&half.params.get(k).unwrap().to_host());
    }
    assert!(
        moved,
        "{test}: no parameter moved after step {n}: the comparison is vacuous"
    );
    let (ax, ay) = (x.adam.expect("adam state"), y.adam.expect("adam state"));
    assert_eq!(ax.step, ay.step);
    assert_eq!(ax.state.len(), ay.state.len());
    for ((k, u), (_, v)) in ax.state.iter().zip(ay.state.iter()) {
        assert_eq!(bits(&u.m), bits(&v.m), "{test}: Adam m of {k}");
        assert_eq!(bits(&u.v), bits(&v.v), "{test}: Adam v of {k}");
    }
    let mx: serde_json::Value = serde_json::from_str(&x.meta).unwrap();
    let my: serde_json::Value = serde_json::from_str(&y.meta).unwrap();
    assert_eq!(
        mx["baseline"].as_f64().map(f64::to_bits),
        my["baseline"].as_f64().map(f64::to_bits),
        "{test}: score-function baseline"
    );
}

#[test]
fn resumed_fit_run_is_bit_identical() {
    resume_is_bit_identical("ssm", "models/ssm.vmodel", 20, &["--batch", "8"]);
}

#[test]
fn resumed_control_run_is_bit_identical() {
    resume_is_bit_identical(
        "lqr",
        "models/lqr.vmodel",
        20,
        &["--batch", "16", "--lr", "1e-2"],
    );
}

#[test]
fn resumed_score_function_run_is_bit_identical() {
    // cvae_imitation's mode is a score-function latent: the moving-average baseline is part of
    // the state a resumed run needs.
    resume_is_bit_identical(
        "cvae",
        "models/cvae_imitation.vmodel",
        20,
        &["--batch", "16", "--lr", "1e-2"],
    );
}

#[test]
fn divergence_is_e201_and_keeps_the_last_checkpoint() {
    // ssm on the raw (unstandardised) pendulum data diverges (NaN log-likelihood): measured at
    // step 37 with lr 1e-3, step 6 with lr 1e-2 (used here), step 2 with lr ≥ 0.05; on the
    // standardised data the same run trains.
    let dir = scratch("nan");
    let out_dir = dir.join("out");
    let model = root().join("models/ssm.vmodel");
    let data = root().join("models/data/pendulum.npz");
    let t0 = std::time::Instant::now();
    let out = vic(&[
        "run",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--lr",
        "1e-2",
        "--batch",
        "8",
        "--steps",
        "200",
        "--checkpoint-every",
        "2",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    eprintln!("[divergence: {:.1} s]", t0.elapsed().as_secs_f64());
    let err = String::from_utf8_lossy(&out.stderr);
    // Undo miette's wrapping (80 columns, `│` gutters) before matching.
    let flat: String = err
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("vic::E201"), "{err}");
    // "step N: term K (… of VAR …) is not finite (NaN)"
    let step: u64 = flat
        .split("step ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no step in {flat}"));
    assert!(step > 2 && step < 200, "diverged at step {step}");
    assert!(flat.contains("term "), "does not name the term: {flat}");
    assert!(flat.contains("is not finite"), "{flat}");
    assert!(flat.contains("last good checkpoint is kept"), "{flat}");
    let nospace: String = flat.split_whitespace().collect();
    let ckpt = out_dir.join("checkpoint.safetensors");
    assert!(
        nospace.contains(ckpt.to_str().unwrap()),
        "does not name {}: {flat}",
        ckpt.display()
    );
    // The checkpoint on disk is the last one before the divergence, and loads.
    let ck = load(&out_dir);
    let at = meta_step(&ck);
    assert!(
        at < step && at >= step.saturating_sub(2) && at.is_multiple_of(2),
        "checkpoint at {at}, diverged at {step}"
    );
    for (k, p) in ck.params.iter() {
        assert!(
            p.to_host().iter().all(|v| v.is_finite()),
            "{k} is not finite in the kept checkpoint"
        );
    }
    // The metrics log records the failure.
    let metrics = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    assert!(metrics.lines().last().unwrap().contains("\"error\""));
}
