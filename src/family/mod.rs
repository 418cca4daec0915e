//! Distribution families as data: one [`FamilySpec`] row per family, in one table.
//!
//! Every stage asks this table instead of matching on the family: the checker (names,
//! parameter count and names, positive-scale and ordered-bounds constraints, support, `.split`,
//! improper priors, bounded supports for KL support checks), derive (reparameterisable or
//! not and why, closed-form entropy, closed-form KL partners), and the renderers (names).
//! The reference kernels of a family (log-density, sampling, entropy, KL against each
//! partner) live in one file under `src/runtime/dist/`; `src/lower/dist.rs` dispatches to
//! them on the decision derive stored on the term. ARCHITECTURE.md walks through adding one.

pub use crate::forms::{EntropyForm, KlForm};

/// A distribution family of the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Diagonal Normal(loc, scale).
    Normal,
    /// Independent Bernoulli(logits).
    Bernoulli,
    /// Categorical(logits) over each one-hot group.
    Categorical,
    /// Uniform(low, high), elementwise.
    Uniform,
    /// The improper flat density (a prior only: `KL(q ‖ Flat) = −H[q]`).
    Flat,
    /// tanh(Normal(loc, scale)), with the tanh Jacobian.
    TanhNormal,
    /// Laplace(loc, scale), elementwise.
    Laplace,
    /// exp(Normal(loc, scale)), elementwise.
    LogNormal,
    /// StudentT(df, loc, scale), elementwise.
    StudentT,
    /// Gamma(concentration, rate), elementwise.
    Gamma,
    /// Beta(a, b) (torch's concentration1, concentration0), elementwise.
    Beta,
    /// Poisson(rate), elementwise: a likelihood of observed counts only.
    Poisson,
    /// MultivariateNormal(loc, scale_tril = L) over the whole event: `z = μ + L·ε`.
    MultivariateNormal,
}

/// How the parameters of a family are written and stored (`ir::DistArgs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgsKind {
    /// `(loc, scale)`, or one `.split(head)` of size 2·D.
    LocScale,
    /// `(logits)`.
    Logits,
    /// `(low, high)`.
    Bounds,
    /// The positional parameters in the row's order (`ir::DistArgs::Params`).
    Params,
    /// No parameters.
    None,
}

/// A constraint on one parameter that the checker proves for literal values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// Any real.
    Real,
    /// Strictly positive (a scale).
    Positive,
    /// Above the previous parameter (a `high` bound).
    AbovePrevious,
    /// A `D × D` lower-triangular matrix (or its `D²` values, row-major) for an event of size
    /// `D`: a MultivariateNormal's `scale_tril`.
    ScaleTril,
}

impl ParamSpec {
    /// The number of values this parameter holds per row, for a variable of size `size`.
    pub fn width(&self, size: usize) -> usize {
        match self.constraint {
            Constraint::ScaleTril => size * size,
            _ => size,
        }
    }
}

/// One parameter of a family: its name in messages and its constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// As error messages name it (`loc`, `scale`, `logits`, `low`, `high`).
    pub name: &'static str,
    /// What the checker proves of literal values.
    pub constraint: Constraint,
}

/// The value set of a family, against the variable types of the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Reals (`real[D]` or `unit[D]`).
    Real,
    /// `binary[D]`; an observed `unit[D]` too (grey pixels).
    Binary,
    /// `onehot[K]` or `onehot[G, K]`.
    OneHot,
}

impl Support {
    /// Which declarations fit, as a help line says it.
    pub fn fits(self) -> &'static str {
        match self {
            Support::Real => "`real[D]` or `unit[D]`",
            Support::Binary => {
                "`binary[D]` (or `unit[D]` for an observed variable with values in [0, 1])"
            }
            Support::OneHot => "`onehot[K]` or `onehot[G, K]`",
        }
    }
}

/// The interval a family's values lie in, for the checker's KL support rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bounded {
    /// All of ℝ.
    Unbounded,
    /// `[low, high]` from the parameters (Uniform).
    ByParams,
    /// A fixed interval (TanhNormal: (−1, 1)).
    Fixed(i8, i8),
    /// `(0, ∞)` (LogNormal, Gamma, Poisson).
    Positive,
    /// Not a real-valued family.
    NotReal,
}

/// One family, declared as data.
#[derive(Clone, Copy, Debug)]
pub struct FamilySpec {
    /// The family.
    pub family: Family,
    /// As written in a `.vmodel` and in messages.
    pub name: &'static str,
    /// How the parameters are stored.
    pub args: ArgsKind,
    /// The positional parameters, in order.
    pub params: &'static [ParamSpec],
    /// Whether `.split(head, scale = …, min = …)` is accepted (loc-scale heads).
    pub split: bool,
    /// The value set.
    pub support: Support,
    /// Improper: only a prior of a latent, never a likelihood or a q factor.
    pub improper: bool,
    /// The interval of its values (KL support rule).
    pub bounded: Bounded,
    /// `Some(why)` when samples are reparameterised by default (the estimator's reason);
    /// `None` for discrete families (enumeration or the score function).
    pub reparam: Option<&'static str>,
    /// The entropy in closed form, if there is one.
    pub entropy: Option<EntropyForm>,
    /// The closed forms of `KL(self ‖ p)`, by the family of `p`.
    pub kl: &'static [(Family, KlForm)],
    /// Only a likelihood of observed data (Poisson: no estimator samples it as a latent).
    pub likelihood_only: bool,
    /// Event shape: the parameter size for a variable of flattened size `D` (every family
    /// here is elementwise or per one-hot group, so parameters have the variable's size).
    pub event: &'static str,
}

const LOC: ParamSpec = ParamSpec {
    name: "loc",
    constraint: Constraint::Real,
};
const SCALE: ParamSpec = ParamSpec {
    name: "scale",
    constraint: Constraint::Positive,
};
const LOGITS: ParamSpec = ParamSpec {
    name: "logits",
    constraint: Constraint::Real,
};

/// The table: one row per family, in the enum's order.
pub const FAMILIES: [FamilySpec; 13] = [
    FamilySpec {
        family: Family::Normal,
        name: "Normal",
        args: ArgsKind::LocScale,
        params: &[LOC, SCALE],
        split: true,
        support: Support::Real,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::Unbounded,
        reparam: Some("location-scale: z = μ + σ·ε, ε ~ N(0, I)"),
        entropy: Some(EntropyForm::Normal),
        kl: &[(Family::Normal, KlForm::NormalNormal)],
        event: "loc and scale of size D (or scalars that broadcast)",
    },
    FamilySpec {
        family: Family::Bernoulli,
        name: "Bernoulli",
        args: ArgsKind::Logits,
        params: &[LOGITS],
        split: false,
        support: Support::Binary,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::NotReal,
        reparam: None,
        entropy: Some(EntropyForm::Bernoulli),
        kl: &[(Family::Bernoulli, KlForm::BernoulliBernoulli)],
        event: "logits of size D",
    },
    FamilySpec {
        family: Family::Categorical,
        name: "Categorical",
        args: ArgsKind::Logits,
        params: &[LOGITS],
        split: false,
        support: Support::OneHot,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::NotReal,
        reparam: None,
        entropy: Some(EntropyForm::Categorical),
        kl: &[(Family::Categorical, KlForm::CategoricalCategorical)],
        event: "logits of size G·K, a softmax per group of K",
    },
    FamilySpec {
        family: Family::Uniform,
        name: "Uniform",
        args: ArgsKind::Bounds,
        params: &[
            ParamSpec {
                name: "low",
                constraint: Constraint::Real,
            },
            ParamSpec {
                name: "high",
                constraint: Constraint::AbovePrevious,
            },
        ],
        split: false,
        support: Support::Real,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::ByParams,
        reparam: Some("location-scale: z = a + (b − a)·u, u ~ U(0, 1)"),
        entropy: Some(EntropyForm::Uniform),
        kl: &[(Family::Uniform, KlForm::UniformUniform)],
        event: "low and high of size D (or scalars that broadcast)",
    },
    FamilySpec {
        family: Family::Flat,
        name: "Flat",
        args: ArgsKind::None,
        params: &[],
        split: false,
        support: Support::Real,
        improper: true,
        likelihood_only: false,
        bounded: Bounded::Unbounded,
        reparam: Some("Flat is never sampled (checked)"),
        entropy: None,
        kl: &[],
        event: "no parameters",
    },
    FamilySpec {
        family: Family::TanhNormal,
        name: "TanhNormal",
        args: ArgsKind::LocScale,
        params: &[LOC, SCALE],
        split: true,
        support: Support::Real,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::Fixed(-1, 1),
        reparam: Some("transformed location-scale: z = tanh(μ + σ·ε)"),
        entropy: None,
        kl: &[],
        event: "loc and scale of size D (or scalars that broadcast)",
    },
    FamilySpec {
        family: Family::Laplace,
        name: "Laplace",
        args: ArgsKind::LocScale,
        params: &[LOC, SCALE],
        split: true,
        support: Support::Real,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::Unbounded,
        reparam: Some("location-scale: z = μ + b·ε, ε ~ Laplace(0, 1)"),
        entropy: Some(EntropyForm::Laplace),
        kl: &[(Family::Laplace, KlForm::LaplaceLaplace)],
        event: "loc and scale of size D (or scalars that broadcast)",
    },
    FamilySpec {
        family: Family::LogNormal,
        name: "LogNormal",
        args: ArgsKind::LocScale,
        params: &[LOC, SCALE],
        split: true,
        support: Support::Real,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::Positive,
        reparam: Some("transformed location-scale: z = exp(μ + σ·ε), ε ~ N(0, I)"),
        entropy: Some(EntropyForm::LogNormal),
        // KL is invariant under the bijection exp: it is the Normal KL of the logs.
        kl: &[(Family::LogNormal, KlForm::NormalNormal)],
        event: "loc and scale of size D (or scalars that broadcast)",
    },
    FamilySpec {
        family: Family::StudentT,
        name: "StudentT",
        args: ArgsKind::Params,
        params: &[
            ParamSpec {
                name: "df",
                constraint: Constraint::Positive,
            },
            LOC,
            SCALE,
        ],
        split: false,
        support: Support::Real,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::Unbounded,
        reparam: Some(
            "inverse CDF: z = μ + σ·F⁻¹_ν(u), u ~ U(0, 1); implicit gradient in ν (Figurnov et al. 2018)",
        ),
        entropy: Some(EntropyForm::StudentT),
        kl: &[],
        event: "df, loc and scale of size D (or scalars that broadcast)",
    },
    FamilySpec {
        family: Family::Gamma,
        name: "Gamma",
        args: ArgsKind::Params,
        params: &[
            ParamSpec {
                name: "concentration",
                constraint: Constraint::Positive,
            },
            ParamSpec {
                name: "rate",
                constraint: Constraint::Positive,
            },
        ],
        split: false,
        support: Support::Real,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::Positive,
        reparam: Some(
            "inverse CDF: z = P⁻¹(α, u)/β, u ~ U(0, 1); implicit gradient in α (Figurnov et al. 2018)",
        ),
        entropy: Some(EntropyForm::Gamma),
        kl: &[(Family::Gamma, KlForm::GammaGamma)],
        event: "concentration and rate of size D (or scalars that broadcast)",
    },
    FamilySpec {
        family: Family::Beta,
        name: "Beta",
        args: ArgsKind::Params,
        params: &[
            ParamSpec {
                name: "a",
                constraint: Constraint::Positive,
            },
            ParamSpec {
                name: "b",
                constraint: Constraint::Positive,
            },
        ],
        split: false,
        support: Support::Real,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::Fixed(0, 1),
        reparam: Some(
            "inverse CDF: z = I⁻¹(a, b, u), u ~ U(0, 1); implicit gradients in a, b (Figurnov et al. 2018)",
        ),
        entropy: Some(EntropyForm::Beta),
        kl: &[(Family::Beta, KlForm::BetaBeta)],
        event: "a and b of size D (or scalars that broadcast)",
    },
    FamilySpec {
        family: Family::Poisson,
        name: "Poisson",
        args: ArgsKind::Params,
        params: &[ParamSpec {
            name: "rate",
            constraint: Constraint::Positive,
        }],
        split: false,
        support: Support::Real,
        improper: false,
        likelihood_only: true,
        bounded: Bounded::Positive,
        reparam: None,
        entropy: None,
        kl: &[],
        event: "rate of size D (or a scalar that broadcasts)",
    },
    FamilySpec {
        family: Family::MultivariateNormal,
        name: "MultivariateNormal",
        args: ArgsKind::Params,
        params: &[
            LOC,
            ParamSpec {
                name: "scale_tril",
                constraint: Constraint::ScaleTril,
            },
        ],
        split: false,
        support: Support::Real,
        improper: false,
        likelihood_only: false,
        bounded: Bounded::Unbounded,
        reparam: Some("location-scale: z = μ + L·ε, ε ~ N(0, I), L lower-triangular"),
        entropy: Some(EntropyForm::MultivariateNormal),
        kl: &[(Family::MultivariateNormal, KlForm::MvnMvn)],
        event: "loc of size D (or a scalar that broadcasts) and scale_tril a D×D matrix (or its D² values, row-major) whose lower triangle is read",
    },
];

impl Family {
    /// This family's row of [`FAMILIES`].
    pub fn spec(self) -> &'static FamilySpec {
        &FAMILIES[self as usize]
    }
    /// The family written `name` in a `.vmodel`.
    pub fn from_name(name: &str) -> Option<Family> {
        FAMILIES.iter().find(|s| s.name == name).map(|s| s.family)
    }
    /// Every family's name, for a help line.
    pub fn names() -> String {
        FAMILIES
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// As written in a `.vmodel`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
    /// Reparameterisable by default (location-scale or transformed location-scale).
    pub fn is_reparameterisable(self) -> bool {
        self.spec().reparam.is_some()
    }
    /// Discrete support (enumeration or the score function).
    pub fn is_discrete(self) -> bool {
        matches!(self.spec().support, Support::Binary | Support::OneHot)
    }
    /// The closed form of `KL(self ‖ p)`, if the table lists `p` as a partner.
    pub fn kl_with(self, p: Family) -> Option<KlForm> {
        self.spec()
            .kl
            .iter()
            .find(|(f, _)| *f == p)
            .map(|(_, form)| *form)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_the_enum_order() {
        for (i, s) in FAMILIES.iter().enumerate() {
            assert_eq!(s.family as usize, i, "row {i} is {}", s.name);
            assert_eq!(Family::from_name(s.name), Some(s.family));
        }
        assert_eq!(Family::from_name("Weibull"), None);
    }

    #[test]
    fn kl_partners_are_looked_up_by_p() {
        assert_eq!(
            Family::Normal.kl_with(Family::Normal),
            Some(KlForm::NormalNormal)
        );
        assert_eq!(Family::Normal.kl_with(Family::Uniform), None);
        assert_eq!(Family::TanhNormal.kl_with(Family::TanhNormal), None);
    }
}
