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

/// One model for both kinds of action space: sizes and the action's kind from the environment.
const ANY_ENV: &str = "model tiny_any {
  dim O = env(obs, 3), A = env(act, 1), S = 4, D = 8, H = 8
  observed o[t] : real[O]
  observed r[t] : real
  observed c[t] : binary
  input    a[t] : action[A]
  latent   s[t] : real[S]
  state    h[t] : real[D]
  init h[0] = 0
  init s[0] = 0
  init a[0] = 0
  net cell  = gru(S + A -> D)
  net prior = mlp(D -> H -> 2*S, elu)
  net post  = mlp(D + O -> H -> 2*S, elu)
  net dec   = mlp(D + S -> O)
  net rew   = mlp(D + S -> 1)
  net cont  = mlp(D + S -> 1)
  net actor = mlp(D + S -> H -> 2*A, elu)
  net pick  = mlp(D + S -> H -> A, elu)
  net value = mlp(D + S -> 1)
  p {
    h[t] = cell(h[t-1], s[t-1], a[t-1])
    s[t] ~ Normal.split(prior(h[t]), min = 0.1)
    o[t] ~ Normal(dec(h[t], s[t]), 1)
    r[t] ~ Normal(rew(h[t], s[t]), 1)
    c[t] ~ Bernoulli(logits = cont(h[t], s[t]))
  }
  q {
    s[t] ~ Normal.split(post(h[t], o[t]), min = 0.1)
  }
  imagine {
    policy a[t] ~ TanhNormal.split(actor(h[t], s[t]))
    prior  a[t] ~ Flat
    policy a[t] ~ Categorical(logits = pick(h[t], s[t]))
    prior  a[t] ~ Categorical(logits = zeros(A))
    reward   = rew(h[t], s[t])
    alpha    = 0.1
    critic   = value(h[t], s[t])
    horizon  = 4
    discount = 0.9
    lambda   = 0.9
    start    = posterior
    continue = c
  }
}";

fn faller(model: &Path, out: &Path, steps: u64, extra: &[&str]) {
    let steps = steps.to_string();
    let mut args = vec![
        "agent",
        model.to_str().expect("utf-8"),
        "--env",
        "gym:fake:Faller-v0",
        "--env-steps",
        &steps,
        "--prefill",
        "60",
        "--train-every",
        "10",
        "--batch",
        "4",
        "--length",
        "6",
        "--eval-every",
        "100",
        "--eval-episodes",
        "2",
        "--threads",
        "1",
        "--out",
        out.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let o = vic(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "vic agent failed:\n{stdout}\n{stderr}");
}

#[test]
fn a_terminating_discrete_environment_through_the_bridge_stores_its_ends_and_resumes_exactly() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var("CI").is_err(), "python3 is required under CI");
        return;
    }
    let dir = tmp("agent-faller");
    let model = dir.join("any.vmodel");
    std::fs::write(&model, ANY_ENV).expect("write");
    // Without an environment the sizes are the defaults and the action is real.
    let o = vic(&["check", model.to_str().expect("utf-8")]);
    let (out, e) = text(&o);
    assert!(o.status.success() && out.contains("0 warning"), "{out}{e}");
    // DreamerV3's options resume exactly too (their state: the moving percentiles).
    let v3 = ["--return-norm", "--symlog-rewards", "--slow-critic", "0.02"];
    let (c, d) = (dir.join("c3"), dir.join("d3"));
    faller(&model, &c, 150, &v3);
    let mut resume = v3.to_vec();
    resume.extend(["--resume", c.to_str().expect("utf-8")]);
    faller(&model, &c, 250, &resume);
    faller(&model, &d, 250, &v3);
    let (mc, md) = (
        lines(&c.join("metrics.jsonl")),
        lines(&d.join("metrics.jsonl")),
    );
    assert_eq!(mc.len(), md.len());
    for (x, y) in mc.iter().zip(&md) {
        let (mut x, mut y) = (x.clone(), y.clone());
        x.as_object_mut().expect("object").remove("time");
        y.as_object_mut().expect("object").remove("time");
        assert_eq!(x, y, "resumed vs uninterrupted (V3 options)");
        assert!(x["return_scale"].as_f64().is_some_and(|s| s >= 1.0), "{x}");
    }
    assert!(c.join("slow_critic.bin").exists());
    let (a, b) = (dir.join("a"), dir.join("b"));
    faller(&model, &a, 150, &[]);
    faller(&model, &a, 250, &["--resume", a.to_str().expect("utf-8")]);
    faller(&model, &b, 250, &[]);
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().expect("object").remove("time");
        v
    };
    let (ma, mb) = (
        lines(&a.join("metrics.jsonl")),
        lines(&b.join("metrics.jsonl")),
    );
    assert!(ma.len() >= 20, "{}", ma.len());
    assert_eq!(ma.len(), mb.len());
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!(strip(x), strip(y), "resumed vs uninterrupted");
    }
    assert_eq!(
        episodes::read(&a.join("episodes.jsonl")).expect("a"),
        episodes::read(&b.join("episodes.jsonl")).expect("b")
    );
    // The replay: one-hot actions; c = 0 exactly on the last step of the episodes that ended
    // at |x| = 3 (length < 8), and 1 on every step of an episode the time limit cut (length 8).
    let names = Names {
        obs: "o".into(),
        act: "a".into(),
        rew: "r".into(),
        cont: Some("c".into()),
    };
    let replay = Replay::load(&a.join("replay.npz"), &names).expect("replay.npz loads");
    let (mut ended, mut cut) = (0, 0);
    for ep in &replay.episodes {
        let n = ep.len();
        assert!(ep.act.chunks(2).all(|a| a == [1.0, 0.0] || a == [0.0, 1.0]));
        assert!(ep.cont[..n - 1].iter().all(|&c| c == 1.0));
        // x starts in {−1, 0, 1} and moves by ±1: the end is |x_final| = 3, read back from
        // the stored observation before the last action and that action.
        let x = ep.obs[(n - 1) * 2];
        let step = if ep.act[(n - 1) * 2 + 1] == 1.0 {
            1.0
        } else {
            -1.0
        };
        let terminal = (x + step).abs() >= 3.0;
        assert_eq!(ep.cont[n - 1], if terminal { 0.0 } else { 1.0 }, "{ep:?}");
        if terminal {
            ended += 1;
        } else {
            assert_eq!(n, 8);
            cut += 1;
        }
    }
    assert!(
        ended > 0 && cut + ended == replay.episodes.len(),
        "{ended} {cut}"
    );
    // A model whose action is one-hot in a Box environment is a diagnostic, not a panic.
    let disc = dir.join("disc.vmodel");
    std::fs::write(
        &disc,
        ANY_ENV
            .replace("input    a[t] : action[A]", "input    a[t] : onehot[A]")
            .replace(
                "    policy a[t] ~ TanhNormal.split(actor(h[t], s[t]))\n",
                "",
            )
            .replace("    prior  a[t] ~ Flat\n", ""),
    )
    .expect("write");
    let o = vic(&[
        "agent",
        disc.to_str().expect("utf-8"),
        "--env",
        "pendulum",
        "--out",
        dir.join("c").to_str().expect("utf-8"),
    ]);
    let (_, e) = text(&o);
    assert!(!o.status.success());
    assert!(e.contains("E302") && e.contains("Box(1)"), "{e}");
    // A malformed environment size.
    let bad = dir.join("bad.vmodel");
    std::fs::write(&bad, ANY_ENV.replace("env(obs, 3)", "env(obs)")).expect("write");
    let o = vic(&["check", bad.to_str().expect("utf-8")]);
    let (_, e) = text(&o);
    assert!(!o.status.success());
    assert!(e.contains("E089") && e.contains("env(obs, 3)"), "{e}");
}
