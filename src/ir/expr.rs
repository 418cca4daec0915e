//! Typed expressions of the IR. Every node carries its checked shape.

use super::{ConstId, NetId, ParamId, Shape, VarId};

/// Where in time a read points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeRef {
    /// A static variable.
    Static,
    /// `x[t-k]` in a general-case factor (`k = 0` is the same step).
    Lag(u32),
    /// `x[k]`: an absolute step (base cases; `k ≤ 0` reads an `init` value).
    Step(i64),
    /// `y[t+k]`, `k ≥ 1`: a later step of an observed or input variable, read by a general case
    /// of q (a smoothing window over data). Past the last step of the sequence it reads zeros.
    Lead(u32),
    /// `x[t:]`: the suffix, only inside a reverse-time net.
    Suffix,
    /// `x[:t]`: the prefix, only inside a forward net over time.
    Prefix,
}

/// An elementwise function of one operand (`-x` and the built-in functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-x`.
    Neg,
    /// `exp(x)`.
    Exp,
    /// `log(x)`, the natural logarithm.
    Log,
    /// `softplus(x) = log(1 + eˣ)`.
    Softplus,
    /// `tanh(x)`.
    Tanh,
    /// `sigmoid(x) = 1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `sin(x)`, in radians.
    Sin,
    /// `cos(x)`, in radians.
    Cos,
    /// `abs(x)`.
    Abs,
    /// `sqrt(x)`.
    Sqrt,
    /// `square(x) = x²`.
    Square,
    /// `relu(x) = max(0, x)`.
    Relu,
    /// Stop-gradient `sg(x)`.
    StopGrad,
}

impl UnOp {
    /// The function of a call name (`exp`, `sg`, …); `None` if it is not unary (`-` is parsed
    /// as an operator, not a name).
    pub fn parse(s: &str) -> Option<UnOp> {
        Some(match s {
            "exp" => UnOp::Exp,
            "log" => UnOp::Log,
            "softplus" => UnOp::Softplus,
            "tanh" => UnOp::Tanh,
            "sigmoid" => UnOp::Sigmoid,
            "sin" => UnOp::Sin,
            "cos" => UnOp::Cos,
            "abs" => UnOp::Abs,
            "sqrt" => UnOp::Sqrt,
            "square" => UnOp::Square,
            "relu" => UnOp::Relu,
            "sg" => UnOp::StopGrad,
            _ => return None,
        })
    }
    /// The map on one number (constant folding, exact evidence).
    pub fn eval(self, x: f64) -> f64 {
        match self {
            UnOp::Neg => -x,
            UnOp::Exp => x.exp(),
            UnOp::Log => x.ln(),
            UnOp::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            UnOp::Tanh => x.tanh(),
            UnOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnOp::Sin => x.sin(),
            UnOp::Cos => x.cos(),
            UnOp::Abs => x.abs(),
            UnOp::Sqrt => x.sqrt(),
            UnOp::Square => x * x,
            UnOp::Relu => x.max(0.0),
            UnOp::StopGrad => x,
        }
    }
    /// The function's source name (`-` for negation), for display.
    pub fn name(self) -> &'static str {
        match self {
            UnOp::Neg => "-",
            UnOp::Exp => "exp",
            UnOp::Log => "log",
            UnOp::Softplus => "softplus",
            UnOp::Tanh => "tanh",
            UnOp::Sigmoid => "sigmoid",
            UnOp::Sin => "sin",
            UnOp::Cos => "cos",
            UnOp::Abs => "abs",
            UnOp::Sqrt => "sqrt",
            UnOp::Square => "square",
            UnOp::Relu => "relu",
            UnOp::StopGrad => "sg",
        }
    }
}

pub use crate::parse::ast::BinOp;

/// A typed expression node; its shape is checked, so evaluation never sees a mismatch.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// The operation.
    pub kind: ExprKind,
    /// The shape of the node's value.
    pub shape: Shape,
}

/// An expression node's operation; operand shapes are proven compatible by the checker.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A number (scalar consts are folded in as numbers).
    Num(f64),
    /// A `const` array.
    Const(ConstId),
    /// A `param`.
    Param(ParamId),
    /// A read of a variable.
    Var {
        /// The variable.
        var: VarId,
        /// Which step of it.
        time: TimeRef,
    },
    /// An elementwise function.
    Unary {
        /// The function.
        op: UnOp,
        /// The operand.
        arg: Box<Expr>,
    },
    /// Elementwise `+ - * /` (a unit-sized operand broadcasts) or `@`.
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `dot(a, b)`: inner product of two equal-size vectors, a scalar.
    Dot(Box<Expr>, Box<Expr>),
    /// `sum(x)`: the sum of all elements, a scalar.
    Sum(Box<Expr>),
    /// `concat(a, b, …)`: vectors joined end to end.
    Concat(Vec<Expr>),
    /// Element `index` (0-based) of a vector.
    Select {
        /// The vector.
        arg: Box<Expr>,
        /// The index, `< size`.
        index: usize,
    },
    /// `clamp(x, low, high)`: elementwise `min(max(x, low), high)`.
    Clamp {
        /// The operand.
        arg: Box<Expr>,
        /// Lower bound (broadcasts).
        low: Box<Expr>,
        /// Upper bound (broadcasts).
        high: Box<Expr>,
    },
    /// A constant-filled vector or matrix (`zeros`, `ones`, `eye` is [`ExprKind::Eye`]).
    Fill(f64),
    /// `eye(n)`: the identity matrix, of the node's shape.
    Eye,
    /// A literal array, row-major.
    Array(Vec<f64>),
    /// An MLP applied to the concatenation of `args`.
    Net {
        /// The MLP.
        net: NetId,
        /// The inputs, concatenated in order.
        args: Vec<Expr>,
    },
    /// A GRU cell step: `hidden` is the previous state, `args` concatenate to the input.
    Gru {
        /// The GRU cell.
        net: NetId,
        /// The previous hidden state.
        hidden: Box<Expr>,
        /// The inputs, concatenated in order.
        args: Vec<Expr>,
    },
    /// A GRU over whole sequences (`TimeRef::Suffix`/`Prefix` reads), read at step `t`.
    Rnn {
        /// The forward or reverse-time GRU.
        net: NetId,
        /// The sequence reads (prefix or suffix), concatenated per step.
        seqs: Vec<Expr>,
    },
}

impl Expr {
    /// A node of `kind` with `shape` (the caller has checked it).
    pub fn new(kind: ExprKind, shape: Shape) -> Self {
        Expr { kind, shape }
    }
    /// The scalar number `v`.
    pub fn num(v: f64) -> Self {
        Expr::new(ExprKind::Num(v), Shape::scalar())
    }
    /// Direct children, left to right.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Num(_)
            | ExprKind::Const(_)
            | ExprKind::Param(_)
            | ExprKind::Var { .. }
            | ExprKind::Fill(_)
            | ExprKind::Eye
            | ExprKind::Array(_) => vec![],
            ExprKind::Unary { arg, .. } | ExprKind::Sum(arg) | ExprKind::Select { arg, .. } => {
                vec![arg]
            }
            ExprKind::Binary { lhs, rhs, .. } | ExprKind::Dot(lhs, rhs) => vec![lhs, rhs],
            ExprKind::Concat(xs)
            | ExprKind::Net { args: xs, .. }
            | ExprKind::Rnn { seqs: xs, .. } => xs.iter().collect(),
            ExprKind::Clamp { arg, low, high } => vec![arg, low, high],
            ExprKind::Gru { hidden, args, .. } => {
                std::iter::once(&**hidden).chain(args.iter()).collect()
            }
        }
    }
    /// Visit every node, parents before children (iterative: depth is bounded by the parser
    /// anyway, but this keeps the stack flat).
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            f(e);
            let mut ch = e.children();
            ch.reverse();
            stack.extend(ch);
        }
    }
    /// Distinct variable reads in order of first appearance.
    pub fn reads(&self) -> Vec<super::Read> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let ExprKind::Var { var, time } = e.kind {
                let r = super::Read { var, time };
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        });
        out
    }
    /// Whether any node is a stop-gradient.
    pub fn has_stop_grad(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| {
            if let ExprKind::Unary {
                op: UnOp::StopGrad, ..
            } = e.kind
            {
                found = true;
            }
        });
        found
    }
}
