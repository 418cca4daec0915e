//! The abstract syntax tree: exactly what the user wrote, with a span on every node.
//! No names are resolved and no dimensions are known here; that is the checker's job.

use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
/// A name as written, with its span.
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
/// A whole `model NAME { … }`.
pub struct ModelAst {
    /// The model's name.
    pub name: Ident,
    /// Its declarations and blocks, in source order.
    pub items: Vec<Item>,
    /// The whole model.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The role of a declared variable.
pub enum RoleAst {
    /// `observed`: data.
    Observed,
    /// `latent`: inferred.
    Latent,
    /// `input`: given (actions, covariates), no factor.
    Input,
    /// `state`: deterministic, defined by `=`.
    State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A factorisation block.
pub enum BlockKind {
    /// `p { … }`: the generative model.
    P,
    /// `q { … }`: the posterior.
    Q,
}

#[derive(Clone, Debug, PartialEq)]
/// A type as written: `real[D]`, `unit[X]`, `binary`, `onehot[K]`.
pub struct TypeAst {
    /// `real`, `unit`, `binary` or `onehot`.
    pub name: Ident,
    /// Bracketed dimensions; empty for a scalar.
    pub dims: Vec<Expr>,
    /// The whole type.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
/// `name = value` in `dim` or `const`.
pub struct Binding {
    /// The name.
    pub name: Ident,
    /// Its value.
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
/// A keyword argument `name = value`.
pub struct Kwarg {
    /// The keyword.
    pub name: Ident,
    /// Its value.
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
/// A call argument.
pub enum Arg {
    /// Positional.
    Pos(Expr),
    /// Keyword.
    Kw(Kwarg),
}

impl Arg {
    /// The argument's span.
    pub fn span(&self) -> Span {
        match self {
            Arg::Pos(e) => e.span,
            Arg::Kw(k) => k.name.span.to(k.value.span),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
/// A net option, `name = value` or a bare flag.
pub struct NetOpt {
    /// The option.
    pub name: Ident,
    /// Its value, if any.
    pub value: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
/// A net specification: `mlp(X -> H -> Y, relu)`, `gru(…)`.
pub struct NetSpecAst {
    /// The net kind (`mlp`, `gru`, …).
    pub kind: Ident,
    /// Layer sizes, `in -> hidden… -> out`.
    pub sizes: Vec<Expr>,
    /// Options (`relu`, `reverse`, …).
    pub opts: Vec<NetOpt>,
    /// The whole specification.
    pub span: Span,
}

/// The index on the left of `~` or `=` in a block, or in `init x[0]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetIndex {
    /// No brackets: a static variable.
    None,
    /// `x[t]`: the general time case.
    T,
    /// `x[3]`: a base case (or an `init` index ≤ 0).
    At(i64),
}

#[derive(Clone, Debug, PartialEq)]
/// The left of `~` or `=`: a variable and its index.
pub struct Target {
    /// The variable.
    pub name: Ident,
    /// Its index.
    pub index: TargetIndex,
    /// The target.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
/// A distribution: `Normal(μ, σ)`, `Normal.split(h, scale = exp)`.
pub struct DistAst {
    /// The family (`Normal`, `Bernoulli`, …).
    pub family: Ident,
    /// `Normal.split(…)` has form `split`.
    pub form: Option<Ident>,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// The whole distribution.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
/// A statement of a `p` or `q` block.
pub enum StmtAst {
    /// `x ~ Dist(…)`: a factor.
    Sample {
        /// The variable.
        target: Target,
        /// Its distribution.
        dist: DistAst,
        /// The statement.
        span: Span,
    },
    /// `h[t] = expr`: a deterministic definition.
    Assign {
        /// The variable.
        target: Target,
        /// Its definition.
        value: Expr,
        /// The statement.
        span: Span,
    },
}

impl StmtAst {
    /// The variable the statement is about.
    pub fn target(&self) -> &Target {
        match self {
            StmtAst::Sample { target, .. } | StmtAst::Assign { target, .. } => target,
        }
    }
    /// The statement's span.
    pub fn span(&self) -> Span {
        match self {
            StmtAst::Sample { span, .. } | StmtAst::Assign { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
/// An `objective` setting: `iwae = 8`, `scale o = 2`, `free_nats = 1 (after_mean)`.
pub struct SettingAst {
    /// The setting's name.
    pub key: Ident,
    /// `scale o = 2`: the term the setting applies to.
    pub subject: Option<Ident>,
    /// Its value.
    pub value: Expr,
    /// Options after it.
    pub opts: Vec<Kwarg>,
    /// The setting.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The role of a factor statement in an `imagine` block.
pub enum ImagineRole {
    /// `policy a[t] ~ …`: the policy q(a_t | model state).
    Policy,
    /// `prior a[t] ~ …`: the action prior p(a_t | …).
    Prior,
}

#[derive(Clone, Debug, PartialEq)]
/// A factor statement of an `imagine` block: `policy a[t] ~ TanhNormal.split(actor(h[t], s[t]))`.
pub struct ImagineFactor {
    /// Policy or prior.
    pub role: ImagineRole,
    /// The `policy` / `prior` keyword.
    pub role_span: Span,
    /// The statement (always a `Sample`).
    pub stmt: StmtAst,
}

#[derive(Clone, Debug, PartialEq)]
/// A top-level item of a model.
pub enum Item {
    /// `dim A = 3, B = 4`.
    Dims(Vec<Binding>),
    /// `const c = 0.5`.
    Consts(Vec<Binding>),
    /// `param name : type = init`.
    Param {
        /// The parameter.
        name: Ident,
        /// Its type.
        ty: TypeAst,
        /// Its initial value (default 0).
        init: Option<Expr>,
        /// The declaration.
        span: Span,
    },
    /// `observed|latent|input|state x[t] : type via estimator`.
    Var {
        /// Its role.
        role: RoleAst,
        /// The variable.
        name: Ident,
        /// Whether it is time-indexed (`x[t]`).
        timed: bool,
        /// Its type.
        ty: TypeAst,
        /// An explicit estimator (`via …`).
        estimator: Option<Ident>,
        /// The declaration.
        span: Span,
    },
    /// `net name = spec`.
    Net {
        /// The net.
        name: Ident,
        /// Its specification.
        spec: NetSpecAst,
        /// The declaration.
        span: Span,
    },
    /// `init x[k] = value` (k ≤ 0).
    Init {
        /// The variable.
        name: Ident,
        /// The step k.
        index: i64,
        /// The value.
        value: Expr,
        /// The declaration.
        span: Span,
    },
    /// `optimality O[t](reward = …, alpha = …)`.
    Optimality {
        /// The optimality variable.
        name: Ident,
        /// Whether it is time-indexed.
        timed: bool,
        /// Its arguments.
        args: Vec<Kwarg>,
        /// The declaration.
        span: Span,
    },
    /// `data "file.npz"`.
    Data {
        /// The file, relative to the model file.
        path: String,
        /// The declaration.
        span: Span,
    },
    /// A `p { … }` or `q { … }` block.
    Block {
        /// Which one.
        kind: BlockKind,
        /// Its statements.
        stmts: Vec<StmtAst>,
        /// The block.
        span: Span,
    },
    /// `objective { … }`.
    Objective {
        /// Its settings.
        settings: Vec<SettingAst>,
        /// The block.
        span: Span,
    },
    /// `imagine { … }`: behaviour learning in imagination.
    Imagine {
        /// The `policy` and `prior` statements, in source order.
        factors: Vec<ImagineFactor>,
        /// The settings (`reward`, `alpha`, `critic`, `horizon`, `discount`, `lambda`, `start`).
        settings: Vec<SettingAst>,
        /// The block.
        span: Span,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A binary operator.
pub enum BinOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*` (elementwise).
    Mul,
    /// `/` (elementwise).
    Div,
    /// `@` (matrix product).
    MatMul,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
        }
    }
}

/// A time index inside an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexAst {
    /// `x[t]`, `x[t-1]` (offset −1), `x[t+1]` (offset +1).
    Shift(i64),
    /// `x[1]`: an absolute time step (or an element of a static vector: the checker decides).
    At(i64),
    /// `x[t:]`: the suffix t..T (only as the argument of a reverse-time net).
    Suffix,
    /// `x[:t]`: the prefix 1..t (only as the argument of a forward net over time).
    Prefix,
}

#[derive(Clone, Debug, PartialEq)]
/// An expression with its span.
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
/// The kinds of expression.
pub enum ExprKind {
    /// A number.
    Num(f64),
    /// A name (variable, parameter, constant, dim).
    Name(Ident),
    /// An indexed read `x[t-1]`, `x[1]`, `x[t:]`.
    Index {
        /// The name.
        name: Ident,
        /// The index.
        index: IndexAst,
    },
    /// A call: a function (`exp`, `softplus`, `dot`, …) or a net.
    Call {
        /// What is called.
        fun: Ident,
        /// Its arguments.
        args: Vec<Arg>,
    },
    /// A binary operation.
    Bin {
        /// The operator.
        op: BinOp,
        /// The left operand.
        lhs: Box<Expr>,
        /// The right operand.
        rhs: Box<Expr>,
    },
    /// Negation `-e`.
    Neg(Box<Expr>),
    /// `e.k`: element `k` (0-based) of a vector.
    Select(Box<Expr>, usize),
    /// A literal array `[a, b, …]`.
    Array(Vec<Expr>),
}
