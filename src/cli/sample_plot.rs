//! `vic sample --plot`: draws from p against the real sequences they pair with (one colour per
//! pair, the real series dashed, the end of `--condition` marked), the posterior predictive
//! (mean with its 90% interval against the data), and image grids for image-valued variables.

use super::args::parse_shape;
use super::args::SampleArgs;
use crate::exit::flag_error;
use crate::exit::OK;
use std::collections::HashMap;
use std::path::Path;
use vic::ir::Role;
use vic::plot::{image_grid, panels, Line, Marker, Panel};
use vic::train::Summary;
use vic::train::Trainer;

/// Columns of an image grid, panels and draws per panel: enough to read, few enough to tell apart.
const MAX_COLS: usize = 10;
const MAX_PANELS: usize = 4;
const MAX_PAIRS: usize = 4;
/// Examples of a static scalar shown side by side.
const MAX_EXAMPLES: usize = 50;

fn report(res: Result<(), String>, plot: &Path) -> u8 {
    match res {
        Ok(()) => println!("plot: {}", plot.display()),
        Err(e) => eprintln!("warning: could not write the plot: {e}"),
    }
    OK
}

fn shape_mismatch(h: usize, w: usize, name: &str, size: usize) -> u8 {
    flag_error(
        format!(
            "--image-shape {h}x{w} has {} pixels but `{name}` has {size} elements",
            h * w
        ),
        "give the variable's image shape, e.g. 8x8 for 64 elements",
    )
}

/// The plot of `vic sample` (draws from p, `t` steps each, `drawn` by variable id).
pub fn draws(
    a: &SampleArgs,
    tr: &Trainer,
    drawn: &HashMap<usize, Vec<f32>>,
    t: usize,
    plot: &Path,
) -> u8 {
    let m = &tr.program.model;
    let observed = |timed: bool| {
        m.vars
            .iter()
            .enumerate()
            .find(|(v, x)| x.role == Role::Observed && x.timed == timed && drawn.contains_key(v))
    };
    let shape = a.image_shape.as_deref().and_then(parse_shape);
    if let Some((v, var)) = observed(false).filter(|_| shape.is_some() || observed(true).is_none())
    {
        let size = var.ty.size();
        let Some((h, w)) = shape else {
            eprintln!(
                "warning: --plot of `{}` (a static variable): pass --image-shape HxW to draw it as images",
                var.name
            );
            return OK;
        };
        if h * w != size {
            return shape_mismatch(h, w, &var.name, size);
        }
        let image = |src: &[f32], i: usize| -> Vec<f64> {
            src[i * size..(i + 1) * size]
                .iter()
                .map(|x| f64::from(*x))
                .collect()
        };
        let mut rows = Vec::new();
        let n = a.n.min(3 * MAX_COLS);
        for start in (0..n).step_by(MAX_COLS) {
            let end = (start + MAX_COLS).min(n);
            rows.push((
                format!("draws {}–{}", start + 1, end),
                (start..end).map(|i| image(&drawn[&v], i)).collect(),
            ));
        }
        if let Some((d, real)) = tr
            .train
            .as_ref()
            .and_then(|d| Some((d, d.array(&var.name)?)))
        {
            let k = d.n.min(MAX_COLS);
            rows.push((
                format!("data 1–{k}"),
                (0..k).map(|i| image(real, i)).collect(),
            ));
        }
        let res = image_grid(
            plot,
            &format!("{}: {} draws of {} from p", m.name, a.n, var.name),
            &[],
            &rows,
            (h, w),
        );
        return report(res, plot);
    }
    let Some((v, var)) = observed(true) else {
        eprintln!("warning: --plot needs an observed variable");
        return OK;
    };
    let size = var.ty.size();
    let real = tr
        .train
        .as_ref()
        .and_then(|d| Some((d.n, d.t.unwrap_or(1), d.array(&var.name)?)));
    let mut groups = Vec::new();
    for dim in 0..size.min(MAX_PANELS) {
        let mut lines = Vec::new();
        for i in 0..a.n.min(MAX_PAIRS) {
            let pts = (0..t)
                .map(|s| {
                    (
                        s as f64 + 1.0,
                        f64::from(drawn[&v][(i * t + s) * size + dim]),
                    )
                })
                .collect();
            lines.push(Line::new(format!("draw {}", i + 1), pts, i));
            if let Some((n, dt, real)) = real {
                // Draw i follows data sequence i mod n (the batch `vic sample` conditions on).
                let j = i % n;
                let pts = (0..dt.min(t))
                    .map(|s| (s as f64 + 1.0, f64::from(real[(j * dt + s) * size + dim])))
                    .collect();
                lines.push(Line::new(format!("data, sequence {}", j + 1), pts, i).dashed());
            }
        }
        let caption = if size > 1 {
            format!("{}[t], element {}", var.name, dim + 1)
        } else {
            format!("{}[t]", var.name)
        };
        groups.push(Panel {
            caption,
            x_desc: "step t".into(),
            y_desc: var.name.clone(),
            lines,
            marker: (a.condition > 0).then(|| Marker {
                x: a.condition as f64 + 0.5,
                name: format!("end of conditioning (step {})", a.condition),
            }),
            clip_outliers: false,
        });
    }
    let title = if a.condition > 0 {
        format!(
            "{}: posterior on steps 1–{}, then p open loop",
            m.name, a.condition
        )
    } else {
        format!("{}: draws from the prior predictive", m.name)
    };
    report(panels(plot, &title, &groups), plot)
}

/// One observed variable's posterior predictive summary: its draws' id, the summary, steps,
/// size and label.
pub struct Summarised<'a> {
    pub id: usize,
    pub summary: &'a Summary,
    pub steps: usize,
    pub size: usize,
    pub label: &'a str,
    /// Filtered one-step predictions (`<name>_onestep`), not reconstructions.
    pub one_step: bool,
}

/// The plot of `vic sample --posterior` for `seqs` sequences of `k` draws each.
pub fn posterior(
    a: &SampleArgs,
    x: &Summarised,
    drawn: &HashMap<usize, Vec<f32>>,
    (seqs, k): (usize, usize),
    plot: &Path,
) -> u8 {
    let (s, vt, size) = (x.summary, x.steps, x.size);
    let name = if x.one_step {
        x.label.strip_suffix("_onestep").unwrap_or(x.label)
    } else {
        x.label
    };
    let what = if x.one_step {
        "one-step predictions"
    } else {
        "posterior predictive"
    };
    let res = match a.image_shape.as_deref().and_then(parse_shape) {
        Some((h, w)) if h * w == size => {
            // Columns: sequences (static) or the first steps of sequence 1 (timed).
            let cols: Vec<(usize, usize)> = if vt == 1 {
                (0..seqs.min(MAX_COLS)).map(|i| (i, 0)).collect()
            } else {
                (0..vt.min(MAX_COLS)).map(|t| (0, t)).collect()
            };
            let heads: Vec<String> = cols
                .iter()
                .map(|&(i, t)| {
                    if vt == 1 {
                        format!("#{}", i + 1)
                    } else {
                        format!("t = {}", t + 1)
                    }
                })
                .collect();
            let pick = |c: usize| -> Vec<Vec<f64>> {
                cols.iter()
                    .map(|&(i, t)| {
                        (0..size)
                            .map(|e| {
                                s[(i * vt + t) * size + e].map_or(f64::NAN, |o| f64::from(o[c]))
                            })
                            .collect()
                    })
                    .collect()
            };
            let draw = |j: usize| -> Vec<Vec<f64>> {
                cols.iter()
                    .map(|&(i, t)| {
                        (0..size)
                            .map(|e| f64::from(drawn[&x.id][((j * seqs + i) * vt + t) * size + e]))
                            .collect()
                    })
                    .collect()
            };
            let rows = vec![
                ("data".to_string(), pick(0)),
                ("predictive mean".to_string(), pick(1)),
                ("draw 1".to_string(), draw(0)),
                ("draw 2".to_string(), draw(1)),
            ];
            image_grid(
                plot,
                &format!("{what} of {name} ({k} draws each)"),
                &heads,
                &rows,
                (h, w),
            )
        }
        Some((h, w)) => return shape_mismatch(h, w, name, size),
        None if vt > 1 => {
            // One panel per element; one colour per sequence: its data dashed, the predictive
            // mean solid over the central 90% interval.
            let groups = (0..size.min(MAX_PANELS))
                .map(|e| {
                    let mut lines = Vec::new();
                    for i in 0..seqs.min(2) {
                        let at = |t: usize| s[(i * vt + t) * size + e];
                        let series = |c: usize| -> Vec<(f64, f64)> {
                            (0..vt)
                                .filter_map(|t| at(t).map(|o| (t as f64 + 1.0, f64::from(o[c]))))
                                .collect()
                        };
                        let mut mean = Line::new(
                            format!("sequence {}: mean, 90% interval", i + 1),
                            series(1),
                            i,
                        );
                        mean.band = (0..vt)
                            .filter_map(|t| {
                                at(t).map(|o| (t as f64 + 1.0, f64::from(o[2]), f64::from(o[5])))
                            })
                            .collect();
                        lines.push(mean);
                        lines.push(
                            Line::new(format!("sequence {}: data", i + 1), series(0), i).dashed(),
                        );
                    }
                    Panel {
                        caption: if size > 1 {
                            format!("{name}[t], element {}", e + 1)
                        } else {
                            format!("{name}[t]")
                        },
                        x_desc: "step t".into(),
                        y_desc: name.to_string(),
                        lines,
                        marker: None,
                        clip_outliers: false,
                    }
                })
                .collect::<Vec<_>>();
            panels(
                plot,
                &format!("{what} of {name} ({k} draws per sequence)"),
                &groups,
            )
        }
        None if size == 1 => {
            // A static scalar: x is the example; the mean with its 90% interval beside the data.
            let n = seqs.min(MAX_EXAMPLES);
            let at = |i: usize| s[i];
            let series = |c: usize| -> Vec<(f64, f64)> {
                (0..n)
                    .filter_map(|i| at(i).map(|o| (i as f64 + 1.0, f64::from(o[c]))))
                    .collect()
            };
            let mut mean = Line::new("mean, 90% interval", series(1), 0).dots_only();
            mean.band = (0..n)
                .filter_map(|i| at(i).map(|o| (i as f64 + 1.0, f64::from(o[2]), f64::from(o[5]))))
                .collect();
            let panel = Panel {
                caption: if n == 1 {
                    format!("{name}, example 1")
                } else {
                    format!("{name}, examples 1–{n}")
                },
                x_desc: "example".into(),
                y_desc: name.to_string(),
                lines: vec![mean, Line::new("data", series(0), 1).dots_only()],
                marker: None,
                clip_outliers: false,
            };
            panels(
                plot,
                &format!("{what} of {name} ({k} draws per example)"),
                &[panel],
            )
        }
        None => {
            // A static vector: x is the element; one panel per sequence.
            let groups = (0..seqs.min(MAX_PANELS))
                .map(|i| {
                    let at = |e: usize| s[i * size + e];
                    let series = |c: usize| -> Vec<(f64, f64)> {
                        (0..size)
                            .filter_map(|e| at(e).map(|o| (e as f64 + 1.0, f64::from(o[c]))))
                            .collect()
                    };
                    let mut mean = Line::new("mean, 90% interval", series(1), 0);
                    mean.band = (0..size)
                        .filter_map(|e| {
                            at(e).map(|o| (e as f64 + 1.0, f64::from(o[2]), f64::from(o[5])))
                        })
                        .collect();
                    Panel {
                        caption: format!("{name}, sequence {}", i + 1),
                        x_desc: "element".into(),
                        y_desc: name.to_string(),
                        lines: vec![mean, Line::new("data", series(0), 0).dashed()],
                        marker: None,
                        clip_outliers: false,
                    }
                })
                .collect::<Vec<_>>();
            panels(
                plot,
                &format!("{what} of {name} ({k} draws per sequence)"),
                &groups,
            )
        }
    };
    report(res, plot)
}
