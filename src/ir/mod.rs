//! The model IR: what the checker proves about a `.vmodel`, in a form later stages can trust.
//!
//! Input: built only by `check`. Output: consumed by `derive`, `lower` and the renderers.
//! Invariants (established by the checker, relied on downstream):
//! - every name is resolved to an index (`VarId`, `NetId`, `ParamId`, `ConstId`);
//! - every expression carries its shape, and every operation's operand shapes agree
//!   (net inputs, distribution parameters, matmuls), so no tensor op can see a mismatch;
//! - every latent has a `p` factor for each time case; reads at lag `k` are covered by a
//!   base case or an `init` value; `p` never reads the future, and `q` reads it only through a
//!   reverse-time net;
//! - within one time step `p` and `q` are acyclic.
//!
//! Spans live beside the IR in [`ModelSpans`], never inside it, so IR equality and snapshots
//! do not change when only whitespace or comments do.

mod display;
mod expr;

pub use expr::*;

pub type VarId = usize;
pub type NetId = usize;
pub type ParamId = usize;
pub type ConstId = usize;
pub type FactorId = usize;

/// A shape: `[]` scalar, `[n]` vector, `[r, c]` matrix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn scalar() -> Shape {
        Shape(vec![])
    }
    pub fn vector(n: usize) -> Shape {
        Shape(vec![n])
    }
    pub fn matrix(r: usize, c: usize) -> Shape {
        Shape(vec![r, c])
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    pub fn is_matrix(&self) -> bool {
        self.0.len() == 2
    }
    /// A scalar or a one-element vector: broadcasts against anything in elementwise ops.
    pub fn is_unit(&self) -> bool {
        self.0.len() <= 1 && self.numel() == 1
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("scalar"),
            dims => write!(
                f,
                "[{}]",
                dims.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Data with a `p` factor: evidence.
    Observed,
    /// Exogenous data with no factor: the bound conditions on it.
    Input,
    /// Random and unobserved: has a `p` factor, and a `q` factor unless sampled from `p`.
    Latent,
    /// Deterministic: defined by `=` in `p` or `q`.
    State,
}

impl Role {
    pub fn keyword(self) -> &'static str {
        match self {
            Role::Observed => "observed",
            Role::Input => "input",
            Role::Latent => "latent",
            Role::State => "state",
        }
    }
}

/// The value set of a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VarType {
    Real {
        size: usize,
    },
    /// Reals in [0, 1] (grey pixels under a Bernoulli likelihood).
    Unit {
        size: usize,
    },
    Binary {
        size: usize,
    },
    /// `groups` categoricals of `classes` classes each, one-hot, flattened.
    OneHot {
        groups: usize,
        classes: usize,
    },
}

impl VarType {
    /// Flattened feature size.
    pub fn size(&self) -> usize {
        match *self {
            VarType::Real { size } | VarType::Unit { size } | VarType::Binary { size } => size,
            VarType::OneHot { groups, classes } => groups * classes,
        }
    }
    pub fn is_discrete(&self) -> bool {
        matches!(self, VarType::Binary { .. } | VarType::OneHot { .. })
    }
    /// The number of values of a discrete variable (`None` for continuous ones, or when it
    /// does not fit in a `u64`).
    pub fn support_size(&self) -> Option<u64> {
        match *self {
            VarType::Binary { size } => u32::try_from(size).ok().and_then(|s| 2u64.checked_pow(s)),
            VarType::OneHot { groups, classes } => u32::try_from(groups)
                .ok()
                .and_then(|g| (classes as u64).checked_pow(g)),
            _ => None,
        }
    }
    pub fn keyword(&self) -> &'static str {
        match self {
            VarType::Real { .. } => "real",
            VarType::Unit { .. } => "unit",
            VarType::Binary { .. } => "binary",
            VarType::OneHot { .. } => "onehot",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Estimator {
    Reparam,
    StraightThrough,
    Enumerate,
    ScoreFunction,
}

impl Estimator {
    pub fn parse(s: &str) -> Option<Estimator> {
        Some(match s {
            "reparam" => Estimator::Reparam,
            "straight_through" => Estimator::StraightThrough,
            "enumerate" => Estimator::Enumerate,
            "score_function" => Estimator::ScoreFunction,
            _ => return None,
        })
    }
    pub fn keyword(self) -> &'static str {
        match self {
            Estimator::Reparam => "reparam",
            Estimator::StraightThrough => "straight_through",
            Estimator::Enumerate => "enumerate",
            Estimator::ScoreFunction => "score_function",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    pub name: String,
    pub role: Role,
    /// Declared `x[t]`.
    pub timed: bool,
    pub ty: VarType,
    /// An explicit `via …` annotation; `None` means the derivation chooses.
    pub estimator: Option<Estimator>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dim {
    pub name: String,
    pub value: usize,
}

/// A constant array (scalars are folded into expressions as numbers).
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub name: String,
    pub shape: Shape,
    /// Row-major.
    pub values: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ParamInit {
    /// Every element this value.
    Fill(f64),
    /// Row-major values.
    Values(Vec<f64>),
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub shape: Shape,
    pub init: ParamInit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Relu,
    Tanh,
    Elu,
    Silu,
    Identity,
}

impl Activation {
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

#[derive(Clone, Debug, PartialEq)]
pub enum NetKind {
    /// Affine layers `sizes[0] -> … -> sizes[n]`, activation after each hidden layer.
    Mlp {
        sizes: Vec<usize>,
        activation: Activation,
    },
    /// A GRU cell `input -> hidden`, called `cell(h_prev, x…)`.
    Gru { input: usize, hidden: usize },
    /// A GRU run over a whole sequence, forward (`f(x[:t])`) or reverse-time (`f(x[t:])`).
    Rnn {
        input: usize,
        hidden: usize,
        reverse: bool,
    },
}

impl NetKind {
    pub fn output_size(&self) -> usize {
        match self {
            NetKind::Mlp { sizes, .. } => *sizes.last().unwrap_or(&0),
            NetKind::Gru { hidden, .. } | NetKind::Rnn { hidden, .. } => *hidden,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    pub name: String,
    pub kind: NetKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Block {
    P,
    Q,
}

impl Block {
    pub fn letter(self) -> &'static str {
        match self {
            Block::P => "p",
            Block::Q => "q",
        }
    }
}

/// Which time steps a factor covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeCase {
    /// A static variable.
    Static,
    /// A base case at one step.
    At(u32),
    /// The general case `x[t]`, for every `t ≥ k`.
    From(u32),
}

impl TimeCase {
    pub fn covers(self, step: u32) -> bool {
        match self {
            TimeCase::Static => true,
            TimeCase::At(k) => k == step,
            TimeCase::From(k) => step >= k,
        }
    }
}

pub use crate::family::Family;

/// How a `split` head's second half becomes a scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScaleFn {
    /// `softplus(x) + min`.
    Softplus { min: f64 },
    /// `exp(x) + min` (PyTorch-style `(μ, log σ)` heads).
    Exp { min: f64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum DistArgs {
    LocScale {
        loc: Expr,
        scale: Expr,
    },
    /// One head of size `2·D`: loc = first half, scale = `scale_fn`(second half).
    Split {
        head: Expr,
        scale_fn: ScaleFn,
    },
    Logits(Expr),
    Bounds {
        low: Expr,
        high: Expr,
    },
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dist {
    pub family: Family,
    pub args: DistArgs,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FactorBody {
    Sample(Dist),
    Define(Expr),
}

/// One read of a variable by a factor, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Read {
    pub var: VarId,
    pub time: TimeRef,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    pub block: Block,
    pub var: VarId,
    pub case: TimeCase,
    pub body: FactorBody,
    /// The distinct reads of the body, in order of first appearance: the conditioning set.
    pub parents: Vec<Read>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InitValue {
    pub var: VarId,
    /// ≤ 0.
    pub step: i64,
    pub value: Expr,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alpha {
    Fixed(f64),
    /// Tuned to a target entropy (SAC), starting from `init`.
    Auto {
        target: f64,
        init: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Optimality {
    pub name: String,
    pub timed: bool,
    pub reward: Expr,
    pub parents: Vec<Read>,
    pub alpha: Alpha,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KlWeight {
    Fixed(f64),
    /// Linear from `from` to `to` over `steps` optimiser steps, then constant.
    Anneal {
        from: f64,
        to: f64,
        steps: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeNatsPlacement {
    /// max(nats, KL) per latent element, before summing.
    PerElement,
    /// max(nats, mean over batch and time of the summed KL) — Dreamer.
    AfterMean,
    /// max(nats, KL of each step) per sequence step — PlaNet.
    PerStep,
}

impl FreeNatsPlacement {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "per_element" => Self::PerElement,
            "after_mean" => Self::AfterMean,
            "per_step" => Self::PerStep,
            _ => return None,
        })
    }
    pub fn keyword(self) -> &'static str {
        match self {
            Self::PerElement => "per_element",
            Self::AfterMean => "after_mean",
            Self::PerStep => "per_step",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FreeNats {
    pub nats: f64,
    pub placement: FreeNatsPlacement,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Objective {
    pub kl_weight: KlWeight,
    pub free_nats: Option<FreeNats>,
    /// Dreamer's KL balancing: weight on the prior side (`KL(sg(q) ‖ p)`).
    pub kl_balance: Option<f64>,
    /// Importance samples (IWAE bound when > 1).
    pub iwae: u32,
    /// Latent overshooting distance (1 = none).
    pub overshooting: u32,
    /// Per-term scales, keyed by the variable the term belongs to.
    pub scales: Vec<(VarOrOpt, f64)>,
    pub horizon: Option<u32>,
    pub batch: Option<u32>,
}

impl Default for Objective {
    fn default() -> Self {
        Objective {
            kl_weight: KlWeight::Fixed(1.0),
            free_nats: None,
            kl_balance: None,
            iwae: 1,
            overshooting: 1,
            scales: Vec::new(),
            horizon: None,
            batch: None,
        }
    }
}

/// A term's owner: a variable or an optimality variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VarOrOpt {
    Var(VarId),
    Opt(usize),
}

/// The checked model.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: String,
    pub dims: Vec<Dim>,
    pub consts: Vec<Const>,
    pub params: Vec<Param>,
    pub nets: Vec<Net>,
    pub vars: Vec<Var>,
    pub inits: Vec<InitValue>,
    pub factors: Vec<Factor>,
    pub optimality: Vec<Optimality>,
    pub objective: Objective,
    /// The default data file, relative to the model file.
    pub data: Option<String>,
}

impl Model {
    pub fn var_id(&self, name: &str) -> Option<VarId> {
        self.vars.iter().position(|v| v.name == name)
    }
    pub fn factors_of(
        &self,
        var: VarId,
        block: Block,
    ) -> impl Iterator<Item = (FactorId, &Factor)> {
        self.factors
            .iter()
            .enumerate()
            .filter(move |(_, f)| f.var == var && f.block == block)
    }
    pub fn has_q(&self, var: VarId) -> bool {
        self.factors_of(var, Block::Q).next().is_some()
    }
    /// Sequential models have a time-indexed variable.
    pub fn is_sequential(&self) -> bool {
        self.vars.iter().any(|v| v.timed)
    }
    /// Control problems: no observed data; the optimality variables carry the evidence.
    pub fn is_control(&self) -> bool {
        !self.vars.iter().any(|v| v.role == Role::Observed)
    }
    /// The largest lag any factor reads (1 for first-order Markov models).
    pub fn max_lag(&self) -> u32 {
        let reads = self
            .factors
            .iter()
            .flat_map(|f| f.parents.iter())
            .chain(self.optimality.iter().flat_map(|o| o.parents.iter()));
        reads
            .filter_map(|r| match r.time {
                TimeRef::Lag(k) => Some(k),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

/// Source spans for the IR's parts, index-aligned with the `Model`'s vectors.
#[derive(Clone, Debug, Default)]
pub struct ModelSpans {
    pub model: crate::span::Span,
    pub vars: Vec<crate::span::Span>,
    pub params: Vec<crate::span::Span>,
    pub nets: Vec<crate::span::Span>,
    pub factors: Vec<crate::span::Span>,
    pub optimality: Vec<crate::span::Span>,
    pub inits: Vec<crate::span::Span>,
    pub objective: Option<crate::span::Span>,
}
