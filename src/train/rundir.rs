//! The run directory's record, shared by `vic run` and the Python package: `config.json` (the
//! vic version, the command, the configuration resolved from it, the model and data files),
//! `model.vmodel` (a copy of the model's source), `checkpoint.safetensors` and
//! `metrics.jsonl` (one JSON object per line: [`step_line`], [`eval_line`], [`final_line`],
//! each stamped with `time` by [`MetricsLog`]). Where a run's data comes from (the model's
//! own `data "…"`, relative to the model file) is decided here too.
//!
//! A run directory belongs to one run at a time, and holds one run: a run claims it with a
//! lock file ([`LOCK`], created with `create_new`, holding the process id) before it writes
//! anything there, and removes it when it ends (normally, on an error, or on Ctrl-C, through
//! [`RunLock`]'s `Drop`). A lock whose process is no longer running (a run that was killed)
//! is taken over with a note. A directory that already holds files is not reused unless the
//! run resumes it or overwrites it ([`claim`]).

use super::{EvalReport, RunPlan, StepStats};
use crate::diag::Code;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The resolved configuration of the run.
pub const CONFIG: &str = "config.json";
/// The copy of the model's source.
pub const SOURCE: &str = "model.vmodel";
/// The checkpoint.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The metrics log.
pub const METRICS: &str = "metrics.jsonl";
/// The training curves.
pub const PLOT: &str = "elbo.svg";
/// The lock file of a run directory.
pub const LOCK: &str = ".vic-run.lock";

/// What a forced run replaces; other files in the directory are left alone.
pub const OUTPUTS: &[&str] = &[CHECKPOINT, METRICS, PLOT, CONFIG, SOURCE];

/// What `config.json` records.
pub struct Record<'a> {
    /// The command that made the run (`vic run …`, or the Python call).
    pub command: Vec<String>,
    /// The model's name.
    pub model: &'a str,
    /// The model file as given.
    pub model_file: String,
    /// The data file, if any.
    pub data: Option<&'a Path>,
    /// The plan resolved from the flags.
    pub plan: &'a RunPlan,
    /// `--epochs`, if given.
    pub epochs: Option<u64>,
    /// The runtime the run starts on.
    pub engine: &'a str,
    /// `cpu` or `cuda`.
    pub device: &'a str,
    /// Draws per sequence in the final evaluation.
    pub samples: usize,
    /// Steps between metric lines.
    pub log_every: u64,
    /// Steps between held-out evaluations.
    pub eval_every: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// The run directory or checkpoint resumed from.
    pub resumed_from: Option<String>,
}

/// `config.json`'s object.
pub fn config_json(r: &Record) -> Value {
    json!({
        "vic_version": env!("CARGO_PKG_VERSION"),
        "command": r.command,
        "model": r.model,
        "model_file": r.model_file,
        "data": r.data.map(|d| d.display().to_string()),
        "steps": r.plan.total,
        "epochs": r.epochs,
        "sequence_steps": r.plan.sequence_steps,
        "train_rows": r.plan.train_rows,
        "train": r.plan.config,
        "runtime": r.engine,
        "device": r.device,
        "samples": r.samples,
        "log_every": r.log_every,
        "eval_every": r.eval_every,
        "checkpoint_every": r.checkpoint_every,
        "resumed_from": r.resumed_from,
    })
}

/// Writes `config.json` and `model.vmodel` into `dir` (each through a temporary file and a
/// rename, so a reader never sees half of one).
pub fn write_record(dir: &Path, r: &Record, source: &str) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(&config_json(r)).map_err(std::io::Error::other)?;
    write_atomic(&dir.join(CONFIG), text.as_bytes())?;
    write_atomic(&dir.join(SOURCE), source.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Whether a model reads data (has an observed or input variable); control problems do not.
pub fn needs_data(model: &crate::ir::Model) -> bool {
    model
        .vars
        .iter()
        .any(|v| matches!(v.role, crate::ir::Role::Observed | crate::ir::Role::Input))
}

/// The data file of a run: `given`, else the model's `data "…"`, relative to the directory
/// of the model file (the working directory when the model has no file).
pub fn data_path(
    model: &crate::ir::Model,
    model_file: Option<&Path>,
    given: Option<&Path>,
) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(|| {
        model.data.as_ref().map(|d| {
            model_file
                .and_then(Path::parent)
                .unwrap_or(Path::new("."))
                .join(d)
        })
    })
}

/// Wall-clock time as Unix seconds (millisecond resolution), for `metrics.jsonl`.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

/// `{label: value}` in the order of the terms.
pub fn keyed(labels: &[String], values: impl IntoIterator<Item = f64>) -> Value {
    Value::Object(
        labels
            .iter()
            .cloned()
            .zip(values.into_iter().map(|v| json!(v)))
            .collect::<Map<String, Value>>(),
    )
}

/// A training step's line (without `time`): `step`, `split: "train"`, `elbo`, `terms`,
/// `lr`, `grad_norm`, and `policy_entropy` for control problems.
pub fn step_line(labels: &[String], s: &StepStats) -> Value {
    let terms = keyed(labels, s.terms.iter().copied());
    let mut line = json!({"step": s.step, "split": "train", "elbo": s.elbo, "terms": terms, "lr": s.lr, "grad_norm": s.grad_norm});
    if let (Some(h), Value::Object(m)) = (s.policy_entropy, &mut line) {
        m.insert("policy_entropy".into(), json!(h));
    }
    line
}

/// A held-out evaluation's line during training (without `time`).
pub fn eval_line(labels: &[String], step: u64, r: &EvalReport) -> Value {
    let terms = keyed(labels, r.terms.iter().map(|t| t.mean));
    let stderr = keyed(labels, r.terms.iter().map(|t| t.stderr));
    json!({"step": step, "split": "heldout", "elbo": r.elbo, "stderr": r.stderr, "terms": terms, "terms_stderr": stderr})
}

/// The final evaluation's line (without `time`).
pub fn final_line(labels: &[String], step: u64, heldout: bool, r: &EvalReport) -> Value {
    let terms = keyed(labels, r.terms.iter().map(|t| t.mean));
    let stderr = keyed(labels, r.terms.iter().map(|t| t.stderr));
    json!({
        "step": step,
        "split": if heldout { "heldout" } else { "train" },
        "final": true,
        "elbo": r.elbo,
        "stderr": r.stderr,
        "terms": terms,
        "terms_stderr": stderr,
    })
}

/// The line of a failed step (without `time`).
pub fn error_line(step: u64, error: &str) -> Value {
    json!({"step": step, "error": error})
}

/// `metrics.jsonl`, opened for writing (appending when a run resumes).
#[derive(Debug)]
pub struct MetricsLog {
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens `path`, appending when `append`, else truncating it.
    pub fn open(path: &Path, append: bool) -> std::io::Result<MetricsLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)?;
        Ok(MetricsLog { file })
    }

    /// Stamps `v` with `time` and writes it as one line in one write, so a line is never
    /// split between writes; returns the stamped value.
    pub fn write(&mut self, mut v: Value) -> Value {
        stamp(&mut v);
        let _ = self.file.write_all(format!("{v}\n").as_bytes());
        v
    }
}

/// Adds `time` (now) to a metrics line.
pub fn stamp(v: &mut Value) {
    if let Value::Object(m) = v {
        m.insert("time".into(), json!(now()));
    }
}

/// Held while the run writes its directory; dropping it removes the lock file.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why a run directory cannot be claimed: a diagnostic without a source (`vic run` exits 2).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimError {
    /// `E094` (in use), `E095` (holds a run) or `E092` (cannot be written).
    pub code: Code,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

fn report(code: Code, message: String, help: &str) -> ClaimError {
    ClaimError {
        code,
        message,
        help: help.to_string(),
    }
}

/// Whether process `pid` is running (on other platforms every lock counts as held).
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        // Our own id in a lock we did not write: a reused id of a process that is gone.
        return false;
    }
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let r = unsafe { libc::kill(p, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Claim `dir` (which exists) for a run: `vic::E094` if another run holds it, `vic::E095`
/// if it already holds a run and the run neither resumes nor forces (a forced run removes
/// the earlier run's [`OUTPUTS`]). A lock left by a process that is gone is taken over,
/// with a line for `note`.
pub fn claim(
    dir: &Path,
    resume: bool,
    force: bool,
    note: &mut dyn FnMut(&str),
) -> Result<RunLock, ClaimError> {
    let path = dir.join(LOCK);
    let mut attempts = 0;
    let lock = loop {
        attempts += 1;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let lock = RunLock { path: path.clone() };
                let _ = writeln!(f, "{}", std::process::id());
                break lock;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 4 => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = text.trim().parse::<u32>().ok();
                // A lock without a readable id is being written right now, unless it is old.
                let fresh = || {
                    std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age.as_secs() < 5)
                };
                let held = match pid {
                    Some(pid) => alive(pid),
                    None => fresh(),
                };
                if held {
                    return Err(in_use(dir, pid));
                }
                // Remove the stale lock only if it is still the one read (another run may
                // have taken it over meanwhile); then race for it again with create_new.
                if std::fs::read_to_string(&path).unwrap_or_default() == text {
                    note(&format!(
                        "taking over `{}`: its lock was left by {}, which is no longer running",
                        dir.display(),
                        pid.map_or("a run".to_string(), |p| format!("process {p}"))
                    ));
                    let _ = std::fs::remove_file(&path);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(in_use(dir, None));
            }
            Err(e) => {
                return Err(report(
                    Code::BadFlag,
                    format!("cannot write in `{}`: {e}", dir.display()),
                    "choose another --out directory",
                ))
            }
        }
    };
    if resume {
        return Ok(lock);
    }
    let others: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != LOCK)
                .collect()
        })
        .unwrap_or_default();
    if others.is_empty() {
        return Ok(lock);
    }
    if force {
        for name in OUTPUTS {
            let _ = std::fs::remove_file(dir.join(name));
        }
        return Ok(lock);
    }
    let mut shown = others;
    shown.sort();
    let more = shown.len().saturating_sub(3);
    shown.truncate(3);
    Err(report(
        Code::RunDirNotEmpty,
        format!(
            "`{}` is not empty ({}{}): another run's results would be overwritten",
            dir.display(),
            shown.join(", "),
            if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            }
        ),
        &format!(
            "continue that run with `--resume {0}`, overwrite it with `--force`, or pass another `--out`",
            dir.display()
        ),
    ))
}

/// Create `dir` and [`claim`] it for a run whose files are `outputs` (the agent's, which are
/// not [`OUTPUTS`]): a new forced run removes those too. `E092` if `dir` cannot be created.
pub fn prepare(
    dir: &Path,
    resume: bool,
    force: bool,
    outputs: &[&str],
    note: &mut dyn FnMut(&str),
) -> Result<RunLock, ClaimError> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(report(
            Code::BadFlag,
            format!("cannot create `{}`: {e}", dir.display()),
            "choose another --out directory",
        ));
    }
    let lock = claim(dir, resume, force, note)?;
    if force && !resume {
        for f in outputs {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }
    Ok(lock)
}

fn in_use(dir: &Path, pid: Option<u32>) -> ClaimError {
    report(
        Code::RunDirInUse,
        format!(
            "`{}` is in use by another vic run{}",
            dir.display(),
            pid.map_or(String::new(), |p| format!(" (process {p})"))
        ),
        &format!(
            "wait for it to finish or pass another `--out`; if no run is using the directory, delete `{}`",
            dir.join(LOCK).display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_creates_claims_and_forces() {
        let root = std::env::temp_dir().join(format!("vic-prepare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("tmp");
        let none = &mut |_: &str| {};
        // A file where a parent directory should be.
        std::fs::write(root.join("file"), b"x").expect("write");
        let e = prepare(&root.join("file/run"), false, false, &[], none).expect_err("E092");
        assert_eq!(e.code, Code::BadFlag);
        assert!(e.message.contains("cannot create"), "{}", e.message);
        // A new directory, created and locked (E094 needs another process: tests/cli_flags.rs).
        let dir = root.join("a/run");
        let lock = prepare(&dir, false, false, &["episodes.jsonl"], none).expect("claimed");
        assert!(dir.join(LOCK).exists());
        drop(lock);
        // It holds a run: E095 unless forced; forced, the run's files go and others stay.
        std::fs::write(dir.join("episodes.jsonl"), b"x").expect("write");
        std::fs::write(dir.join("notes.txt"), b"x").expect("write");
        let e = prepare(&dir, false, false, &["episodes.jsonl"], none).expect_err("E095");
        assert_eq!(e.code, Code::RunDirNotEmpty);
        let lock = prepare(&dir, true, true, &["episodes.jsonl"], none).expect("resumed");
        assert!(
            dir.join("episodes.jsonl").exists(),
            "a resumed run keeps its files"
        );
        drop(lock);
        let lock = prepare(&dir, false, true, &["episodes.jsonl"], none).expect("forced");
        assert!(!dir.join("episodes.jsonl").exists());
        assert!(dir.join("notes.txt").exists());
        drop(lock);
        assert!(!dir.join(LOCK).exists(), "the lock goes with the run");
        let _ = std::fs::remove_dir_all(&root);
    }
}
