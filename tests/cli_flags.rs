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
