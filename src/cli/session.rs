//! Shared by `run`, `eval`, `sample`: compile, lower, load data, report faults.

use super::{FAILED, USAGE};
use std::path::{Path, PathBuf};
use vic::data::{self, DataError, Dataset};
use vic::diag::Code;
use vic::diag::{render, Report};
use vic::lower::Program;
use vic::runtime::RtError;
use vic::train::{specs_of, TrainError};

/// A compiled and lowered model, and where it came from.
pub struct Session {
    /// The compiled model.
    pub model: vic::Model,
    /// Its lowered program.
    pub program: Program,
    /// The model file.
    pub model_path: PathBuf,
}

/// Print a data file's fault as its diagnostic.
pub fn print_data_error(e: &DataError) {
    let d = miette::MietteDiagnostic::new(e.to_string())
        .with_code(e.code())
        .with_help(e.help());
    eprintln!("{:?}", miette::Report::new(d));
}

/// Compile and lower a model; `Err` is the exit code.
pub fn open(path: &Path, color: bool) -> Result<Session, u8> {
    open_for(path, color, None)
}

/// [`open`] for an environment of shape `env` (sizes from the environment).
pub fn open_for(
    path: &Path,
    color: bool,
    env: Option<&vic::parse::env::EnvShape>,
) -> Result<Session, u8> {
    let model = super::io::load_model_for(path, color, env)?;
    let elbo = model.elbo();
    match Program::new_spanned(model.ir(), &elbo, &model.checked.spans) {
        Ok(program) => Ok(Session {
            model,
            program,
            model_path: path.to_path_buf(),
        }),
        Err(ds) => {
            let source = std::sync::Arc::new(vic::diag::Source::new(&model.name, &model.source));
            for d in ds {
                eprint!("{}", render(&Report::bound(d, &source), color));
            }
            Err(FAILED)
        }
    }
}

impl Session {
    /// The data file: `--data`, else the model's `data "…"` (relative to the model file).
    pub fn data_path(&self, flag: Option<&Path>) -> Option<PathBuf> {
        vic::train::rundir::data_path(self.model.ir(), Some(&self.model_path), flag)
    }

    /// Load the data a fit model needs. `Ok(None)` for control problems.
    pub fn load_data(&self, flag: Option<&Path>) -> Result<Option<Dataset>, u8> {
        if !vic::train::rundir::needs_data(self.model.ir()) {
            return Ok(None);
        }
        let Some(path) = self.data_path(flag) else {
            eprintln!(
                "{:?}",
                miette::Report::new(
                    miette::MietteDiagnostic::new(format!(
                        "model `{}` observes data but no data file was given",
                        self.model.ir().name
                    ))
                    .with_code("vic::E092")
                    .with_help("pass `--data FILE.npz`, or add `data \"file.npz\"` to the model")
                )
            );
            return Err(USAGE);
        };
        let min_len = self.program.plan.max_lag as usize + 1;
        match data::load(&path, &specs_of(&self.program), min_len) {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                print_data_error(&e);
                Err(FAILED)
            }
        }
    }
}

/// Print a coded diagnostic without a source (a fault of files, flags or the backend).
pub fn coded(code: Code, msg: String, help: &str) {
    eprintln!(
        "{:?}",
        miette::Report::new(
            miette::MietteDiagnostic::new(msg)
                .with_code(code.as_str())
                .with_help(help.to_string())
        )
    );
}

/// A training, evaluation or set-up fault as its diagnostic (exit 1): NaN is `vic::E201`, a
/// feature the backend does not run `vic::E200`, a checkpoint `vic::E093`; anything else the
/// backend reports about a model the checker accepted is `vic::E204`.
pub fn train_error(e: &TrainError, what: &str) -> u8 {
    let (code, help) = match e {
        TrainError::NonFinite { .. } => (
            Code::NonFinite,
            "try a lower --lr, --clip 100, or a minimum scale (`min = 0.01` in `.split`)",
        ),
        TrainError::Unsupported(_) => (
            Code::Unsupported,
            "drop `--runtime fused`: the reference runtime (`--runtime auto` or `reference`) runs every feature",
        ),
        TrainError::Checkpoint(_) | TrainError::Runtime(RtError::Checkpoint { .. }) => (
            Code::BadCheckpoint,
            "pass a checkpoint written by `vic run` for this model",
        ),
        TrainError::Runtime(RtError::Io { .. }) => (
            Code::Io,
            "check the path and its permissions",
        ),
        TrainError::Distributed(_) => (
            Code::Unsupported,
            "train it in one process (without --distributed), or change what the message names; ranks that disagree on parameters are a fault in vic: please report it",
        ),
        TrainError::Runtime(_) => (
            Code::Backend,
            "the checker accepted this model, so this is a fault in vic: please report it with the model file and the command",
        ),
    };
    coded(code, format!("{what}: {e}"), help);
    FAILED
}

/// `vic::E092` (exit 2): a flag value that makes no sense, with advice.
pub fn flag_error(msg: String, help: &str) -> u8 {
    eprintln!(
        "{:?}",
        miette::Report::new(
            miette::MietteDiagnostic::new(msg)
                .with_code("vic::E092")
                .with_help(help.to_string())
        )
    );
    USAGE
}

/// `vic::E093` (exit 1): a checkpoint that cannot be read, is corrupted or edited, belongs
/// to another model, or cannot be written.
pub fn checkpoint_error(msg: String, help: &str) -> u8 {
    eprintln!(
        "{:?}",
        miette::Report::new(
            miette::MietteDiagnostic::new(msg)
                .with_code(vic::diag::Code::BadCheckpoint.as_str())
                .with_help(help.to_string())
        )
    );
    FAILED
}
