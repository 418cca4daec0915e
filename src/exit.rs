//! Exit codes, and the diagnostics without a source that every command prints (faults of
//! files, flags, checkpoints and the backend). Shared by `src/cli` and `src/bench`, which
//! import nothing of each other's but this.

use vic::data::DataError;
use vic::diag::Code;
use vic::runtime::RtError;
use vic::train::TrainError;

/// Exit code: success.
pub const OK: u8 = 0;
/// Exit code: the input has errors (a model, data, a diverged run).
pub const FAILED: u8 = 1;
/// Exit code: a usage or IO error.
pub const USAGE: u8 = 2;

/// Print a data file's fault as its diagnostic.
pub fn print_data_error(e: &DataError) {
    let d = miette::MietteDiagnostic::new(e.to_string())
        .with_code(e.code())
        .with_help(e.help());
    eprintln!("{:?}", miette::Report::new(d));
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

/// `vic::E201` for an evaluation that came out NaN or infinite: never printed as a result.
pub fn non_finite_result(r: &vic::train::EvalReport, of: &str) -> u8 {
    eprintln!(
        "{:?}",
        miette::Report::new(
            miette::MietteDiagnostic::new(format!(
                "the evaluation of {of} is not finite: {}",
                r.non_finite().unwrap_or_default()
            ))
            .with_code(vic::diag::Code::NonFinite.as_str())
            .with_help("check the data for values too large for f32 (|x| > 3e38 overflows), and the checkpoint for NaN parameters")
        )
    );
    FAILED
}

/// `W003`: a resumed run's settings that differ from the saved run's (`vic run` and both
/// `vic agent` modes).
pub fn resume_changed(changed: &[String]) {
    eprintln!(
        "{:?}",
        miette::Report::new(
            miette::MietteDiagnostic::new(format!(
                "resumed with settings that differ from the saved run's: {}",
                changed.join(", ")
            ))
            .with_code(Code::ResumeChanged.as_str())
            .with_severity(miette::Severity::Warning)
            .with_help("the run continues with the new settings, so it is not the run an uninterrupted one would have been; pass the original flags to continue it exactly")
        )
    );
}
