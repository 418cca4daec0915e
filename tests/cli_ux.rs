//! The command line as a user meets it: clap's whole usage errors with vic's code, colours
//! (`--color`, `NO_COLOR`), help with defaults and examples, the run directory's record
//! (`config.json`, `model.vmodel`), the shape of `metrics.jsonl`, resuming a finished run,
//! `vic eval --split`, `vic params`, `vic check --summary` and shell completions.

mod common;

use common::{text, tmp, vic, vic_env};

#[test]
fn usage_errors_keep_clap_s_suggestions_and_add_the_code() {
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["run", "models/lqr.vmodel", "--step", "3"],
            &["a similar argument exists: '--steps'", "Usage: vic run"],
        ),
        (&["sampel"], &["a similar subcommand exists: 'sample'"]),
        (
            &["elbo", "models/ssm.vmodel", "--format", "purple"],
            &["[possible values: text, latex, json]"],
        ),
    ];
    for (args, wants) in cases {
        let o = vic(args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error[vic::E092]: "), "{args:?}: {err}");
        assert!(err.contains("help: "), "{args:?}: {err}");
        for w in wants {
            assert!(err.contains(w), "{args:?}: no {w:?} in\n{err}");
        }
    }
}

#[test]
fn color_follows_the_flag_and_no_color() {
    let bad = tmp("color").join("bad.vmodel");
    std::fs::write(&bad, "model m { latent z : real p { z ~ Nrmal(0, 1) } }").unwrap();
    let bad = bad.to_str().unwrap();
    let esc = |o: &std::process::Output| text(o).1.contains('\u{1b}');
    assert!(esc(&vic(&["--color", "always", "check", bad])));
    assert!(esc(&vic_env(
        &["--color", "always", "check", bad],
        &[("NO_COLOR", "1")]
    )));
    assert!(!esc(&vic(&["--color", "never", "check", bad])));
    // Not a terminal, and NO_COLOR: auto is off either way.
    assert!(!esc(&vic_env(&["check", bad], &[("NO_COLOR", "1")])));
    // Usage errors follow the flag too.
    assert!(esc(&vic(&["--color=always", "frobnicate"])));
    // Diagnostics printed through miette (a flag error) follow it as well.
    let flag = ["run", "models/lqr.vmodel", "--lr", "-1"];
    let with = |c: &'static str| [&["--color", c][..], &flag[..]].concat();
    assert!(esc(&vic(&with("always"))));
    assert!(!esc(&vic(&with("never"))));
    assert!(text(&vic(&with("never"))).1.contains("vic::E092"));
    let o = vic(&["--color", "purple", "check", bad]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o)
        .1
        .contains("[possible values: auto, always, never]"));
}

#[test]
fn help_shows_defaults_and_examples() {
    let o = vic(&["run", "--help"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    for w in [
        "Examples:",
        "[default: 1000 unless --epochs]",
        "[default: the model's `batch`, else 128]",
        "Adam's learning rate",
        "[default: 0.001]",
        "The model file",
    ] {
        assert!(out.contains(w), "no {w:?} in\n{out}");
    }
}

/// Ten steps of the toy model, then everything a user reads from the run directory.
#[test]
fn a_run_records_its_config_and_metrics_have_one_shape() {
    let dir = tmp("ux-run");
    let d = dir.to_str().unwrap();
    let o = vic(&[
        "run",
        "models/lg_toy.vmodel",
        "--steps",
        "10",
        "--log-every",
        "5",
        "--out",
        d,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    // The final report names the terms as the metrics do.
    assert!(
        out.contains("+ log p(x)") && out.contains("− KL z"),
        "{out}"
    );

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["vic_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(config["steps"], 10);
    assert_eq!(config["train"]["lr"], 1e-3);
    // lg_toy has one data point: too few to hold any out.
    assert_eq!(config["train"]["holdout"], 0.0);
    let source = std::fs::read_to_string("models/lg_toy.vmodel").unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("model.vmodel")).unwrap(),
        source
    );

    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Steps 5 and 10, then the final evaluation.
    assert_eq!(lines.len(), 3, "{metrics}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for l in &lines {
        let terms = l["terms"].as_object().expect("terms is an object");
        let keys: Vec<&str> = terms.keys().map(String::as_str).collect();
        assert_eq!(keys, ["KL z", "log p(x)"], "{l}");
        // Each line's terms add up to its ELBO (log-likelihood minus the KL).
        let sum = terms["log p(x)"].as_f64().unwrap() - terms["KL z"].as_f64().unwrap();
        assert!((sum - l["elbo"].as_f64().unwrap()).abs() < 1e-4, "{l}");
        let t = l["time"].as_f64().expect("wall-clock time");
        assert!(t <= now + 1.0 && t > now - 3600.0, "{t} vs {now}");
    }
    assert_eq!(lines[2]["final"], true);
    assert!(lines[2]["terms_stderr"].is_object());

    // Resuming a run that reached its --steps warns and trains nothing.
    let o = vic(&[
        "run",
        "models/lg_toy.vmodel",
        "--resume",
        d,
        "--steps",
        "10",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("vic::W004") && err.contains("--steps 20"),
        "{err}"
    );
    assert!(out.contains("0 steps"), "{out}");

    // vic eval says which parameters it scored on which rows.
    let o = vic(&[
        "eval",
        "models/lg_toy.vmodel",
        "--params",
        d,
        "--samples",
        "2",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("parameters of step 10 scored on the whole data file (1 rows)"),
        "{out}"
    );
    let o = vic(&[
        "eval",
        "models/lg_toy.vmodel",
        "--params",
        d,
        "--split",
        "heldout",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("held out no rows"), "{err}");

    // vic params: `s` enters the model as softplus(s).
    let o = vic(&["params", d, "--format", "json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["s"]["transform"], "softplus");
    let raw = p["s"]["raw"][0].as_f64().unwrap();
    let value = p["s"]["value"][0].as_f64().unwrap();
    assert!((value - (1.0 + raw.exp()).ln()).abs() < 1e-9, "{p}");
    assert!(p["m"].get("transform").is_none(), "{p}");
    assert_eq!(p["m"]["value"], p["m"]["raw"]);
    let o = vic(&["params", d]);
    let (out, _) = text(&o);
    assert!(
        out.contains("lg_toy at step 10") && out.contains("softplus("),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Counts by hand: enc 64·256 + 256 + 256·32 + 32 = 24,864; dec 16·256 + 256 + 256·64 + 64
/// = 20,800; lqr's K (1 × 2) and s.
#[test]
fn check_summary_counts_parameters() {
    let o = vic(&[
        "check",
        "--summary",
        "models/vae_digits.vmodel",
        "models/lqr.vmodel",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let row = |name: &str, n: &str| {
        out.lines().any(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .ends_with(&[name, n])
        })
    };
    assert!(row("enc", "24864") && row("dec", "20800"), "{out}");
    assert!(row("total", "45664") && row("total", "3"), "{out}");
    assert!(out.contains("z  size 16"), "{out}");
    assert!(out.contains("chain     20 steps (the horizon)"), "{out}");
    assert!(
        out.contains("per training step (batch 128, 1 step; estimate)"),
        "{out}"
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_vic()"),
        ("zsh", "#compdef vic"),
        ("fish", "complete -c vic"),
    ] {
        let o = vic(&["completions", shell]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(
            out.contains("params"),
            "{shell}: the subcommands are completed"
        );
    }
}
