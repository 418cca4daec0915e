//! Flag mistakes are `vic::E092` diagnostics with exit code 2, including the ones clap itself
//! rejects, counts too large to allocate, and epochs for a model without data.

use std::process::Command;

fn vic(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vic"))
        .args(args)
        .output()
        .expect("vic runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flag_mistakes_are_e092_with_exit_2() {
    for args in [
        vec!["run", "models/lqr.vmodel", "--steps", "abc"],
        vec!["run", "models/lqr.vmodel", "--no-such-flag"],
        vec!["eval", "models/lqr.vmodel"],
        vec!["run", "models/lqr.vmodel", "--batch", "99999999"],
        vec!["run", "models/lqr.vmodel", "--epochs", "2"],
        vec![
            "sample",
            "models/lqr.vmodel",
            "--params",
            "x",
            "--n",
            "5000000",
        ],
        vec!["frobnicate"],
        // A behaviour update starts from 1 to --batch × --length (here 800) posterior states.
        vec![
            "agent",
            "models/dreamer.vmodel",
            "--starts",
            "0",
            "--out",
            "/nonexistent/vic-starts",
        ],
        vec![
            "agent",
            "models/dreamer.vmodel",
            "--starts",
            "801",
            "--out",
            "/nonexistent/vic-starts",
        ],
    ] {
        let (code, err) = vic(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("vic::E092"), "{args:?}: {err}");
        assert!(err.contains("help:"), "{args:?}: {err}");
    }
}

#[test]
fn help_and_version_are_not_errors() {
    for args in [vec!["--help"], vec!["run", "--help"], vec!["--version"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_vic"))
            .args(&args)
            .output()
            .expect("vic runs");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

/// Values that parse but make no sense: a negative or zero clip flips or zeroes the gradient,
/// a zero logging interval divides by zero, `--horizon` means nothing to a data model.
#[test]
fn nonsense_values_are_e092() {
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "models/lg_toy.vmodel", "--steps", "3", "--out"];
        let dir = std::env::temp_dir().join(format!("vic-flags-{}", std::process::id()));
        let dir = dir.to_string_lossy().into_owned();
        args.push(Box::leak(dir.into_boxed_str()));
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for extra in [
        &["--log-every", "0"][..],
        &["--checkpoint-every", "0"],
        &["--clip", "-1"],
        &["--clip", "0"],
        &["--clip", "nan"],
        &["--clip", "inf"],
        &["--weight-decay", "-1e6"],
        &["--weight-decay", "nan"],
        &["--samples", "0"],
        &["--horizon", "5"],
    ] {
        let args = run(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = vic(&args);
        assert_eq!(code, Some(2), "{extra:?}: {err}");
        assert!(err.contains("vic::E092"), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
    }
    let (code, err) = vic(&[
        "sample",
        "models/ssm.vmodel",
        "--params",
        "no-such-dir",
        "--condition",
        "10",
        "--horizon",
        "5",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--condition 10 is longer than the 5 steps"),
        "{err}"
    );
}

/// `vic elbo … | head`: a reader that goes away ends vic quietly, without a panic.
#[test]
fn closed_stdout_is_not_a_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vic"))
        .args(["elbo", "models/rssm.vmodel", "--steps"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vic runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("vic ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// An npz member whose header declares a shape of 1.5·10¹⁴ elements is E102, not an attempt
/// to allocate it.
#[test]
fn npz_member_with_a_huge_declared_shape_is_e102() {
    use std::io::Write;
    let hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 50, 3), }";
    let hdr = format!("{hdr:<118}\n");
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(hdr.len() as u16).to_le_bytes());
    npy.extend_from_slice(hdr.as_bytes());
    npy.extend_from_slice(&[0; 64]);
    let path = std::env::temp_dir().join(format!("vic-huge-{}.npz", std::process::id()));
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for name in ["o.npy", "a.npy"] {
        z.start_file(name, zip::write::FileOptions::default())
            .unwrap();
        z.write_all(&npy).unwrap();
    }
    z.finish().unwrap();
    let p = path.to_string_lossy().into_owned();
    let (code, err) = vic(&["run", "models/ssm.vmodel", "--data", &p, "--steps", "1"]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("vic::E102") && err.contains("header declares"),
        "{err}"
    );
}

/// A run is refused with its memory estimate before it allocates (`VIC_MEMORY_BYTES` stands
/// in for a small machine).
#[test]
fn a_run_that_cannot_fit_is_e202_with_the_estimate() {
    let out = Command::new(env!("CARGO_BIN_EXE_vic"))
        .args([
            "run",
            "models/lqr.vmodel",
            "--steps",
            "1",
            "--batch",
            "1000000",
        ])
        .env("VIC_MEMORY_BYTES", "100000000")
        .output()
        .expect("vic runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("vic::E202") && err.contains("needs about"),
        "{err}"
    );
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A NaN estimate is E201 with exit 1, never a printed result with exit 0.
#[test]
fn a_non_finite_evaluation_is_e201() {
    let dir = tmp("nan-eval");
    let d = dir.to_string_lossy().into_owned();
    let (code, err) = vic(&["run", "models/lg_toy.vmodel", "--steps", "3", "--out", &d]);
    assert_eq!(code, Some(0), "{err}");
    let csv = dir.join("big.csv");
    std::fs::write(&csv, "x\n1e38\n3e38\n").unwrap();
    let c = csv.to_string_lossy().into_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_vic"))
        .args(["eval", "models/lg_toy.vmodel", "--params", &d, "--data", &c])
        .output()
        .expect("vic runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("vic::E201"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("NaN"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint is bound to its model (a fingerprint of the checked IR) and its metadata is
/// inside the checksum: an edited step, another model with the same parameter names, or a
/// NaN parameter are E093; resuming with other settings is W003, naming them.
#[test]
fn checkpoints_are_bound_to_their_model_and_metadata() {
    let dir = tmp("ckpt");
    let d = dir.to_string_lossy().into_owned();
    let (code, err) = vic(&["run", "models/lg_toy.vmodel", "--steps", "3", "--out", &d]);
    assert_eq!(code, Some(0), "{err}");
    // --resume DIR without --out continues in DIR.
    let (code, err) = vic(&[
        "run",
        "models/lg_toy.vmodel",
        "--steps",
        "5",
        "--resume",
        &d,
        "--seed",
        "1",
        "--lr",
        "0.01",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("vic::W003") && err.contains("seed 0 → 1"),
        "{err}"
    );
    let ck = dir.join("checkpoint.safetensors");
    let meta = vic::runtime::checkpoint::load(&ck, &Default::default())
        .unwrap()
        .meta;
    assert!(meta.contains("\"step\":5"), "{meta}");

    // Another model with the same parameter names.
    let other = dir.join("other.vmodel");
    let src = std::fs::read_to_string("models/lg_toy.vmodel").unwrap();
    std::fs::write(&other, src.replace("z ~ Normal(0, 1)", "z ~ Normal(0, 2)")).unwrap();
    let o = other.to_string_lossy().into_owned();
    let data = std::fs::canonicalize("models/data/lg_toy.npz").unwrap();
    let data = data.to_string_lossy().into_owned();
    let (code, err) = vic(&["eval", &o, "--params", &d, "--data", &data]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("vic::E093") && err.contains("another model"),
        "{err}"
    );

    // An edited step.
    let bytes = std::fs::read(&ck).unwrap();
    let needle = b"\\\"step\\\":5";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("step in the header");
    let mut edited = bytes.clone();
    edited[at + 9] = b'9';
    std::fs::write(&ck, &edited).unwrap();
    let (code, err) = vic(&[
        "run",
        "models/lg_toy.vmodel",
        "--steps",
        "20",
        "--resume",
        &d,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("vic::E093") && err.contains("checksum"),
        "{err}"
    );

    // A NaN parameter under a valid checksum.
    std::fs::write(&ck, &bytes).unwrap();
    let dev = vic::runtime::Dev::default();
    let c = vic::runtime::checkpoint::load(&ck, &dev).unwrap();
    let mut params = vic::runtime::nets::params::ParamStore::new(dev.clone());
    for (i, (name, p)) in c.params.iter().enumerate() {
        let mut v = p.to_host();
        if i == 0 {
            v[0] = f32::NAN;
        }
        params.insert_host(name, &p.shape(), v).unwrap();
    }
    vic::runtime::checkpoint::save(&ck, &params, c.adam.as_ref(), &c.meta).unwrap();
    let (code, err) = vic(&["eval", "models/lg_toy.vmodel", "--params", &d]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("vic::E093") && err.contains("NaN"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run directory holds one run: a second run into it (even of another model) is E095
/// unless it resumes or forces; `--force` overwrites. A lock left by a process that is gone
/// is taken over with a note; one held by a live process is E094.
#[test]
fn run_directories_are_not_silently_reused() {
    let dir = tmp("rundir");
    let d = dir.to_string_lossy().into_owned();
    let (code, err) = vic(&["run", "models/lg_toy.vmodel", "--steps", "3", "--out", &d]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !dir.join(".vic-run.lock").exists(),
        "the lock outlived the run"
    );
    let before = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    for model in ["models/lg_toy.vmodel", "models/lqr.vmodel"] {
        let (code, err) = vic(&["run", model, "--steps", "3", "--out", &d]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("vic::E095"), "{err}");
        assert!(err.contains("checkpoint.safetensors"), "{err}");
        assert!(err.contains("--resume") && err.contains("--force"), "{err}");
    }
    assert_eq!(
        std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
        before,
        "a refused run wrote into the directory"
    );
    assert!(
        !dir.join(".vic-run.lock").exists(),
        "a refused run left its lock"
    );
    let (code, err) = vic(&[
        "run",
        "models/lg_toy.vmodel",
        "--steps",
        "4",
        "--out",
        &d,
        "--force",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = vic(&[
        "run",
        "models/lg_toy.vmodel",
        "--steps",
        "6",
        "--resume",
        &d,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = vic(&["run", "models/lg_toy.vmodel", "--resume", &d, "--force"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("vic::E092"), "{err}");

    // A lock held by a live process (this test).
    let lock = dir.join(".vic-run.lock");
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let (code, err) = vic(&[
        "run",
        "models/lg_toy.vmodel",
        "--steps",
        "6",
        "--resume",
        &d,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("vic::E094") && err.contains(&format!("process {}", std::process::id())),
        "{err}"
    );
    assert!(lock.exists(), "another run's lock was removed");
    // A lock left by a process that has exited.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(&lock, format!("{pid}\n")).unwrap();
    let (code, err) = vic(&[
        "run",
        "models/lg_toy.vmodel",
        "--steps",
        "7",
        "--resume",
        &d,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("taking over") && err.contains(&format!("process {pid}")),
        "{err}"
    );
    assert!(!lock.exists(), "the lock outlived the run");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every metrics line is a whole JSON object (each is written in one write).
#[test]
fn metrics_lines_are_whole() {
    let dir = tmp("metrics-lines");
    let d = dir.to_string_lossy().into_owned();
    let (code, err) = vic(&[
        "run",
        "models/lg_toy.vmodel",
        "--steps",
        "20",
        "--log-every",
        "1",
        "--out",
        &d,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert!(text.lines().count() >= 20);
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect(line);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// One dialect: faults of `vic sample`, `vic eval` and `vic run` past the flags are coded
/// diagnostics with a help line, never a bare `error: …` line.
#[test]
fn sample_eval_and_checkpoint_faults_are_coded() {
    let dir = tmp("dialect");
    let d = dir.to_string_lossy().into_owned();
    let (code, err) = vic(&["run", "models/lqr.vmodel", "--steps", "2", "--out", &d]);
    assert_eq!(code, Some(0), "{err}");
    // A Flat prior has no draws (was "error: sampling failed: shape error: …").
    let npz = dir.join("draws.npz");
    let (code, err) = vic(&[
        "sample",
        "models/lqr.vmodel",
        "--params",
        &d,
        "--out",
        npz.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("vic::E203") && err.contains("`u[t]`"), "{err}");
    assert!(err.contains("help:") && !err.contains("error:"), "{err}");
    assert!(!npz.exists());
    // A checkpoint path that is a directory.
    let odd = dir.join("odd");
    std::fs::create_dir_all(odd.join("checkpoint.safetensors")).unwrap();
    let o = odd.to_string_lossy().into_owned();
    for args in [
        vec!["eval", "models/lg_toy.vmodel", "--params", &o],
        vec![
            "run",
            "models/lg_toy.vmodel",
            "--steps",
            "2",
            "--resume",
            &o,
        ],
    ] {
        let (code, err) = vic(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains("vic::E093") && err.contains("help:"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `vic bench` speaks the same dialect: a missing model or data directory is coded.
#[test]
fn bench_faults_are_coded() {
    for (args, want) in [
        (
            vec!["bench", "W3", "--model", "/nonexistent/m.vmodel"],
            "vic::E090",
        ),
        (
            vec!["bench", "W1", "--data-dir", "/nonexistent", "--steps", "10"],
            "vic::E101",
        ),
    ] {
        let (code, err) = vic(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want) && err.contains("help:"), "{err}");
        assert!(!err.lines().any(|l| l.starts_with("error:")), "{err}");
    }
}
