//! The abstract syntax tree: exactly what the user wrote, with a span on every node.
//! No names are resolved and no dimensions are known here; that is the checker's job.

use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelAst {
    pub name: Ident,
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleAst {
    Observed,
    Latent,
    Input,
    State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    P,
    Q,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TypeAst {
    /// `real`, `unit`, `binary` or `onehot`.
    pub name: Ident,
    /// Bracketed dimensions; empty for a scalar.
    pub dims: Vec<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Kwarg {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Pos(Expr),
    Kw(Kwarg),
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Pos(e) => e.span,
            Arg::Kw(k) => k.name.span.to(k.value.span),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetOpt {
    pub name: Ident,
    pub value: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetSpecAst {
    pub kind: Ident,
    /// Layer sizes, `in -> hidden… -> out`.
    pub sizes: Vec<Expr>,
    pub opts: Vec<NetOpt>,
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
pub struct Target {
    pub name: Ident,
    pub index: TargetIndex,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DistAst {
    pub family: Ident,
    /// `Normal.split(…)` has form `split`.
    pub form: Option<Ident>,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtAst {
    Sample {
        target: Target,
        dist: DistAst,
        span: Span,
    },
    Assign {
        target: Target,
        value: Expr,
        span: Span,
    },
}

impl StmtAst {
    pub fn target(&self) -> &Target {
        match self {
            StmtAst::Sample { target, .. } | StmtAst::Assign { target, .. } => target,
        }
    }
    pub fn span(&self) -> Span {
        match self {
            StmtAst::Sample { span, .. } | StmtAst::Assign { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SettingAst {
    pub key: Ident,
    /// `scale o = 2`: the term the setting applies to.
    pub subject: Option<Ident>,
    pub value: Expr,
    pub opts: Vec<Kwarg>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Dims(Vec<Binding>),
    Consts(Vec<Binding>),
    Param {
        name: Ident,
        ty: TypeAst,
        init: Option<Expr>,
        span: Span,
    },
    Var {
        role: RoleAst,
        name: Ident,
        timed: bool,
        ty: TypeAst,
        estimator: Option<Ident>,
        span: Span,
    },
    Net {
        name: Ident,
        spec: NetSpecAst,
        span: Span,
    },
    Init {
        name: Ident,
        index: i64,
        value: Expr,
        span: Span,
    },
    Optimality {
        name: Ident,
        timed: bool,
        args: Vec<Kwarg>,
        span: Span,
    },
    Data {
        path: String,
        span: Span,
    },
    Block {
        kind: BlockKind,
        stmts: Vec<StmtAst>,
        span: Span,
    },
    Objective {
        settings: Vec<SettingAst>,
        span: Span,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
}

impl BinOp {
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
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Num(f64),
    Name(Ident),
    Index {
        name: Ident,
        index: IndexAst,
    },
    Call {
        fun: Ident,
        args: Vec<Arg>,
    },
    Bin {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Neg(Box<Expr>),
    /// `e.k`: element `k` (0-based) of a vector.
    Select(Box<Expr>, usize),
    Array(Vec<Expr>),
}
