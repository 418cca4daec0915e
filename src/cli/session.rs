//! Shared by `run`, `eval`, `sample`: compile, lower, load data, report faults.

use crate::exit::{print_data_error, FAILED, USAGE};
use std::path::{Path, PathBuf};
use vic::data::{self, Dataset};
use vic::diag::{render, Report};
use vic::lower::Program;
use vic::train::specs_of;

/// A compiled and lowered model, and where it came from.
pub struct Session {
    /// The compiled model.
    pub model: vic::Model,
    /// Its lowered program.
    pub program: Program,
    /// The model file.
    pub model_path: PathBuf,
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
