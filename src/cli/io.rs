//! Reading model files, and printing reports.

use std::path::Path;
use vic::diag::{render, Code, Diagnostic, Report};

/// Read a model source; IO faults are `E090`/`E091` reports.
pub fn read_source(path: &Path) -> Result<String, Report> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Report::new(
            Diagnostic::new(Code::Io, format!("cannot read `{name}`: {e}"))
                .help("check the path and its permissions"),
            &name,
            "",
        )
    })?;
    String::from_utf8(bytes).map_err(|e| {
        Report::new(
            Diagnostic::new(
                Code::NotUtf8,
                format!(
                    "`{name}` is not UTF-8 (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            )
            .help("save the model as UTF-8 text"),
            &name,
            "",
        )
    })
}

/// Print a report to stderr.
pub fn print(report: &Report, color: bool) {
    eprint!("{}", render(report, color));
}

/// Compile a model file, printing warnings; on failure print every diagnostic.
/// `Err(code)` is the exit code to use.
pub fn load_model(path: &Path, color: bool) -> Result<vic::Model, u8> {
    load_model_for(path, color, None)
}

/// [`load_model`] for an environment of shape `env` (`vic agent`).
pub fn load_model_for(
    path: &Path,
    color: bool,
    env: Option<&vic::parse::env::EnvShape>,
) -> Result<vic::Model, u8> {
    let src = read_source(path).map_err(|r| {
        print(&r, color);
        crate::exit::USAGE
    })?;
    match vic::compile_for(&src, &path.display().to_string(), env) {
        Ok(m) => {
            for w in m.warnings() {
                print(&w, color);
            }
            Ok(m)
        }
        Err(f) => {
            for r in &f.reports {
                print(r, color);
            }
            Err(crate::exit::FAILED)
        }
    }
}

/// Creates `path` for an `.npz` of draws (`vic sample`'s `--out`), or reports why not (exit 2).
pub fn create_npz(path: &Path) -> Result<ndarray_npy::NpzWriter<std::fs::File>, u8> {
    std::fs::File::create(path)
        .map(ndarray_npy::NpzWriter::new)
        .map_err(|e| {
            crate::exit::flag_error(
                format!("cannot write `{}`: {e}", path.display()),
                "choose another --out",
            )
        })
}

/// Claims a run directory ([`vic::train::rundir::claim`]) for `vic run` and `vic agent`,
/// printing the note of a lock taken over; why not is a diagnostic (exit 2).
pub fn claim_run_dir(
    dir: &Path,
    resume: bool,
    force: bool,
) -> Result<vic::train::rundir::RunLock, u8> {
    vic::train::rundir::claim(dir, resume, force, &mut |n| eprintln!("note: {n}"))
        .map_err(claim_error)
}

/// A run directory that cannot be claimed ([`vic::train::rundir::ClaimError`]), printed; the
/// exit code.
pub fn claim_error(e: vic::train::rundir::ClaimError) -> u8 {
    crate::exit::coded(e.code, e.message, &e.help);
    crate::exit::USAGE
}
