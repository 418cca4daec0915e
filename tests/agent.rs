//! `vic agent` end to end on the built-in pendulum, short (the loop, its files and resume —
//! not the return, which needs the long run of docs/agent.md).

mod common;

use common::{text, tmp, vic};
use std::path::Path;
use vic::agent::episodes;
use vic::agent::replay::{Names, Replay};

const MODEL: &str = "models/marino_yue_agent.vmodel";

fn run(out: &Path, steps: u64, extra: &[&str]) -> (String, String) {
    let steps = steps.to_string();
    let mut args = vec![
        "agent",
        MODEL,
        "--env",
        "pendulum",
        "--env-steps",
        &steps,
        "--prefill",
        "200",
        "--train-every",
        "25",
        "--batch",
        "4",
        "--length",
        "20",
        "--eval-every",
        "400",
        "--eval-episodes",
        "1",
        "--threads",
        "1",
        "--out",
        out.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let o = vic(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "vic agent failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn a_short_run_writes_its_files_and_a_resumed_run_is_the_uninterrupted_one() {
    let dir = tmp("agent-loop");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let (stdout, _) = run(&a, 600, &[]);
    assert!(stdout.contains("evaluation: return"), "{stdout}");
    // 3 training episodes of 200 steps; evaluations at step 0 and 400 (one episode each).
    let recs = episodes::read(&a.join("episodes.jsonl")).expect("episodes.jsonl");
    let train: Vec<u64> = recs
        .iter()
        .filter(|r| !r.eval)
        .map(|r| r.env_step)
        .collect();
    let evals: Vec<u64> = recs.iter().filter(|r| r.eval).map(|r| r.env_step).collect();
    assert_eq!(train, [200, 400, 600]);
    assert_eq!(evals, [0, 400]);
    assert!(recs.iter().all(|r| r.length == 200 && r.ret < 0.0));
    // Updates: 200/25 on the prefill, then 200/25 after each later episode.
    let m = lines(&a.join("metrics.jsonl"));
    assert_eq!(m.len(), 24);
    for (i, l) in m.iter().enumerate() {
        assert_eq!(l["update"], (i + 1) as u64);
        for k in [
            "elbo",
            "objective",
            "reward",
            "neg_kl",
            "critic_loss",
            "actor_grad_norm",
        ] {
            assert!(l[k].as_f64().is_some_and(f64::is_finite), "{k} in {l}");
        }
    }
    let names = Names {
        obs: "o".into(),
        act: "a".into(),
        rew: "r".into(),
        cont: None,
    };
    let replay = Replay::load(&a.join("replay.npz"), &names).expect("replay.npz loads");
    assert_eq!(replay.episodes.len(), 3);
    assert!(replay
        .episodes
        .iter()
        .all(|e| e.act.iter().all(|x| (-1.0..=1.0).contains(x))));
    let svg = std::fs::read_to_string(a.join("returns.svg")).expect("returns.svg");
    assert!(svg.contains("<svg") && svg.contains("environment steps"));
    for f in ["checkpoint.safetensors", "agent.json", "model.vmodel"] {
        assert!(a.join(f).exists(), "{f}");
    }

    // Continue to 800 steps; the same from scratch: the same updates, the same returns.
    run(&a, 800, &["--resume", a.to_str().expect("utf-8")]);
    run(&b, 800, &[]);
    let (ma, mb) = (
        lines(&a.join("metrics.jsonl")),
        lines(&b.join("metrics.jsonl")),
    );
    assert_eq!(ma.len(), 32);
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().expect("object").remove("time");
        v
    };
    assert_eq!(strip(&ma[31]), strip(&mb[31]), "resumed vs uninterrupted");
    let (ra, rb) = (
        episodes::read(&a.join("episodes.jsonl")).expect("a"),
        episodes::read(&b.join("episodes.jsonl")).expect("b"),
    );
    assert_eq!(ra, rb);
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("agent.json")).expect("agent.json"))
            .expect("json");
    assert_eq!(progress["env_steps"], 800);
    assert_eq!(progress["updates"], 32);
    // Resuming with other settings says which; resuming a finished run says there is nothing
    // left; neither changes the run.
    let o = vic(&[
        "agent",
        MODEL,
        "--env-steps",
        "800",
        "--train-every",
        "10",
        "--resume",
        a.to_str().expect("utf-8"),
    ]);
    let (_, e) = text(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("W003") && e.contains("train_every 25 → 10"),
        "{e}"
    );
    assert!(e.contains("W004"), "{e}");
    assert_eq!(lines(&a.join("metrics.jsonl")).len(), 32);
    // Evaluating a run acts and prints, and writes nothing.
    let before = std::fs::read(a.join("episodes.jsonl")).expect("episodes");
    let o = vic(&[
        "agent",
        MODEL,
        "--resume",
        a.to_str().expect("utf-8"),
        "--evaluate",
        "3",
    ]);
    let (out, e) = text(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        out.contains("(3 episodes)") && out.contains("environment step 800"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(a.join("episodes.jsonl")).expect("episodes"),
        before
    );
}

#[test]
fn agent_faults_are_diagnostics() {
    let dir = tmp("agent-faults");
    let out = dir.to_str().expect("utf-8");
    // A model without an imagine block.
    let o = vic(&["agent", "models/ssm.vmodel", "--out", out]);
    let (_, e) = text(&o);
    assert!(!o.status.success());
    assert!(e.contains("imagine"), "{e}");
    // An unknown environment.
    let o = vic(&["agent", MODEL, "--env", "cartpole", "--out", out]);
    let (_, e) = text(&o);
    assert!(!o.status.success());
    assert!(e.contains("E300"), "{e}");
    // A bad learning rate.
    let o = vic(&["agent", MODEL, "--actor-lr", "0", "--out", out]);
    let (_, e) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("E092") && e.contains("--actor-lr"), "{e}");
    // --evaluate needs a run to evaluate.
    let o = vic(&["agent", MODEL, "--evaluate", "3", "--out", out]);
    let (_, e) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("E092") && e.contains("--resume"), "{e}");
    // A directory that holds a run, neither resumed nor forced.
    std::fs::write(dir.join("checkpoint.safetensors"), b"x").expect("write");
    let o = vic(&["agent", MODEL, "--env-steps", "10", "--out", out]);
    let (_, e) = text(&o);
    assert!(!o.status.success(), "{e}");
}
