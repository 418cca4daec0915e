//! Per-step statistics and evaluation reports.

use crate::lower::Program;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
/// The statistics of one optimiser step.
pub struct StepStats {
    /// The step just taken (1-based).
    pub step: u64,
    /// Mean ELBO per sequence on this batch.
    pub elbo: f64,
    /// Mean value per sequence of each term (a KL as the non-negative KL).
    pub terms: Vec<f64>,
    /// The learning rate of the step.
    pub lr: f64,
    /// The global gradient norm (before clipping).
    pub grad_norm: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The mean entropy of the policy (control problems).
    pub policy_entropy: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
/// One ELBO term's estimate.
pub struct TermStat {
    /// The term's number in the `vic elbo` table (from 1).
    pub term: usize,
    /// Its readable name ([`crate::render::label::term_labels`]), e.g. `KL s (t ≥ 2)`.
    pub label: String,
    /// Its kind (`log-likelihood`, `KL`, …).
    pub kind: &'static str,
    /// The variable it belongs to.
    pub owner: String,
    /// +1 adds to the ELBO, −1 subtracts.
    pub sign: i8,
    /// Mean per sequence.
    pub mean: f64,
    /// Its standard error.
    pub stderr: f64,
}

#[derive(Clone, Debug, Serialize)]
/// An evaluation: the ELBO per sequence with its standard error, per term, and the evidence.
pub struct EvalReport {
    /// Sequences × samples evaluated.
    pub n: usize,
    /// Mean ELBO per sequence.
    pub elbo: f64,
    /// Standard error of the mean ELBO.
    pub stderr: f64,
    /// Each term, in the order of the ELBO.
    pub terms: Vec<TermStat>,
    /// log p(x) per sequence: exact (`"kalman"`, `"gaussian"`, `"forward"`) or the IWAE-K
    /// estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_evidence: Option<Evidence>,
    /// log p(x) − ELBO = E KL(q ‖ p(z | x)) (a lower bound on it when estimated by IWAE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
    /// The IWAE-K estimate when `--iwae K` was asked for beside an exact value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iwae: Option<Evidence>,
    /// Why the evidence is not exactly computable (when it is not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_note: Option<String>,
    /// Every draw's ELBO, and the sequence (data row) it belongs to, in evaluation order.
    #[serde(skip)]
    pub draws: Vec<f64>,
    #[serde(skip)]
    /// The row of each draw.
    pub draw_seq: Vec<usize>,
    /// The runtime that computed it: `"fused"` or `"reference"`.
    #[serde(skip)]
    pub runtime: &'static str,
}

#[derive(Clone, Debug, Serialize)]
/// An estimate of log p(x) per sequence.
pub struct Evidence {
    /// Mean over sequences.
    pub value: f64,
    /// 0 for an exact value; the estimator's standard error for IWAE.
    pub stderr: f64,
    /// `"kalman"`, `"gaussian"`, `"forward"` (a chain summed out: the bound is the evidence)
    /// or `"iwae-K"`.
    pub method: String,
}

#[derive(Clone, Debug, Serialize)]
/// log p(x) − ELBO, the expected KL(q ‖ p(z | x)).
pub struct Gap {
    /// The estimate.
    pub value: f64,
    /// Its standard error.
    pub stderr: f64,
}

impl EvalReport {
    /// The first quantity of the report that is NaN or infinite (a term, else the ELBO), so
    /// that no command prints a non-finite estimate as a result.
    pub fn non_finite(&self) -> Option<String> {
        self.terms
            .iter()
            .find(|t| !t.mean.is_finite())
            .map(|t| format!("term {} ({}) is {}", t.term, t.label, t.mean))
            .or_else(|| (!self.elbo.is_finite()).then(|| format!("the ELBO is {}", self.elbo)))
    }
}

/// The mean of `v` and its standard error (n − 1 in the variance).
pub fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, (var / n).sqrt())
}

impl EvalReport {
    /// The report of per-draw ELBOs `elbo` and per-term values `terms`.
    pub fn new(p: &Program, elbo: &[f64], terms: &[Vec<f64>]) -> EvalReport {
        let (m, se) = mean_se(elbo);
        let labels = crate::render::label::term_labels(&p.elbo);
        let terms = p
            .elbo
            .terms
            .iter()
            .zip(terms)
            .zip(labels)
            .enumerate()
            .map(|(i, ((t, v), label))| {
                let (tm, tse) = mean_se(v);
                TermStat {
                    term: i + 1,
                    label,
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
            log_evidence: None,
            gap: None,
            iwae: None,
            evidence_note: None,
            draws: elbo.to_vec(),
            draw_seq: Vec::new(),
            runtime: "reference",
        }
    }

    /// Attaches the exact evidence (per-sequence values, averaged). The gap is estimated
    /// per draw, log p(x_i) − ELBO_ij, so its standard error is the ELBO's Monte Carlo error
    /// around each sequence's exact value (the spread between sequences cancels).
    pub fn with_exact(mut self, method: &str, per_seq: &[f64]) -> EvalReport {
        let value = per_seq.iter().sum::<f64>() / per_seq.len().max(1) as f64;
        let paired: Option<Vec<f64>> = (self.draw_seq.len() == self.draws.len())
            .then(|| {
                self.draw_seq
                    .iter()
                    .zip(&self.draws)
                    .map(|(i, d)| per_seq.get(*i).map(|l| l - d))
                    .collect()
            })
            .flatten();
        let (gap, se) = match paired {
            Some(v) => mean_se(&v),
            None => (value - self.elbo, self.stderr),
        };
        self.gap = Some(Gap {
            value: gap,
            stderr: se,
        });
        self.log_evidence = Some(Evidence {
            value,
            stderr: 0.0,
            method: method.to_string(),
        });
        self
    }

    /// Attaches an IWAE-K estimate (an independent evaluation). Without an exact value it is
    /// the reported evidence, and the estimated gap is a lower bound on the true one (its
    /// standard error combines both estimates'); beside an exact value it is listed as `iwae`.
    pub fn with_iwae(mut self, k: usize, iwae: &EvalReport) -> EvalReport {
        let est = Evidence {
            value: iwae.elbo,
            stderr: iwae.stderr,
            method: format!("iwae-{k}"),
        };
        if self.log_evidence.is_some() {
            self.iwae = Some(est);
            return self;
        }
        // Draws of the same sequences in the same order: paired differences.
        let (value, stderr) =
            if iwae.draw_seq == self.draw_seq && iwae.draws.len() == self.draws.len() {
                let d: Vec<f64> = iwae
                    .draws
                    .iter()
                    .zip(&self.draws)
                    .map(|(a, b)| a - b)
                    .collect();
                mean_se(&d)
            } else {
                (
                    iwae.elbo - self.elbo,
                    (iwae.stderr.powi(2) + self.stderr.powi(2)).sqrt(),
                )
            };
        self.gap = Some(Gap { value, stderr });
        self.log_evidence = Some(Evidence {
            value: iwae.elbo,
            stderr: iwae.stderr,
            method: format!("iwae-{k}"),
        });
        self
    }

    /// A readable table.
    pub fn text(&self) -> String {
        let mut s = format!(
            "ELBO {:.4} ± {:.4} (standard error over {} draws)\n",
            self.elbo, self.stderr, self.n
        );
        let w = self
            .terms
            .iter()
            .map(|t| t.label.chars().count())
            .max()
            .unwrap_or(0);
        for t in &self.terms {
            s.push_str(&format!(
                "  {:>2}  {} {} {:>12.4} ± {:.4}\n",
                t.term,
                if t.sign < 0 { "−" } else { "+" },
                crate::render::pad_right(&t.label, w),
                t.mean,
                t.stderr
            ));
        }
        if let (Some(e), Some(g)) = (&self.log_evidence, &self.gap) {
            if let Some(k) = e.method.strip_prefix("iwae-") {
                s.push_str(&format!(
                    "log p    ≥ {:.4} ± {:.4} (IWAE, K = {k})\ngap      ≥ {:.4} ± {:.4} (IWAE − ELBO, a lower bound on KL(q ‖ p(z | x)))\n",
                    e.value, e.stderr, g.value, g.stderr
                ));
            } else {
                s.push_str(&format!(
                    "log p    {:.4} (exact, {})\ngap      {:.4} ± {:.4} (log p − ELBO = KL(q ‖ p(z | x)))\n",
                    e.value,
                    match e.method.as_str() {
                        "kalman" => "Kalman filter",
                        "forward" => "forward algorithm",
                        _ => "Gaussian marginal",
                    },
                    g.value,
                    g.stderr
                ));
            }
        }
        if let Some(e) = &self.iwae {
            s.push_str(&format!(
                "IWAE     {:.4} ± {:.4} ({})\n",
                e.value, e.stderr, e.method
            ));
        }
        if let Some(why) = &self.evidence_note {
            s.push_str(&format!("log p    not exact: {why}\n"));
        }
        s
    }
}
