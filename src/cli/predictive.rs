//! `vic sample --posterior`: posterior predictive draws (reconstructions x̃ ~ p(x | z),
//! z ~ q(z | x)) to `.npz` (plotted by [`super::sample_plot`]), and a predictive check: the fraction of the data's observations inside
//! the draws' central 50% and 90% intervals.

use super::eval::SampleArgs;
use super::sample_plot::Summarised;
use super::session::{coded, flag_error, train_error};
use super::{FAILED, OK};
use vic::diag::Code;
use vic::ir::Role;
use vic::train::Trainer;

/// `HxW` → (H, W).
pub(super) fn parse_shape(s: &str) -> Option<(usize, usize)> {
    let (h, w) = s.split_once(['x', 'X', '×'])?;
    let (h, w) = (h.trim().parse().ok()?, w.trim().parse().ok()?);
    (h > 0 && w > 0).then_some((h, w))
}

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
    if let Some(c) = super::run::too_large(&[("--draws", a.draws)]) {
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

/// The empirical quantile of sorted values (nearest rank).
fn quantile(sorted: &[f32], q: f64) -> f32 {
    let i = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Per observation of one variable: (data value, mean, 5%, 25%, 75%, 95%), `None` where
/// masked; indexed `(sequence · T + step) · size + element`.
pub(super) type Summary = Vec<Option<[f32; 6]>>;

fn summarise(
    drawn: &[f32],
    data: &[f32],
    mask: Option<&[f32]>,
    (seqs, k, tt, size): (usize, usize, usize, usize),
    data_t: usize,
) -> Summary {
    let mut out = Vec::with_capacity(seqs * tt * size);
    let mut vals = vec![0.0f32; k];
    for i in 0..seqs {
        for t in 0..tt {
            let observed = !matches!(mask, Some(mk) if mk[i * data_t + t] == 0.0);
            for e in 0..size {
                if !observed {
                    out.push(None);
                    continue;
                }
                for (j, v) in vals.iter_mut().enumerate() {
                    *v = drawn[((j * seqs + i) * tt + t) * size + e];
                }
                if vals.iter().any(|v| v.is_nan()) {
                    // One-step predictions have none at step 1.
                    out.push(None);
                    continue;
                }
                let mean = vals.iter().sum::<f32>() / k as f32;
                vals.sort_by(|a, b| a.total_cmp(b));
                out.push(Some([
                    data[(i * tt + t) * size + e],
                    mean,
                    quantile(&vals, 0.05),
                    quantile(&vals, 0.25),
                    quantile(&vals, 0.75),
                    quantile(&vals, 0.95),
                ]));
            }
        }
    }
    out
}

pub fn posterior(a: &SampleArgs, tr: &Trainer) -> u8 {
    let m = &tr.program.model;
    let Some(d) = tr.train.as_ref() else {
        return flag_error(
            "--posterior needs data to condition on".into(),
            "pass --data D (or name a default with `data \"file.npz\"` in the model)",
        );
    };
    if m.is_control() {
        return flag_error(
            "--posterior needs an observed variable; this is a control problem".into(),
            "draw rollouts with `vic sample` without --posterior",
        );
    }
    let seqs = a.n.min(d.n);
    let k = a.draws;
    let tt = if m.is_sequential() {
        d.t.unwrap_or(1)
    } else {
        1
    };
    if let Err(c) = super::run::fits(m, seqs.saturating_mul(k), tt, "the posterior predictive") {
        return c;
    }
    let idx: Vec<usize> = (0..k).flat_map(|_| 0..seqs).collect();
    let batch = vic::train::data_batch(&tr.program, d, &idx, 1);
    let mut rng = vic::runtime::rng::seeded(a.seed);
    let mut drawn = match tr.posterior_predictive(&batch, &mut rng) {
        Ok(x) => x,
        Err(e) => return train_error(&e, "posterior predictive sampling failed"),
    };
    // One-step predictions under ids past the model's variables (`<name>_onestep`).
    let nv = m.vars.len();
    if a.one_step {
        if let Some(why) = tr.program.one_step_blocker() {
            return flag_error(
                format!("--one-step cannot run for this model: {why}"),
                "drop --one-step (the reconstructions need no open-loop step)",
            );
        }
        match tr.one_step_predictive(&batch, &mut rng) {
            Ok(x) => drawn.extend(x.into_iter().map(|(v, h)| (v + nv, h))),
            Err(e) => return train_error(&e, "one-step predictive sampling failed"),
        }
    }
    // The .npz: draws (K, S, T, size) or (K, S, size); the data `<name>_data` beside them.
    let mut npz = match super::io::create_npz(&a.out) {
        Ok(w) => w,
        Err(c) => return c,
    };
    let mut names = Vec::new();
    let mut summaries = Vec::new();
    let entries = m
        .vars
        .iter()
        .enumerate()
        .map(|(v, var)| (v, v, var.name.clone()))
        .chain(
            m.vars
                .iter()
                .enumerate()
                .map(|(v, var)| (v + nv, v, format!("{}_onestep", var.name))),
        );
    for (id, v, label) in entries {
        let var = &m.vars[v];
        let Some(host) = drawn.get(&id) else { continue };
        let size = var.ty.size();
        let vt = if var.timed { tt } else { 1 };
        let mut shape = vec![k, seqs];
        if var.timed {
            shape.push(vt);
        }
        shape.push(size);
        let mut arrays = vec![(label.clone(), shape, host.clone())];
        if var.role == Role::Observed {
            if let Some(real) = d.array(&var.name) {
                let real = &real[..seqs * vt * size];
                let mut shape = vec![seqs];
                if var.timed {
                    shape.push(vt);
                }
                shape.push(size);
                if id == v {
                    arrays.push((format!("{}_data", var.name), shape, real.to_vec()));
                }
                let mask = d.mask.as_deref().filter(|_| var.timed);
                summaries.push((
                    id,
                    summarise(host, real, mask, (seqs, k, vt, size), vt),
                    vt,
                    size,
                    label,
                ));
            }
        }
        for (name, shape, values) in arrays {
            let arr = match ndarray::ArrayD::from_shape_vec(shape, values) {
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
            names.push(name);
        }
    }
    // A chain summed out: its posterior marginals and Viterbi path beside the draws.
    match tr.chain_posterior(&batch, &mut rng) {
        Ok(chains) => {
            for (name, shape, values) in chains.iter().flat_map(|c| c.arrays(k, seqs)) {
                let written = ndarray::ArrayD::from_shape_vec(shape, values)
                    .map_err(|e| e.to_string())
                    .and_then(|x| npz.add_array(name.as_str(), &x).map_err(|e| e.to_string()));
                if let Err(e) = written {
                    coded(
                        Code::CannotWrite,
                        format!("cannot write `{name}` to `{}`: {e}", a.out.display()),
                        "check the disk and the permissions of --out, or choose another --out",
                    );
                    return FAILED;
                }
                names.push(name);
            }
        }
        Err(e) => return train_error(&e, "the chain posterior failed"),
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
    for (_, s, _, _, label) in &summaries {
        let obs: Vec<&[f32; 6]> = s.iter().flatten().collect();
        let n = obs.len().max(1) as f64;
        let in50 = obs.iter().filter(|o| o[0] >= o[3] && o[0] <= o[4]).count() as f64 / n;
        let in90 = obs.iter().filter(|o| o[0] >= o[2] && o[0] <= o[5]).count() as f64 / n;
        println!(
            "predictive check `{label}`: {:.1}% of {} observations inside the central 50% interval, {:.1}% inside the 90% interval ({k} draws each)",
            100.0 * in50,
            obs.len(),
            100.0 * in90
        );
    }
    if let Some(plot) = &a.plot {
        // The one-step predictions when asked for, else the reconstructions.
        let chosen = summaries
            .iter()
            .find(|x| a.one_step && x.0 >= nv)
            .or(summaries.first());
        let Some((id, summary, steps, size, label)) = chosen else {
            eprintln!("warning: --plot needs an observed variable in the data");
            return OK;
        };
        let x = Summarised {
            id: *id,
            summary,
            steps: *steps,
            size: *size,
            label,
            one_step: *id >= nv,
        };
        return super::sample_plot::posterior(a, &x, &drawn, (seqs, k), plot);
    }
    OK
}
