//! Ctrl-C during `vic run` writes a checkpoint of the current step, removes the run
//! directory's lock and exits 130.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigint_saves_a_checkpoint_and_exits_130() {
    let dir = std::env::temp_dir().join(format!("vic-interrupt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let child = Command::new(env!("CARGO_BIN_EXE_vic"))
        .args([
            "run",
            "models/vae_digits.vmodel",
            "--steps",
            "100000000",
            "--log-every",
            "1",
            "--out",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vic starts");
    // Wait until training is under way (metric lines appear), then interrupt.
    let metrics = dir.join("metrics.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&metrics)
        .map(|s| s.lines().count() < 3)
        .unwrap_or(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The directory is locked while the run lasts: a second run into it is refused.
    let second = Command::new(env!("CARGO_BIN_EXE_vic"))
        .args(["run", "models/lg_toy.vmodel", "--steps", "1", "--out"])
        .arg(&dir)
        .output()
        .expect("vic runs");
    let err2 = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err2}");
    assert!(
        err2.contains("vic::E094") && err2.contains(&format!("process {}", child.id())),
        "{err2}"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let out = child.wait_with_output().expect("vic exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("checkpoint saved"), "stderr: {stderr}");
    assert!(
        !dir.join(".vic-run.lock").exists(),
        "the lock outlived the run"
    );
    let ck = vic::runtime::checkpoint::load(
        &dir.join("checkpoint.safetensors"),
        &vic::runtime::Dev::default(),
    )
    .expect("checkpoint loads");
    let meta: serde_json::Value = serde_json::from_str(&ck.meta).expect("metadata");
    assert!(
        meta["step"].as_u64().unwrap_or(0) >= 3,
        "step {}",
        meta["step"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
