//! Per-step statistics and evaluation reports.

use crate::lower::Program;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct StepStats {
    pub step: u64,
    /// Mean ELBO per sequence on this batch.
    pub elbo: f64,
    /// Mean value per sequence of each term (a KL as the non-negative KL).
    pub terms: Vec<f64>,
    pub lr: f64,
    pub grad_norm: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_entropy: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TermStat {
    pub term: usize,
    pub kind: &'static str,
    pub owner: String,
    /// +1 adds to the ELBO, −1 subtracts.
    pub sign: i8,
    pub mean: f64,
    pub stderr: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Sequences × samples evaluated.
    pub n: usize,
    pub elbo: f64,
    /// Standard error of the mean ELBO.
    pub stderr: f64,
    pub terms: Vec<TermStat>,
}

impl EvalReport {
    /// The first quantity of the report that is NaN or infinite (a term, else the ELBO), so
    /// that no command prints a non-finite estimate as a result.
    pub fn non_finite(&self) -> Option<String> {
        self.terms
            .iter()
            .find(|t| !t.mean.is_finite())
            .map(|t| format!("term {} ({} of {}) is {}", t.term, t.kind, t.owner, t.mean))
            .or_else(|| (!self.elbo.is_finite()).then(|| format!("the ELBO is {}", self.elbo)))
    }
}

pub fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, (var / n).sqrt())
}

impl EvalReport {
    pub fn new(p: &Program, elbo: &[f64], terms: &[Vec<f64>]) -> EvalReport {
        let (m, se) = mean_se(elbo);
        let terms = p
            .elbo
            .terms
            .iter()
            .zip(terms)
            .enumerate()
            .map(|(i, (t, v))| {
                let (tm, tse) = mean_se(v);
                TermStat {
                    term: i + 1,
                    kind: t.kind.name(),
                    owner: t.owner.clone(),
                    sign: t.kind.sign(),
                    mean: tm,
                    stderr: tse,
                }
            })
            .collect();
        EvalReport {
            n: elbo.len(),
            elbo: m,
            stderr: se,
            terms,
        }
    }

    /// A readable table.
    pub fn text(&self) -> String {
        let mut s = format!(
            "ELBO {:.4} ± {:.4} (standard error over {} draws)\n",
            self.elbo, self.stderr, self.n
        );
        for t in &self.terms {
            s.push_str(&format!(
                "  {:>2}  {} {:<15} {:<8} {:>12.4} ± {:.4}\n",
                t.term,
                if t.sign < 0 { "−" } else { "+" },
                t.kind,
                t.owner,
                t.mean,
                t.stderr
            ));
        }
        s
    }
}
