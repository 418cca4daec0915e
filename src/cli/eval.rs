//! `vic eval`: the ELBO of saved parameters, with its standard error, per term; and the
//! trainer with saved parameters that `vic eval` and `vic sample` start from.

use super::checks::check_device;
use super::session::open;
use crate::exit::OK;
use crate::exit::{checkpoint_error, flag_error, non_finite_result, train_error};
use std::path::PathBuf;
use vic::train::{CheckpointInfo, TrainConfig, Trainer};

/// `vic eval --split`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The rows the run trained on.
    Train,
    /// The rows the run held out (its `--holdout` and `--seed`).
    Heldout,
    /// Every row of the data file.
    All,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The model file (`.vmodel`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// A checkpoint (`checkpoint.safetensors`) or a run directory.
    #[arg(long, value_name = "RUN")]
    pub params: PathBuf,
    /// Data file (.npz, .npy, .csv) [default: the model's `data "…"`].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which rows to score [default: `heldout` when the run held some out of the model's own
    /// data, else `all`].
    #[arg(long, value_enum)]
    pub split: Option<Split>,
    /// Monte Carlo draws per sequence.
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// Random seed of the evaluation's draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rollouts per draw for control problems.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Rollout length for control problems [default: the model's `horizon`, else 50].
    #[arg(long)]
    pub horizon: Option<usize>,
    /// cpu, or cuda (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also estimate log p(x) by the importance-weighted bound with K samples per draw.
    #[arg(long, value_name = "K")]
    pub iwae: Option<usize>,
}

/// A trainer with the saved parameters loaded (all the data in its training split), and
/// what the checkpoint says of its run.
pub fn trainer(
    file: &std::path::Path,
    params: &std::path::Path,
    data: Option<&std::path::Path>,
    color: bool,
    cfg: TrainConfig,
) -> Result<(Trainer, CheckpointInfo), u8> {
    let session = open(file, color)?;
    let d = session.load_data(data)?;
    let mut tr = Trainer::new(session.program, d, cfg)
        .map_err(|e| train_error(&e, "cannot set up the model"))?;
    let path = if params.is_dir() {
        params.join("checkpoint.safetensors")
    } else {
        params.to_path_buf()
    };
    let info = tr.load_params(&path).map_err(|e| {
        checkpoint_error(
            format!("cannot load `{}`: {e}", path.display()),
            "pass a checkpoint written by `vic run` for this model",
        )
    })?;
    Ok((tr, info))
}

/// Keeps the rows of `split` in the trainer's training data (which evaluation scores), and
/// says which they are: `"held-out split (10 of 100 rows)"`.
fn choose_split(
    tr: &mut Trainer,
    info: &CheckpointInfo,
    asked: Option<Split>,
    own_data: bool,
) -> Result<String, u8> {
    let Some(n) = tr.train.as_ref().map(|d| d.n) else {
        if matches!(asked, Some(Split::Train | Split::Heldout)) {
            return Err(flag_error(
                format!(
                    "`{}` has no data, so it has no {} split",
                    tr.program.model.name,
                    if asked == Some(Split::Train) {
                        "training"
                    } else {
                        "held-out"
                    }
                ),
                "drop --split: a control problem is scored on fresh rollouts",
            ));
        }
        return Ok(format!("{} fresh rollouts", tr.cfg.batch));
    };
    let split = asked.unwrap_or(if own_data && info.holdout > 0.0 {
        Split::Heldout
    } else {
        Split::All
    });
    if split == Split::All {
        return Ok(format!("whole data file ({n} rows)"));
    }
    tr.resplit(info.holdout, info.seed);
    let (train, held) = (tr.train.take(), tr.heldout.take());
    let (kept, what) = match split {
        Split::Heldout => (held, "held-out split"),
        _ => (train, "training split"),
    };
    match kept {
        Some(d) => {
            let line = format!("{what} ({} of {n} rows)", d.n);
            tr.train = Some(d);
            Ok(line)
        }
        None => Err(flag_error(
            format!(
                "the run held out no rows (its --holdout was {}), so there is no held-out split",
                info.holdout
            ),
            "use --split all (or --split train)",
        )),
    }
}

/// `vic eval`: the ELBO of saved parameters on a split, per term, with the evidence.
pub fn eval(a: EvalArgs, color: bool) -> u8 {
    if let Err(c) = check_device(&a.device) {
        return c;
    }
    if a.samples == 0 || a.batch == 0 || a.iwae == Some(0) {
        return flag_error(
            "--samples, --batch and --iwae must be ≥ 1".into(),
            "e.g. --samples 10 --iwae 100",
        );
    }
    if let Some(c) = super::checks::too_large(&[
        ("--samples", a.samples),
        ("--batch", a.batch),
        ("--horizon", a.horizon.unwrap_or(0)),
        ("--iwae", a.iwae.unwrap_or(0)),
    ]) {
        return c;
    }
    let cfg = TrainConfig {
        batch: a.batch,
        holdout: 0.0,
        seed: a.seed,
        horizon: a.horizon,
        ..TrainConfig::default()
    };
    let (mut tr, info) = match trainer(&a.file, &a.params, a.data.as_deref(), color, cfg) {
        Ok(t) => t,
        Err(c) => return c,
    };
    if let Err(c) = super::checks::horizon_applies(&tr.program.model, a.horizon) {
        return c;
    }
    let scored = match choose_split(&mut tr, &info, a.split, a.data.is_none()) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let k = tr.program.model.objective.iwae.max(1) as usize;
    let data = tr.heldout.as_ref().or(tr.train.as_ref());
    let steps = data.map_or(tr.horizon(), |d| d.t.unwrap_or(1));
    let rows = data.map_or(a.batch, |d| d.n.min(256).saturating_mul(a.samples));
    if let Err(c) = super::checks::fits(
        &tr.program.model,
        rows.saturating_mul(k.max(a.iwae.unwrap_or(1))),
        steps,
        "the evaluation",
    ) {
        return c;
    }
    match tr.evaluate(None, a.samples, a.seed) {
        Ok(r) if r.non_finite().is_some() => non_finite_result(&r, "the saved parameters"),
        Ok(r) => {
            let r = match with_evidence(&mut tr, r, &a) {
                Ok(r) => r,
                Err(c) => return c,
            };
            if a.json {
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert("checkpoint_step".into(), info.step.into());
                    m.insert("scored".into(), scored.into());
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("parameters of step {} scored on the {scored}", info.step);
                print!("{}", r.text());
            }
            OK
        }
        Err(e) => train_error(&e, "evaluation failed"),
    }
}

/// The evidence beside the ELBO: exact where p is linear-Gaussian, the IWAE-K estimate
/// when `--iwae K` is given, else the reason it is not exact.
fn with_evidence(
    tr: &mut Trainer,
    mut r: vic::train::EvalReport,
    a: &EvalArgs,
) -> Result<vic::train::EvalReport, u8> {
    let hint = a.iwae.is_none().then_some("pass --iwae K to estimate it");
    r = tr.with_exact_evidence(r, None, hint);
    if let Some(k) = a.iwae {
        match tr.evaluate_iwae(k, None, a.samples, a.seed.wrapping_add(1)) {
            Ok(w) if w.non_finite().is_some() => {
                return Err(non_finite_result(&w, "the IWAE bound"))
            }
            Ok(w) => r = r.with_iwae(k, &w),
            Err(vic::train::TrainError::Unsupported(why)) => {
                return Err(flag_error(
                    format!("--iwae {k} cannot run for this model: {why}"),
                    "drop --iwae (the ELBO and, where it exists, the exact evidence need no importance samples)",
                ));
            }
            Err(e) => return Err(train_error(&e, "the IWAE evaluation failed")),
        }
    }
    Ok(r)
}
