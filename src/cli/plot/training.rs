//! `elbo.svg` of `vic run`: the ELBO per sequence over steps (training running mean, and the
//! evaluations with ± one standard error), and each ELBO term under it. Data in, picture out:
//! the caller names the terms.

use super::chart::{panels, Line, Panel};
use std::path::Path;

/// The curves of one run.
pub struct Curves<'a> {
    /// The plot's title (e.g. `vic run ssm`).
    pub title: &'a str,
    /// `(step, running mean of the training ELBO per sequence)`.
    pub train: &'a [(f64, f64)],
    /// What the evaluations scored (e.g. `held-out`, or `training data` without a split).
    pub eval_name: &'a str,
    /// `(step, mean ELBO per sequence, its standard error)` of each evaluation.
    pub eval: &'a [(f64, f64, f64)],
    /// `(readable name, (step, running mean))` of each ELBO term.
    pub terms: &'a [(String, Vec<(f64, f64)>)],
}

/// Draw the curves to an SVG at `path`.
/// Of several evaluations at one step (the last periodic one and the final one), the last is
/// drawn.
pub fn training(path: &Path, c: &Curves) -> Result<(), String> {
    let mut evals: Vec<(f64, f64, f64)> = Vec::new();
    for e in c.eval {
        match evals.last_mut() {
            Some(last) if last.0 == e.0 => *last = *e,
            _ => evals.push(*e),
        }
    }
    let mut eval = Line::new(
        format!("{} (± 1 s.e.)", c.eval_name),
        evals.iter().map(|e| (e.0, e.1)).collect(),
        1,
    );
    eval.dots = true;
    eval.band = evals.iter().map(|e| (e.0, e.1 - e.2, e.1 + e.2)).collect();
    let elbo = Panel {
        caption: "ELBO per sequence".into(),
        x_desc: "step".into(),
        y_desc: "ELBO (nats per sequence)".into(),
        lines: vec![
            Line::new("training (running mean)", c.train.to_vec(), 0),
            eval,
        ],
        marker: None,
        clip_outliers: true,
    };
    let terms = Panel {
        caption: "ELBO terms (running mean per sequence)".into(),
        x_desc: "step".into(),
        y_desc: "nats per sequence".into(),
        lines: c
            .terms
            .iter()
            .enumerate()
            .map(|(i, (n, p))| Line::new(n.clone(), p.clone(), i))
            .collect(),
        marker: None,
        clip_outliers: true,
    };
    let mut all = vec![elbo];
    if !c.terms.is_empty() {
        all.push(terms);
    }
    panels(path, c.title, &all)
}
