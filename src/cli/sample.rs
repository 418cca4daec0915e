//! `vic sample`: draws from p to `.npz` (optionally plotted against real sequences), or with
//! `--posterior` the posterior predictive ([`super::predictive`]).

use super::args::SampleArgs;
use super::checks::{check_device, too_large};
use super::eval::trainer;
use crate::exit::{coded, flag_error, train_error};
use crate::exit::{FAILED, OK};
use vic::diag::Code;
use vic::train::{SampleError, TrainConfig};

/// `vic sample`: draws from p (or the posterior predictive) to `.npz`.
pub fn sample(a: SampleArgs, color: bool) -> u8 {
    if let Err(c) = check_device(&a.device) {
        return c;
    }
    if a.n == 0 || a.horizon == Some(0) {
        return flag_error(
            "--n and --horizon must be ≥ 1".into(),
            "e.g. --n 16 --horizon 50",
        );
    }
    if let Some(c) = too_large(&[
        ("--n", a.n),
        ("--horizon", a.horizon.unwrap_or(0)),
        ("--condition", a.condition),
    ]) {
        return c;
    }
    if let Some(h) = a.horizon.filter(|h| a.condition > *h) {
        return condition_too_long(a.condition, h);
    }
    if let Some(c) = super::predictive::check_flags(&a) {
        return c;
    }
    let cfg = TrainConfig {
        holdout: 0.0,
        seed: a.seed,
        ..TrainConfig::default()
    };
    let tr = match trainer(&a.file, &a.params, a.data.as_deref(), color, cfg) {
        Ok((t, _)) => t,
        Err(c) => return c,
    };
    if a.posterior {
        return super::predictive::posterior(&a, &tr);
    }
    let m = &tr.program.model;
    let draws = match tr.draw(a.n, a.horizon, a.condition, tr.train.as_ref(), a.seed) {
        Ok(d) => d,
        Err(e) => {
            let help = match &e {
                SampleError::ConditionTooLong { condition, t } => {
                    return condition_too_long(*condition, *t)
                }
                SampleError::ConditionNeedsData { condition } => {
                    return flag_error(
                        format!("--condition {condition} needs data with at least that many steps"),
                        "pass --data with sequences at least as long as --condition",
                    )
                }
                SampleError::Improper { written: name, .. } => format!("`vic sample` draws from p: give `{name}` a proper prior (e.g. `{name} ~ Normal(0, 1)`) to sample this model"),
                SampleError::CannotCondition { .. } => "draw from the prior (drop --condition), or draw the posterior's reconstructions with --posterior".to_string(),
                SampleError::Failed { .. } => "`vic sample` draws every latent and action from p: give each a proper prior (a Flat prior has no draws), or follow the posterior for the data's steps with --condition".to_string(),
            };
            coded(Code::CannotSample, e.to_string(), &help);
            return FAILED;
        }
    };
    let (t, drawn) = (draws.t, draws.values);
    let mut npz = match super::io::create_npz(&a.out) {
        Ok(w) => w,
        Err(c) => return c,
    };
    let mut names = Vec::new();
    for (v, var) in m.vars.iter().enumerate() {
        let Some(host) = drawn.get(&v) else { continue };
        let size = var.ty.size();
        let shape: Vec<usize> = if var.timed {
            vec![a.n, t, size]
        } else {
            vec![a.n, size]
        };
        let arr = match ndarray::ArrayD::from_shape_vec(shape, host.clone()) {
            Ok(x) => x,
            Err(e) => {
                return train_error(
                    &vic::train::TrainError::Runtime(vic::runtime::RtError::Shape(format!(
                        "the draws of `{}`: {e}",
                        var.name
                    ))),
                    "cannot write the draws",
                )
            }
        };
        if let Err(e) = npz.add_array(var.name.as_str(), &arr) {
            return write_error(&a.out, &format!("`{}`: {e}", var.name));
        }
        names.push(var.name.clone());
    }
    if let Err(e) = npz.finish() {
        return write_error(&a.out, &e.to_string());
    }
    println!(
        "wrote {} draws of {} to {}",
        a.n,
        names.join(", "),
        a.out.display()
    );
    if let Some(plot) = &a.plot {
        return super::sample_plot::draws(&a, &tr, &drawn, t, plot);
    }
    OK
}

/// `vic::E096` (exit 1): an output file that could not be written.
fn write_error(path: &std::path::Path, e: &str) -> u8 {
    coded(
        Code::CannotWrite,
        format!("cannot write `{}`: {e}", path.display()),
        "check that the directory exists, is writable and has space",
    );
    FAILED
}

fn condition_too_long(condition: usize, t: usize) -> u8 {
    flag_error(
        format!("--condition {condition} is longer than the {t} steps drawn"),
        "the draws follow the posterior for --condition steps, then run p open loop: use --horizon > --condition",
    )
}
