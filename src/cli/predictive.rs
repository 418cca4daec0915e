//! `vic sample --posterior`: posterior predictive draws (reconstructions x̃ ~ p(x | z),
//! z ~ q(z | x), [`Trainer::posterior_draws`]) to `.npz` (plotted by [`super::sample_plot`]), and a predictive check: the fraction of the data's observations inside
//! the draws' central 50% and 90% intervals.

use super::args::{parse_shape, SampleArgs};
use super::sample_plot::Summarised;
use crate::exit::{coded, flag_error, train_error};
use crate::exit::{FAILED, OK};
use vic::diag::Code;
use vic::train::{PredictiveError, Trainer};

/// Flag faults of `--posterior`, `--one-step`, `--draws` and `--image-shape`.
pub fn check_flags(a: &SampleArgs) -> Option<u8> {
    if let Some(c) = check_shape(a) {
        return Some(c);
    }
    if !a.posterior {
        return a.one_step.then(|| {
            flag_error(
                "--one-step applies to --posterior".into(),
                "add --posterior, or drop --one-step",
            )
        });
    }
    if a.condition > 0 {
        return Some(flag_error(
            "--posterior follows q on every step of the data: it takes no --condition".into(),
            "drop --condition (open-loop draws after K posterior steps are `--condition K` without --posterior)",
        ));
    }
    if a.draws < 2 {
        return Some(flag_error(
            format!("--draws {} is too few for predictive intervals", a.draws),
            "e.g. --draws 100",
        ));
    }
    if let Some(c) = super::checks::too_large(&[("--draws", a.draws)]) {
        return Some(c);
    }
    None
}

/// Flag faults of `--image-shape` (with or without --posterior).
fn check_shape(a: &SampleArgs) -> Option<u8> {
    if let Some(s) = &a.image_shape {
        if parse_shape(s).is_none() {
            return Some(flag_error(
                format!("--image-shape `{s}` is not HxW"),
                "e.g. --image-shape 8x8",
            ));
        }
    }
    None
}

/// `vic sample --posterior`: [`Trainer::posterior_draws`] written to `--out`, the predictive
/// check printed, and plotted on request.
pub fn posterior(a: &SampleArgs, tr: &Trainer) -> u8 {
    let m = &tr.program.model;
    let Some(d) = tr.train.as_ref() else {
        return flag_error(
            "--posterior needs data to condition on".into(),
            "pass --data D (or name a default with `data \"file.npz\"` in the model)",
        );
    };
    let (seqs, tt) = match tr.posterior_extent(d, a.n) {
        Ok(x) => x,
        Err(_) => {
            return flag_error(
                "--posterior needs an observed variable; this is a control problem".into(),
                "draw rollouts with `vic sample` without --posterior",
            )
        }
    };
    let k = a.draws;
    if let Err(c) = super::checks::fits(m, seqs.saturating_mul(k), tt, "the posterior predictive") {
        return c;
    }
    let draws = match tr.posterior_draws(d, a.n, k, a.one_step, a.seed) {
        Ok(x) => x,
        Err(PredictiveError::Control) => unreachable!("checked by posterior_extent"),
        Err(PredictiveError::OneStep(why)) => {
            return flag_error(
                format!("--one-step cannot run for this model: {why}"),
                "drop --one-step (the reconstructions need no open-loop step)",
            );
        }
        Err(PredictiveError::Draw { what, error }) => {
            return train_error(&error, &format!("{what} sampling failed"))
        }
    };
    // The .npz: draws (K, S, T, size) or (K, S, size); the data `<name>_data` beside them.
    let mut npz = match super::io::create_npz(&a.out) {
        Ok(w) => w,
        Err(c) => return c,
    };
    let mut names = Vec::new();
    for (name, shape, values) in &draws.arrays {
        let arr = match ndarray::ArrayD::from_shape_vec(shape.clone(), values.clone()) {
            Ok(x) => x,
            Err(e) => {
                coded(
                    Code::CannotWrite,
                    format!("cannot shape `{name}` for `{}`: {e}", a.out.display()),
                    "this is a fault in vic: please report it with the command",
                );
                return FAILED;
            }
        };
        if let Err(e) = npz.add_array(name.as_str(), &arr) {
            coded(
                Code::CannotWrite,
                format!("cannot write `{name}` to `{}`: {e}", a.out.display()),
                "check the disk and the permissions of --out, or choose another --out",
            );
            return FAILED;
        }
        names.push(name.clone());
    }
    if let Err(e) = npz.finish() {
        coded(
            Code::CannotWrite,
            format!("cannot write `{}`: {e}", a.out.display()),
            "check the disk and the permissions of --out, or choose another --out",
        );
        return FAILED;
    }
    println!(
        "wrote {k} posterior predictive draws of {seqs} sequence(s): {} to {}",
        names.join(", "),
        a.out.display()
    );
    for c in &draws.checks {
        let (n, in50, in90) = c.coverage();
        println!(
            "predictive check `{}`: {:.1}% of {n} observations inside the central 50% interval, {:.1}% inside the 90% interval ({k} draws each)",
            c.label,
            100.0 * in50,
            100.0 * in90
        );
    }
    if let Some(plot) = &a.plot {
        // The one-step predictions when asked for, else the reconstructions.
        let chosen = draws
            .checks
            .iter()
            .find(|x| a.one_step && x.one_step)
            .or(draws.checks.first());
        let Some(c) = chosen else {
            eprintln!("warning: --plot needs an observed variable in the data");
            return OK;
        };
        let x = Summarised {
            id: c.id,
            summary: &c.summary,
            steps: c.steps,
            size: c.size,
            label: &c.label,
            one_step: c.one_step,
        };
        return super::sample_plot::posterior(a, &x, &draws.drawn, (seqs, k), plot);
    }
    OK
}
