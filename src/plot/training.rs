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

/// The curves of `elbo.svg` as a run goes: the running means (0.95 / 0.05) of the ELBO and of
/// each term, kept at every `log_every`-th step and the last, and each evaluation. `vic run`'s
/// progress and the Python `fit` feed it the same way, so they draw the same picture.
#[derive(Debug, Clone, Default)]
pub struct CurveLog {
    running: Option<(f64, Vec<f64>)>,
    curve: Vec<(f64, f64)>,
    term_curves: Vec<Vec<(f64, f64)>>,
    eval: Vec<(f64, f64, f64)>,
}

impl CurveLog {
    /// An empty log of `terms` terms.
    pub fn new(terms: usize) -> CurveLog {
        CurveLog {
            term_curves: vec![Vec::new(); terms],
            ..CurveLog::default()
        }
    }

    /// A training step's ELBO and terms; `keep`: a point of the curves (a logged step).
    /// Returns the running means after it.
    pub fn stepped(&mut self, step: u64, elbo: f64, terms: &[f64], keep: bool) -> (f64, Vec<f64>) {
        self.running = Some(match self.running.take() {
            None => (elbo, terms.to_vec()),
            Some((e, ts)) => (
                0.95 * e + 0.05 * elbo,
                ts.iter()
                    .zip(terms)
                    .map(|(a, b)| 0.95 * a + 0.05 * b)
                    .collect(),
            ),
        });
        let (re, rt) = self.running.clone().unwrap_or_default();
        if keep {
            self.curve.push((step as f64, re));
            for (c, v) in self.term_curves.iter_mut().zip(&rt) {
                c.push((step as f64, *v));
            }
        }
        (re, rt)
    }

    /// Nothing logged yet.
    pub fn is_empty(&self) -> bool {
        self.curve.is_empty() && self.eval.is_empty()
    }

    /// An evaluation at `step`: its ELBO per sequence and standard error.
    pub fn evaluated(&mut self, step: u64, elbo: f64, stderr: f64) {
        self.eval.push((step as f64, elbo, stderr));
    }

    /// Draws the curves to an SVG at `path` ([`training`]), the terms named by `labels`.
    pub fn draw(
        &self,
        path: &Path,
        title: &str,
        eval_name: &str,
        labels: &[String],
    ) -> Result<(), String> {
        let terms: Vec<(String, Vec<(f64, f64)>)> = labels
            .iter()
            .cloned()
            .zip(self.term_curves.iter().cloned())
            .collect();
        training(
            path,
            &Curves {
                title,
                train: &self.curve,
                eval_name,
                eval: &self.eval,
                terms: &terms,
            },
        )
    }
}
