//! Helpers shared by the tests: run the `vic` binary, a fresh temporary directory per test,
//! and the shipped models as small trainers ([`shipped`]).

#![allow(dead_code)]

pub mod runtimes;
pub mod shipped;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `vic` with `args` from the crate root, with `env` set (and NO_COLOR unset unless
/// given), and returns its output.
pub fn vic_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vic"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("vic runs")
}

/// Runs `vic` with `args`.
pub fn vic(args: &[&str]) -> Output {
    vic_env(args, &[])
}

/// stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// An empty directory under the system's temporary directory, unique to this process and
/// `name`.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}
