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

/// Index into `Model::vars`.
pub type VarId = usize;
/// Index into `Model::nets`.
pub type NetId = usize;
/// Index into `Model::params`.
pub type ParamId = usize;
/// Index into `Model::consts`.
pub type ConstId = usize;
/// Index into `Model::factors`.
pub type FactorId = usize;

/// A shape: `[]` scalar, `[n]` vector, `[r, c]` matrix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// The shape `[]`.
    pub fn scalar() -> Shape {
        Shape(vec![])
    }
    /// The shape `[n]`.
    pub fn vector(n: usize) -> Shape {
        Shape(vec![n])
    }
    /// The shape `[r, c]` (row-major).
    pub fn matrix(r: usize, c: usize) -> Shape {
        Shape(vec![r, c])
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Two dimensions.
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

/// What a variable is to the model, from its declaration keyword.
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
    /// The declaration keyword (`observed`, `input`, `latent`, `state`).
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
    /// Unbounded reals.
    Real {
        /// Number of elements.
        size: usize,
    },
    /// Reals in [0, 1] (grey pixels under a Bernoulli likelihood).
    Unit {
        /// Number of elements.
        size: usize,
    },
    /// Values in {0, 1}.
    Binary {
        /// Number of elements.
        size: usize,
    },
    /// `groups` categoricals of `classes` classes each, one-hot, flattened.
    OneHot {
        /// Number of categoricals.
        groups: usize,
        /// Classes per categorical.
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
    /// Binary or one-hot: a finite support (enumerable, no reparameterisation).
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
    /// The type keyword as declared (`real`, `unit`, `binary`, `onehot`).
    pub fn keyword(&self) -> &'static str {
        match self {
            VarType::Real { .. } => "real",
            VarType::Unit { .. } => "unit",
            VarType::Binary { .. } => "binary",
            VarType::OneHot { .. } => "onehot",
        }
    }
}

/// How gradients flow through a latent's samples (the `via …` annotation, or the derivation's
/// choice in `derive::LatentEstimator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Estimator {
    /// Reparameterisation: the sample is a differentiable function of parameter-free noise.
    Reparam,
    /// Straight-through: a discrete sample in the forward pass, the probabilities' gradient in
    /// the backward pass.
    StraightThrough,
    /// Exact sum over every value of a small discrete support (no sampling).
    Enumerate,
    /// Score function (REINFORCE) with a learned baseline.
    ScoreFunction,
}

impl Estimator {
    /// The estimator of a `via` keyword; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Estimator> {
        Some(match s {
            "reparam" => Estimator::Reparam,
            "straight_through" => Estimator::StraightThrough,
            "enumerate" => Estimator::Enumerate,
            "score_function" => Estimator::ScoreFunction,
            _ => return None,
        })
    }
    /// The `via` keyword: `reparam`, `straight_through`, `enumerate` or `score_function`.
    pub fn keyword(self) -> &'static str {
        match self {
            Estimator::Reparam => "reparam",
            Estimator::StraightThrough => "straight_through",
            Estimator::Enumerate => "enumerate",
            Estimator::ScoreFunction => "score_function",
        }
    }
}

/// A declared random or deterministic variable.
#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    /// The declared name.
    pub name: String,
    /// Observed, input, latent or state.
    pub role: Role,
    /// Declared `x[t]`.
    pub timed: bool,
    /// Value set and flattened size.
    pub ty: VarType,
    /// An explicit `via …` annotation; `None` means the derivation chooses.
    pub estimator: Option<Estimator>,
}

/// A `dim`: a named size.
#[derive(Clone, Debug, PartialEq)]
pub struct Dim {
    /// The declared name.
    pub name: String,
    /// The size (≥ 1).
    pub value: usize,
}

/// A constant array (scalars are folded into expressions as numbers).
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    /// The declared name.
    pub name: String,
    /// The array's shape.
    pub shape: Shape,
    /// Row-major.
    pub values: Vec<f64>,
}

/// How a `param` is initialised.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamInit {
    /// Every element this value.
    Fill(f64),
    /// Row-major values.
    Values(Vec<f64>),
    /// Independent draws from `N(mean, std²)`.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation (≥ 0).
        std: f64,
    },
    /// Independent draws from `U(low, high)`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
}

/// A learned array declared with `param` (outside any net).
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// The declared name (stored as `param.<name>`).
    pub name: String,
    /// The array's shape.
    pub shape: Shape,
    /// Its initial value.
    pub init: ParamInit,
}

pub use crate::forms::Activation;

/// The architecture of a declared `net`; sizes are flattened feature sizes.
#[derive(Clone, Debug, PartialEq)]
pub enum NetKind {
    /// Affine layers `sizes[0] -> … -> sizes[n]`, activation after each hidden layer.
    Mlp {
        /// Layer sizes, input first, output last (at least two).
        sizes: Vec<usize>,
        /// Applied after every hidden layer, never after the output.
        activation: Activation,
    },
    /// A GRU cell `input -> hidden`, called `cell(h_prev, x…)`.
    Gru {
        /// Input features.
        input: usize,
        /// Hidden state size (the output size).
        hidden: usize,
    },
    /// A GRU run over a whole sequence, forward (`f(x[:t])`) or reverse-time (`f(x[t:])`).
    Rnn {
        /// Input features per step.
        input: usize,
        /// Hidden state size (the output size).
        hidden: usize,
        /// Reverse-time (`f(x[t:])`) rather than forward (`f(x[:t])`).
        reverse: bool,
    },
}

impl NetKind {
    /// Size of the net's output: the last layer of an MLP, the hidden size of a GRU.
    pub fn output_size(&self) -> usize {
        match self {
            NetKind::Mlp { sizes, .. } => *sizes.last().unwrap_or(&0),
            NetKind::Gru { hidden, .. } | NetKind::Rnn { hidden, .. } => *hidden,
        }
    }
}

/// A declared neural network (weights stored under `net.<name>.`).
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    /// The declared name.
    pub name: String,
    /// Its architecture.
    pub kind: NetKind,
}

/// The block a factor is written in: the generative model `p` or the posterior `q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Block {
    /// The model `p { … }`.
    P,
    /// The variational posterior `q { … }`.
    Q,
}

impl Block {
    /// `"p"` or `"q"`.
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
    /// Whether the case covers step `step` (`Static` covers every step).
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
    Softplus {
        /// Lower bound on the scale (≥ 0).
        min: f64,
    },
    /// `exp(x) + min` (PyTorch-style `(μ, log σ)` heads).
    Exp {
        /// Lower bound on the scale (≥ 0).
        min: f64,
    },
}

/// The arguments of a distribution, by parameterisation (the family table says which).
/// Every argument expression has the variable's size or is a unit that broadcasts.
#[derive(Clone, Debug, PartialEq)]
pub enum DistArgs {
    /// A location and a scale (Normal, Laplace, TanhNormal).
    LocScale {
        /// Location.
        loc: Expr,
        /// Scale (> 0).
        scale: Expr,
    },
    /// One head of size `2·D`: loc = first half, scale = `scale_fn`(second half).
    Split {
        /// The head: size `2·D` for an event of size `D`.
        head: Expr,
        /// How the second half becomes a scale.
        scale_fn: ScaleFn,
    },
    /// Logits (Bernoulli, Categorical): log-odds, or per-group unnormalised log-probabilities.
    Logits(Expr),
    /// Interval bounds (Uniform), elementwise `low < high`.
    Bounds {
        /// Lower bounds.
        low: Expr,
        /// Upper bounds.
        high: Expr,
    },
    /// The positional parameters in the family row's order (StudentT's df, loc, scale;
    /// Gamma's concentration, rate; Beta's a, b; Poisson's rate).
    Params(Vec<Expr>),
    /// No parameters (Flat).
    None,
}

/// A distribution: a family and its arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Dist {
    /// The family (a row of `family::FAMILIES`).
    pub family: Family,
    /// Its arguments; the checker proved their sizes and constraints.
    pub args: DistArgs,
}

/// What a factor does to its variable.
#[derive(Clone, Debug, PartialEq)]
pub enum FactorBody {
    /// `x ~ Dist(…)`: a random draw (or, for an observed variable, a likelihood).
    Sample(Dist),
    /// `x = expr`: a deterministic definition (states only).
    Define(Expr),
}

/// One read of a variable by a factor, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Read {
    /// The variable read.
    pub var: VarId,
    /// Which step of it.
    pub time: TimeRef,
}

/// One statement of a `p` or `q` block: draws or defines one variable over one time case.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    /// `p` or `q`.
    pub block: Block,
    /// The variable it draws or defines.
    pub var: VarId,
    /// The time steps it covers.
    pub case: TimeCase,
    /// The right-hand side.
    pub body: FactorBody,
    /// The distinct reads of the body, in order of first appearance: the conditioning set.
    pub parents: Vec<Read>,
}

/// An `init x[k] = value` statement: a timed variable's value at a step before the sequence
/// starts, read by lags at the first steps.
#[derive(Clone, Debug, PartialEq)]
pub struct InitValue {
    /// The variable (timed).
    pub var: VarId,
    /// ≤ 0.
    pub step: i64,
    /// The value; has the variable's size and reads no variable.
    pub value: Expr,
}

/// The temperature α of an optimality variable, `log p(O = 1 | r) = r / α`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alpha {
    /// A fixed α (> 0).
    Fixed(f64),
    /// Tuned to a target entropy (SAC), starting from `init`.
    Auto {
        /// Target entropy of the policy.
        target: f64,
        /// Initial α (> 0).
        init: f64,
    },
}

/// An optimality variable `O`: `log p(O = 1) = r / α`, the evidence of a control problem.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimality {
    /// The declared name.
    pub name: String,
    /// Declared `O[t]`: one reward per step.
    pub timed: bool,
    /// The reward: a scalar expression.
    pub reward: Expr,
    /// The distinct reads of the reward, in order of first appearance.
    pub parents: Vec<Read>,
    /// The temperature.
    pub alpha: Alpha,
}

/// The weight on the KL-like terms (`objective { kl_weight = … }`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KlWeight {
    /// A constant weight.
    Fixed(f64),
    /// Linear from `from` to `to` over `steps` optimiser steps, then constant.
    Anneal {
        /// Weight at step 0.
        from: f64,
        /// Weight from `steps` on.
        to: f64,
        /// Optimiser steps over which the weight moves.
        steps: u64,
    },
}

/// Where the free-nats floor is applied (`free_nats = n per_element | after_mean | per_step`).
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
    /// The placement of a keyword; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "per_element" => Self::PerElement,
            "after_mean" => Self::AfterMean,
            "per_step" => Self::PerStep,
            _ => return None,
        })
    }
    /// The keyword: `per_element`, `after_mean` or `per_step`.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::PerElement => "per_element",
            Self::AfterMean => "after_mean",
            Self::PerStep => "per_step",
        }
    }
}

/// A free-nats floor on closed-form KLs: a KL below `nats` gives no gradient.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FreeNats {
    /// The floor, in nats (≥ 0).
    pub nats: f64,
    /// Where the floor is taken.
    pub placement: FreeNatsPlacement,
}

/// The `objective { … }` settings; the default is the plain ELBO.
#[derive(Clone, Debug, PartialEq)]
pub struct Objective {
    /// Weight on the KL-like terms.
    pub kl_weight: KlWeight,
    /// Free nats on closed-form KLs (`None`: no floor).
    pub free_nats: Option<FreeNats>,
    /// Dreamer's KL balancing: weight on the prior side (`KL(sg(q) ‖ p)`).
    pub kl_balance: Option<f64>,
    /// Importance samples (IWAE bound when > 1).
    pub iwae: u32,
    /// Latent overshooting distance (1 = none).
    pub overshooting: u32,
    /// Per-term scales, keyed by the variable the term belongs to.
    pub scales: Vec<(VarOrOpt, f64)>,
    /// Steps per sequence when there is no data (control problems); `vic run --horizon`
    /// overrides it.
    pub horizon: Option<u32>,
    /// Default batch size (`vic run --batch` overrides it).
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

/// Where imagined rollouts start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImagineStart {
    /// From the posterior states q(s_t | …) of the data's sequences (Dreamer).
    Posterior,
    /// Known dynamics (`start = prior`): no world model to learn; rollouts start from the
    /// model's own initial distribution (p's static latents and first steps) and from states
    /// visited by rolling the policy in p (`crate::agent::known`).
    Prior,
}

/// Behaviour learning in imagination (`imagine { … }`): from posterior states of the data,
/// roll the learned p forward `horizon` steps with actions from the policy, the world model's
/// parameters frozen, and maximise the discounted control-as-inference bound, bootstrapped by
/// the critic through Dreamer's λ-return; the critic regresses on the λ-return.
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    /// The action: a time-indexed `input` of the world model (data), a latent in imagination.
    pub action: VarId,
    /// The policy q(a_t | model state).
    pub policy: Dist,
    /// What the policy reads.
    pub policy_parents: Vec<Read>,
    /// The action prior p(a_t | …): `Flat`, a fixed distribution, or a learned one.
    pub prior: Dist,
    /// What the prior reads.
    pub prior_parents: Vec<Read>,
    /// The reward r_t of the imagined optimality variable, log p(O_t = 1 | …) = r_t / α.
    pub reward: Expr,
    /// What the reward reads.
    pub reward_parents: Vec<Read>,
    /// The temperature α > 0.
    pub alpha: f64,
    /// The critic V(model state): a call of `critic_net`, output size 1.
    pub critic: Expr,
    /// The critic's net.
    pub critic_net: NetId,
    /// What the critic reads.
    pub critic_parents: Vec<Read>,
    /// The imagination horizon H ≥ 1.
    pub horizon: u32,
    /// The discount γ ∈ [0, 1].
    pub discount: f64,
    /// λ of the λ-return, in [0, 1].
    pub lambda: f64,
    /// Where rollouts start.
    pub start: ImagineStart,
    /// The learned continuation head (`continue = c`), when episodes can terminate: the
    /// imagined discount at step τ is γ·P(c_τ = 1 | model state).
    pub cont: Option<Continuation>,
    /// A discrete (one-hot) action drawn from a Categorical policy, its gradient by
    /// straight-through (`estimator = straight_through`: the one-hot sample forward, the
    /// softmax's gradient backward, through the frozen dynamics as DreamerV3).
    pub straight_through: bool,
}

/// A continuation head: a timed observed scalar `c[t] ~ Bernoulli(logits = f(state))` of the
/// world model (1 while the episode goes on, 0 on the last step of a terminated episode).
#[derive(Clone, Debug, PartialEq)]
pub struct Continuation {
    /// The observed flag `c`.
    pub var: VarId,
    /// P(c_τ = 1 | state_τ): `sigmoid(logits)` of its factor in p.
    pub prob: Expr,
    /// What the logits read (the model state).
    pub parents: Vec<Read>,
}

/// A term's owner: a variable or an optimality variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VarOrOpt {
    /// A variable.
    Var(VarId),
    /// An optimality variable: index into `Model::optimality`.
    Opt(usize),
}

/// The checked model.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The model's name.
    pub name: String,
    /// `dim` declarations.
    pub dims: Vec<Dim>,
    /// `const` arrays (scalar consts are folded into expressions).
    pub consts: Vec<Const>,
    /// `param` declarations.
    pub params: Vec<Param>,
    /// `net` declarations.
    pub nets: Vec<Net>,
    /// Variables, in declaration order.
    pub vars: Vec<Var>,
    /// `init` values.
    pub inits: Vec<InitValue>,
    /// Factors of `p` and `q`, in source order.
    pub factors: Vec<Factor>,
    /// Optimality variables.
    pub optimality: Vec<Optimality>,
    /// Objective settings.
    pub objective: Objective,
    /// The default data file, relative to the model file.
    pub data: Option<String>,
    /// Behaviour learning in imagination (`imagine { … }`), if the model declares it.
    pub behaviour: Option<Behaviour>,
}

impl Model {
    /// The id of the variable named `name`.
    pub fn var_id(&self, name: &str) -> Option<VarId> {
        self.vars.iter().position(|v| v.name == name)
    }
    /// The factors of `var` in `block`, with their ids, in source order.
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
    /// Whether `var` has a factor in `q`.
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
    /// The largest lead any factor reads (`y[t+k]` in q: a smoothing window over data; 0 when
    /// none).
    pub fn max_lead(&self) -> u32 {
        (self.factors.iter().flat_map(|f| f.parents.iter()))
            .filter_map(|r| match r.time {
                TimeRef::Lead(k) => Some(k),
                _ => None,
            })
            .max()
            .unwrap_or(0)
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
    /// The whole model declaration.
    pub model: crate::span::Span,
    /// Each variable's declaration.
    pub vars: Vec<crate::span::Span>,
    /// Each `param` declaration.
    pub params: Vec<crate::span::Span>,
    /// Each `net` declaration.
    pub nets: Vec<crate::span::Span>,
    /// Each factor statement.
    pub factors: Vec<crate::span::Span>,
    /// Each optimality declaration.
    pub optimality: Vec<crate::span::Span>,
    /// Each `init` statement.
    pub inits: Vec<crate::span::Span>,
    /// The `objective` block, if any.
    pub objective: Option<crate::span::Span>,
}
