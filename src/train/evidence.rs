//! The evidence beside an evaluation's ELBO: exact where p is linear-Gaussian
//! ([`crate::evidence`]) or its discrete chain is summed out (the bound is then log p(y)),
//! else the reason it is not (shared by `vic eval` and the Python
//! package's `Fit.evaluate`).

use super::{EvalReport, Trainer};
use crate::data::Dataset;

impl Trainer {
    /// `r` with the exact log evidence of `data` (default: the held-out split, else the
    /// training data) and the gap to the ELBO where p is linear-Gaussian; otherwise with
    /// `evidence_note` saying why there is none (`hint` appended to a model that has no
    /// exact evidence, e.g. how to ask for an importance-weighted estimate).
    pub fn with_exact_evidence(
        &self,
        mut r: EvalReport,
        data: Option<&Dataset>,
        hint: Option<&str>,
    ) -> EvalReport {
        let m = &self.program.model;
        if crate::derive::marginal::exact(m) {
            // The bound is log p(y) itself (a chain summed out by the forward algorithm):
            // every draw of a sequence is its exact evidence.
            // Every sequence must have a draw (a sequence without one would count as 0).
            let n = r.draw_seq.iter().max().map_or(0, |x| x + 1);
            let mut per_seq = vec![None; n];
            for (i, d) in r.draw_seq.iter().zip(&r.draws) {
                per_seq[*i] = Some(*d);
            }
            if let Some(per_seq) = per_seq.into_iter().collect::<Option<Vec<f64>>>() {
                if !per_seq.is_empty() {
                    return r.with_exact("forward", &per_seq);
                }
            }
        }
        match crate::evidence::structure(m) {
            Ok(method) => {
                let data = data.or(self.heldout.as_ref()).or(self.train.as_ref());
                let exact = data.ok_or_else(|| "no data".to_string()).and_then(|d| {
                    let params = crate::evidence::param_values(m, &self.store)?;
                    crate::evidence::log_evidence(m, &params, d)
                });
                match exact {
                    Ok(v) => r.with_exact(method.name(), &v),
                    Err(why) => {
                        r.evidence_note = Some(why);
                        r
                    }
                }
            }
            Err(why) => {
                r.evidence_note = Some(match hint {
                    None => why,
                    Some(h) => format!("{why}; {h}"),
                });
                r
            }
        }
    }
}
