//! Checks of flags shared by `vic run`, `vic eval` and `vic sample` (exit 2, `vic::E092`),
//! and the memory check of a run (`vic::E202`, exit 1).

use crate::exit::{flag_error, FAILED};
use vic::train::PlanError;

/// Counts above this are a typo, not a request (they would exhaust memory).
pub const MAX_COUNT: usize = vic::limits::MAX_COUNT as usize;

/// Refuse (`vic::E202`, exit 1) a run whose estimated memory exceeds what is available:
/// `rows` sequences of `steps` steps through the model at once.
pub fn fits(model: &vic::ir::Model, rows: usize, steps: usize, what: &str) -> Result<(), u8> {
    let need = vic::limits::run_bytes(model, rows as u64, steps as u64);
    let have = vic::limits::available_bytes();
    if need <= have {
        return Ok(());
    }
    eprintln!(
        "{:?}",
        miette::Report::new(
            miette::MietteDiagnostic::new(format!(
                "{what} needs about {} ({rows} sequences × {steps} steps at once), but {} is available",
                vic::limits::human(need),
                vic::limits::human(have)
            ))
            .with_code(vic::diag::Code::OutOfMemory.as_str())
            .with_help("use a smaller --batch, --samples or horizon, or fewer importance samples (`iwae`)")
        )
    );
    Err(FAILED)
}

/// A flag error for the first count above [`MAX_COUNT`].
pub fn too_large(flags: &[(&str, usize)]) -> Option<u8> {
    flags.iter().find(|(_, v)| *v > MAX_COUNT).map(|(name, v)| {
        flag_error(
            format!("{name} {v} is larger than {MAX_COUNT}"),
            "use a smaller value; batches and rollouts this large do not fit in memory",
        )
    })
}

/// A flag error unless this build runs on `device`.
pub fn check_device(device: &str) -> Result<(), u8> {
    match device {
        "cpu" if !cfg!(feature = "cuda") => Ok(()),
        "cuda" if cfg!(feature = "cuda") => Ok(()),
        "cuda" => Err(flag_error("this vic was built without CUDA".into(), "rebuild with `cargo build --release --features cuda` on a machine with the CUDA toolkit")),
        "cpu" => Err(flag_error("this vic was built for CUDA".into(), "use `--device cuda`, or a build without `--features cuda`")),
        other => Err(flag_error(format!("unknown device `{other}`"), "devices: cpu, cuda")),
    }
}

/// A flag error unless `v` is a finite number > 0.
pub fn positive(flag: &str, v: f64, help: &str) -> Result<(), u8> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(flag_error(
            format!("{flag} {v} is not a positive number"),
            help,
        ))
    }
}

/// A flag error for the first count that is 0 (`None`: the flag was not given).
pub fn at_least_one(flags: &[(&str, Option<u64>)]) -> Result<(), u8> {
    match flags.iter().find(|(_, v)| *v == Some(0)) {
        None => Ok(()),
        Some((name, _)) => Err(flag_error(
            format!("{name} 0: the count must be at least 1"),
            "e.g. --steps 2000 --batch 128 --log-every 10",
        )),
    }
}

/// `--horizon` sets the rollout length of a control problem; a model fitted to data takes
/// its sequence length from its data.
pub fn horizon_applies(model: &vic::ir::Model, horizon: Option<usize>) -> Result<(), u8> {
    if horizon.is_some() && !model.is_control() {
        return Err(plan_error(&PlanError::HorizonForData {
            model: model.name.clone(),
        }));
    }
    Ok(())
}

/// A plan that cannot be made, as a flag error with advice.
pub fn plan_error(e: &PlanError) -> u8 {
    let help = match e {
        PlanError::HorizonForData { .. } => {
            "drop --horizon (or, for `vic sample`, use it to set the length of the drawn sequences)"
        }
        PlanError::EpochsWithoutData { .. } => {
            "give a control problem a number of optimiser steps: --steps N"
        }
        PlanError::StepsAndEpochs => "pass one of --steps N and --epochs N",
    };
    flag_error(e.to_string(), help)
}
