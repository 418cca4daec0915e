//! The closed-form KL table: which `KL(q ‖ p)` pairs are computed exactly.

use crate::ir::Family;
use serde::Serialize;

/// A closed-form `KL(q ‖ p)`: one per pair of families with a formula (the rows of the
/// KL table). Each variant's doc is its formula, summed over the event's elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KlForm {
    /// Σ log(σp/σq) + (σq² + (μq − μp)²) / (2σp²) − ½, over the diagonal.
    NormalNormal,
    /// Σ q log(q/p) + (1 − q) log((1 − q)/(1 − p)), from logits.
    BernoulliBernoulli,
    /// Σ_groups Σ_k q_k (log q_k − log p_k), from logits.
    CategoricalCategorical,
    /// log((b_p − a_p)/(b_q − a_q)) when [a_q, b_q] ⊆ [a_p, b_p], +∞ otherwise.
    UniformUniform,
    /// Σ log(bp/bq) + |μq − μp|/bp + (bq/bp)·exp(−|μq − μp|/bq) − 1.
    LaplaceLaplace,
}

impl KlForm {
    /// The formula in Unicode, as the step-by-step derivation (`render::steps`) shows it.
    pub fn formula(self) -> &'static str {
        match self {
            KlForm::NormalNormal => "Σᵢ log(σp,ᵢ/σq,ᵢ) + (σq,ᵢ² + (μq,ᵢ − μp,ᵢ)²)/(2σp,ᵢ²) − ½",
            KlForm::BernoulliBernoulli => {
                "Σᵢ πq,ᵢ log(πq,ᵢ/πp,ᵢ) + (1 − πq,ᵢ) log((1 − πq,ᵢ)/(1 − πp,ᵢ))"
            }
            KlForm::CategoricalCategorical => "Σ_g Σ_k πq,gk (log πq,gk − log πp,gk)",
            KlForm::UniformUniform => {
                "Σᵢ log((bp,ᵢ − ap,ᵢ)/(bq,ᵢ − aq,ᵢ))  (q's interval inside p's)"
            }
            KlForm::LaplaceLaplace => {
                "Σᵢ log(bp,ᵢ/bq,ᵢ) + |μq,ᵢ − μp,ᵢ|/bp,ᵢ + (bq,ᵢ/bp,ᵢ)·exp(−|μq,ᵢ − μp,ᵢ|/bq,ᵢ) − 1"
            }
        }
    }
}

impl KlForm {
    /// The formula as LaTeX math.
    pub fn formula_tex(self) -> &'static str {
        match self {
            KlForm::NormalNormal => {
                r"\sum_i \log\frac{\sigma_{p,i}}{\sigma_{q,i}} + \frac{\sigma_{q,i}^2 + (\mu_{q,i} - \mu_{p,i})^2}{2\sigma_{p,i}^2} - \frac{1}{2}"
            }
            KlForm::BernoulliBernoulli => {
                r"\sum_i \pi_{q,i} \log\frac{\pi_{q,i}}{\pi_{p,i}} + (1 - \pi_{q,i}) \log\frac{1 - \pi_{q,i}}{1 - \pi_{p,i}}"
            }
            KlForm::CategoricalCategorical => {
                r"\sum_g \sum_k \pi_{q,gk} (\log \pi_{q,gk} - \log \pi_{p,gk})"
            }
            KlForm::UniformUniform => r"\sum_i \log\frac{b_{p,i} - a_{p,i}}{b_{q,i} - a_{q,i}}",
            KlForm::LaplaceLaplace => {
                r"\sum_i \log\frac{b_{p,i}}{b_{q,i}} + \frac{|\mu_{q,i} - \mu_{p,i}|}{b_{p,i}} + \frac{b_{q,i}}{b_{p,i}} e^{-|\mu_{q,i} - \mu_{p,i}|/b_{q,i}} - 1"
            }
        }
    }
}

/// The closed form of `KL(q ‖ p)` for two families, if there is one. (`Flat` priors are
/// handled as entropies by the caller.)
pub fn closed_form(q: Family, p: Family) -> Option<KlForm> {
    q.kl_with(p)
}
