//! The run directory's record, shared by `vic run` and the Python package: `config.json` (the
//! vic version, the command, the configuration resolved from it, the model and data files),
//! `model.vmodel` (a copy of the model's source), `checkpoint.safetensors` and
//! `metrics.jsonl` (one JSON object per line: [`step_line`], [`eval_line`], [`final_line`],
//! each stamped with `time` by [`MetricsLog`]). Where a run's data comes from (the model's
//! own `data "…"`, relative to the model file) is decided here too.

use super::{EvalReport, RunPlan, StepStats};
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
