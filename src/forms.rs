//! The bottom layer of forms: how a term is computed ([`Compute`]), the closed-form KLs
//! ([`KlForm`]) and entropies ([`EntropyForm`]), each with its formula, and the one
//! [`Activation`] enum the IR, the reference nets and the fused kernels share.
//!
//! Input: nothing (plain data). Output: the vocabulary `family` (whose rows name their closed
//! forms), `derive` (which decides each term's computation), `objective` (whose modifiers say
//! which computations they act on), `render` and the runtimes share. Invariant: this module
//! imports none of those, so none of them imports another through it (no family ↔ derive or
//! objective ↔ derive circle).

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
    /// Σ (αq − αp)ψ(αq) − ln Γ(αq) + ln Γ(αp) + αp(ln βq − ln βp) + αq(βp − βq)/βq.
    GammaGamma,
    /// Σ ln B(ap, bp) − ln B(aq, bq) + (aq − ap)ψ(aq) + (bq − bp)ψ(bq) + (ap − aq + bp − bq)ψ(aq + bq).
    BetaBeta,
    /// ½(‖Lp⁻¹Lq‖²_F + ‖Lp⁻¹(μp − μq)‖² − D) + Σ ln Lp,ii − Σ ln Lq,ii.
    MvnMvn,
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
            KlForm::GammaGamma => {
                "Σᵢ (αq,ᵢ − αp,ᵢ)ψ(αq,ᵢ) − log Γ(αq,ᵢ) + log Γ(αp,ᵢ) + αp,ᵢ log(βq,ᵢ/βp,ᵢ) + αq,ᵢ(βp,ᵢ − βq,ᵢ)/βq,ᵢ"
            }
            KlForm::MvnMvn => {
                "½(‖Lp⁻¹Lq‖²_F + ‖Lp⁻¹(μp − μq)‖² − D) + Σᵢ log Lp,ᵢᵢ − Σᵢ log Lq,ᵢᵢ"
            }
            KlForm::BetaBeta => {
                "Σᵢ log B(ap,ᵢ, bp,ᵢ) − log B(aq,ᵢ, bq,ᵢ) + (aq,ᵢ − ap,ᵢ)ψ(aq,ᵢ) + (bq,ᵢ − bp,ᵢ)ψ(bq,ᵢ) + (ap,ᵢ − aq,ᵢ + bp,ᵢ − bq,ᵢ)ψ(aq,ᵢ + bq,ᵢ)"
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
            KlForm::GammaGamma => {
                r"\sum_i (\alpha_{q,i} - \alpha_{p,i})\psi(\alpha_{q,i}) - \log\Gamma(\alpha_{q,i}) + \log\Gamma(\alpha_{p,i}) + \alpha_{p,i}\log\frac{\beta_{q,i}}{\beta_{p,i}} + \alpha_{q,i}\frac{\beta_{p,i} - \beta_{q,i}}{\beta_{q,i}}"
            }
            KlForm::MvnMvn => {
                r"\tfrac{1}{2}\left(\|L_p^{-1}L_q\|_F^2 + \|L_p^{-1}(\mu_p - \mu_q)\|^2 - D\right) + \sum_i \log L_{p,ii} - \sum_i \log L_{q,ii}"
            }
            KlForm::BetaBeta => {
                r"\sum_i \log\frac{B(a_{p,i}, b_{p,i})}{B(a_{q,i}, b_{q,i})} + (a_{q,i} - a_{p,i})\psi(a_{q,i}) + (b_{q,i} - b_{p,i})\psi(b_{q,i}) + (a_{p,i} - a_{q,i} + b_{p,i} - b_{q,i})\psi(a_{q,i} + b_{q,i})"
            }
        }
    }
}

/// A closed-form entropy, chosen by derive and evaluated by lower's dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntropyForm {
    /// Σ ½ + ½ log 2π + log σᵢ.
    Normal,
    /// Σ log(bᵢ − aᵢ).
    Uniform,
    /// Σ −π log π − (1 − π) log(1 − π), from logits.
    Bernoulli,
    /// Σ_g −Σ_k π_gk log π_gk, from logits.
    Categorical,
    /// Σ 1 + log 2bᵢ.
    Laplace,
    /// Σ μᵢ + ½ + ½ log 2π + log σᵢ.
    LogNormal,
    /// Σ (νᵢ+1)/2·(ψ((νᵢ+1)/2) − ψ(νᵢ/2)) + log(√νᵢ·B(νᵢ/2, ½)) + log σᵢ.
    StudentT,
    /// Σ αᵢ − log βᵢ + log Γ(αᵢ) + (1 − αᵢ)ψ(αᵢ).
    Gamma,
    /// Σ log B(aᵢ, bᵢ) − (aᵢ − 1)ψ(aᵢ) − (bᵢ − 1)ψ(bᵢ) + (aᵢ + bᵢ − 2)ψ(aᵢ + bᵢ).
    Beta,
    /// D/2·(1 + log 2π) + Σ log Lᵢᵢ.
    MultivariateNormal,
}

impl EntropyForm {
    /// The formula in Unicode.
    pub fn formula(self) -> &'static str {
        match self {
            EntropyForm::Normal => "Σᵢ ½ + ½ log 2π + log σᵢ",
            EntropyForm::Uniform => "Σᵢ log(bᵢ − aᵢ)",
            EntropyForm::Bernoulli => "Σᵢ −πᵢ log πᵢ − (1 − πᵢ) log(1 − πᵢ)",
            EntropyForm::Categorical => "Σ_g −Σ_k π_gk log π_gk",
            EntropyForm::Laplace => "Σᵢ 1 + log 2bᵢ",
            EntropyForm::LogNormal => "Σᵢ μᵢ + ½ + ½ log 2π + log σᵢ",
            EntropyForm::StudentT => {
                "Σᵢ (νᵢ+1)/2·(ψ((νᵢ+1)/2) − ψ(νᵢ/2)) + log(√νᵢ·B(νᵢ/2, ½)) + log σᵢ"
            }
            EntropyForm::MultivariateNormal => "D/2·(1 + log 2π) + Σᵢ log Lᵢᵢ",
            EntropyForm::Gamma => "Σᵢ αᵢ − log βᵢ + log Γ(αᵢ) + (1 − αᵢ)ψ(αᵢ)",
            EntropyForm::Beta => {
                "Σᵢ log B(aᵢ, bᵢ) − (aᵢ − 1)ψ(aᵢ) − (bᵢ − 1)ψ(bᵢ) + (aᵢ + bᵢ − 2)ψ(aᵢ + bᵢ)"
            }
        }
    }
}

/// How a term is computed: decided once by derive (from the family table, the bound and the
/// objective), read by `lower` and `fused::build`, which dispatch on it and never decide again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compute {
    /// `log p(x | …)` at the data.
    LogLikelihood,
    /// `KL(q ‖ p)` in this closed form (the rows are the non-negative KL).
    Kl(KlForm),
    /// `log p(z) − log q(z)` at q's sample (Monte Carlo).
    LogRatio,
    /// `H[q]` in this closed form.
    Entropy(EntropyForm),
    /// `−log q(z)` at q's sample (Monte Carlo entropy).
    EntropyMc,
    /// `r / α`.
    Reward,
    /// `log p(y[1:T])` with a discrete chain summed out of p by the log-space forward
    /// algorithm (`derive::marginal`).
    Forward,
}

impl Compute {
    /// A closed-form KL: the only kind the KL-shaping modifiers (free nats, balancing) act on.
    pub fn is_closed_kl(self) -> bool {
        matches!(self, Compute::Kl(_))
    }
    /// One of the terms standing for `−KL(q ‖ p)` (closed form, log-ratio or entropy).
    pub fn is_kl_like(self) -> bool {
        matches!(
            self,
            Compute::Kl(_) | Compute::LogRatio | Compute::Entropy(_) | Compute::EntropyMc
        )
    }
}

/// An MLP's hidden-layer activation: the IR's, the reference nets' (`runtime::nets::mlp`) and
/// the fused kernels' (`fused::graph::Act`) one enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `x` for `x > 0`, `eˣ − 1` otherwise.
    Elu,
    /// `x · sigmoid(x)`.
    Silu,
    /// No activation (`none`).
    Identity,
}

impl Activation {
    /// The activation of a keyword (`none` and `identity` both give [`Activation::Identity`]).
    pub fn parse(s: &str) -> Option<Activation> {
        Some(match s {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "elu" => Activation::Elu,
            "silu" => Activation::Silu,
            "none" | "identity" => Activation::Identity,
            _ => return None,
        })
    }
    /// The keyword (`Identity` is `none`).
    pub fn keyword(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Elu => "elu",
            Activation::Silu => "silu",
            Activation::Identity => "none",
        }
    }
}
