//! Constant evaluation: dims, consts, sizes in types and nets, numeric settings.

use super::env::{Ck, Sym};
use crate::diag::{Code, Diagnostic};
use crate::ir::Shape;
use crate::parse::ast::{Arg, BinOp, Expr, ExprKind};
use crate::span::Span;

/// A constant value: a shape and row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct CVal {
    pub shape: Shape,
    pub values: Vec<f64>,
}

impl CVal {
    pub fn scalar(v: f64) -> CVal {
        CVal {
            shape: Shape::scalar(),
            values: vec![v],
        }
    }
    pub fn as_scalar(&self) -> Option<f64> {
        (self.values.len() == 1).then(|| self.values[0])
    }
}

impl Ck {
    /// Evaluate an expression that must be constant; reports `E076` (or a more specific code)
    /// and returns `None` otherwise.
    pub fn const_eval(&mut self, e: &Expr) -> Option<CVal> {
        match &e.kind {
            ExprKind::Num(v) => Some(CVal::scalar(*v)),
            ExprKind::Name(id) => {
                if let Some(v) = self.scalar_values.get(&id.name).copied() {
                    let sym = self.names.get(&id.name).map(|s| s.0);
                    if let Some(s) = sym {
                        self.used.insert(s);
                    }
                    return Some(CVal::scalar(v));
                }
                let sym = self.resolve(&id.clone())?;
                if self.poisoned.contains(&sym) {
                    return None; // its own fault is already reported
                }
                match sym {
                    Sym::Const(_) if !self.evaluated.contains(&sym) => {
                        let declared = self.names.get(&id.name).map(|n| n.1);
                        let mut d = Diagnostic::new(
                            Code::NotConstant,
                            format!("const `{}` is used before its declaration", id.name),
                        )
                        .label(e.span, "not yet declared");
                        if let Some(at) = declared.filter(|at| *at != id.span) {
                            d = d.label(at, "declared here");
                        }
                        self.err(d.help(format!(
                            "consts are evaluated in source order: move `const {} = …` above its first use",
                            id.name
                        )));
                        None
                    }
                    Sym::Const(c) => {
                        let c = &self.model.consts[c];
                        Some(CVal {
                            shape: c.shape.clone(),
                            values: c.values.clone(),
                        })
                    }
                    Sym::Dim(_) => {
                        self.not_constant(
                            e.span,
                            &format!("dim `{}` is used before its declaration", id.name),
                        );
                        None
                    }
                    other => {
                        self.not_constant(
                            e.span,
                            &format!("`{}` is {}, not a constant", id.name, other.describe()),
                        );
                        None
                    }
                }
            }
            ExprKind::Neg(a) => {
                let mut v = self.const_eval(a)?;
                v.values.iter_mut().for_each(|x| *x = -*x);
                Some(v)
            }
            ExprKind::Bin { op, lhs, rhs } => {
                let a = self.const_eval(lhs)?;
                let b = self.const_eval(rhs)?;
                if *op == BinOp::MatMul {
                    self.not_constant(e.span, "`@` is not evaluated in constant expressions");
                    return None;
                }
                let f = |x: f64, y: f64| match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    _ => x / y,
                };
                if a.values.len() == 1 {
                    Some(CVal {
                        shape: b.shape.clone(),
                        values: b.values.iter().map(|y| f(a.values[0], *y)).collect(),
                    })
                } else if b.values.len() == 1 {
                    Some(CVal {
                        shape: a.shape.clone(),
                        values: a.values.iter().map(|x| f(*x, b.values[0])).collect(),
                    })
                } else if a.shape == b.shape {
                    Some(CVal {
                        shape: a.shape.clone(),
                        values: a
                            .values
                            .iter()
                            .zip(&b.values)
                            .map(|(x, y)| f(*x, *y))
                            .collect(),
                    })
                } else {
                    self.err(
                        Diagnostic::new(
                            Code::DimMismatch,
                            format!(
                                "operands of `{}` have shapes {} and {}",
                                op.symbol(),
                                a.shape,
                                b.shape
                            ),
                        )
                        .label(e.span, "shapes differ")
                        .help("elementwise operators need equal shapes, or one scalar"),
                    );
                    None
                }
            }
            ExprKind::Array(items) => {
                let vals: Vec<CVal> = items
                    .iter()
                    .map(|x| self.const_eval(x))
                    .collect::<Option<_>>()?;
                let first = vals[0].shape.clone();
                if first.0.len() > 1 || vals.iter().any(|v| v.shape != first) {
                    self.err(
                        Diagnostic::new(Code::ParamInitShape, "array rows have different shapes")
                            .label(e.span, "ragged or too deeply nested array")
                            .help("write a vector `[1, 2]` or a matrix `[[1, 0], [0, 1]]` with equal rows"),
                    );
                    return None;
                }
                let mut shape = vec![vals.len()];
                shape.extend(first.0.iter());
                Some(CVal {
                    shape: Shape(shape),
                    values: vals.into_iter().flat_map(|v| v.values).collect(),
                })
            }
            ExprKind::Call { fun, args } => {
                let pos: Vec<&Expr> = args
                    .iter()
                    .filter_map(|a| match a {
                        Arg::Pos(e) => Some(e),
                        Arg::Kw(_) => None,
                    })
                    .collect();
                let unary = |name: &str| -> Option<fn(f64) -> f64> {
                    Some(match name {
                        "exp" => f64::exp,
                        "log" => f64::ln,
                        "sqrt" => f64::sqrt,
                        "sin" => f64::sin,
                        "cos" => f64::cos,
                        "tanh" => f64::tanh,
                        "abs" => f64::abs,
                        _ => return None,
                    })
                };
                if let (Some(f), [x]) = (unary(&fun.name), pos.as_slice()) {
                    let mut v = self.const_eval(x)?;
                    v.values.iter_mut().for_each(|x| *x = f(*x));
                    return Some(v);
                }
                match (fun.name.as_str(), pos.as_slice()) {
                    ("zeros" | "ones", [_] | [_, _]) | ("eye", [_]) => {
                        let dims: Vec<usize> = pos
                            .iter()
                            .map(|x| self.size_eval(x))
                            .collect::<Option<_>>()?;
                        let shape = if fun.name == "eye" {
                            Shape::matrix(dims[0], dims[0])
                        } else {
                            Shape(dims)
                        };
                        let n = shape.numel();
                        if n as u128 > crate::limits::MAX_CONST_ELEMENTS {
                            self.err(
                                Diagnostic::new(
                                    Code::TooLargeToAllocate,
                                    format!(
                                        "`{}(…)` of shape {shape} has {n} elements, more than {}",
                                        fun.name,
                                        crate::limits::MAX_CONST_ELEMENTS
                                    ),
                                )
                                .label(e.span, "too large to hold")
                                .help("check the sizes for a typo; a constant this large does not fit in memory"),
                            );
                            return None;
                        }
                        let values = match fun.name.as_str() {
                            "zeros" => vec![0.0; n],
                            "ones" => vec![1.0; n],
                            _ => (0..n)
                                .map(|i| f64::from(u8::from(i / shape.0[0] == i % shape.0[0])))
                                .collect(),
                        };
                        Some(CVal { shape, values })
                    }
                    _ => {
                        self.not_constant(
                            e.span,
                            &format!("`{}(…)` is not a constant expression", fun.name),
                        );
                        None
                    }
                }
            }
            ExprKind::Index { name, .. } => {
                self.not_constant(e.span, &format!("`{}[…]` is not a constant", name.name));
                None
            }
            ExprKind::Select(a, k) => {
                let v = self.const_eval(a)?;
                if *k >= v.values.len() || v.shape.0.len() > 1 {
                    self.err(
                        Diagnostic::new(
                            Code::SelectOutOfRange,
                            format!("element {k} of a value of shape {}", v.shape),
                        )
                        .label(e.span, "out of range")
                        .help("element indices are 0-based and select from vectors"),
                    );
                    return None;
                }
                Some(CVal::scalar(v.values[*k]))
            }
        }
    }

    fn not_constant(&mut self, span: Span, msg: &str) {
        self.err(
            Diagnostic::new(Code::NotConstant, format!("a constant was expected: {msg}"))
                .label(span, "not constant")
                .help("sizes, dims, consts and settings use numbers, dims, consts and arithmetic only"),
        );
    }

    /// A positive integer size (a dim, a net layer size, a type dimension).
    pub fn size_eval(&mut self, e: &Expr) -> Option<usize> {
        let v = self.const_eval(e)?;
        match v.as_scalar() {
            Some(x) if x >= 1.0 && x.fract() == 0.0 && x <= 1e9 => Some(x as usize),
            _ => {
                self.err(
                    Diagnostic::new(Code::BadDim, "a size must be a positive integer")
                        .label(
                            e.span,
                            match v.as_scalar() {
                                Some(x) => format!("this is {x}"),
                                None => format!("this has shape {}", v.shape),
                            },
                        )
                        .help("sizes are whole numbers ≥ 1, e.g. `dim H = 64` or `2*S`"),
                );
                None
            }
        }
    }

    /// A scalar constant, e.g. a setting.
    pub fn scalar_eval(&mut self, e: &Expr) -> Option<f64> {
        let v = self.const_eval(e)?;
        match v.as_scalar() {
            Some(x) => Some(x),
            None => {
                self.err(
                    Diagnostic::new(
                        Code::NotConstant,
                        format!("a scalar was expected, found shape {}", v.shape),
                    )
                    .label(e.span, "not a scalar")
                    .help("write a single number"),
                );
                None
            }
        }
    }
}
