//! Expression typing: AST expressions → IR expressions with shapes. Every size rule that
//! dfdx would otherwise enforce with a panic is checked here (`E050`–`E060`).

use super::env::{Ck, Sym};
use crate::diag::{Code, Diagnostic};
use crate::ir::{self, Block, ExprKind as K, NetKind, Role, Shape, TimeRef, UnOp};
use crate::parse::ast::{Arg, BinOp, Expr, ExprKind, IndexAst};
use crate::span::Span;

/// Where an expression sits, which decides what it may read and what `t` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Time {
    /// A static factor: may read static variables only.
    Static,
    /// A base case at step `k`: `t` means `k`.
    Base(u32),
    /// The general case for `t ≥ k`.
    General(u32),
}

#[derive(Clone, Copy, Debug)]
pub struct Cx {
    /// `None` for optimality rewards and init values.
    pub block: Option<Block>,
    pub time: Time,
    /// Inside the argument list of a net over time: `Some(reverse)`.
    pub seq: Option<bool>,
    /// Init values: no variable reads at all.
    pub no_vars: bool,
}

const FUNCTIONS: &str = "exp, log, softplus, tanh, sigmoid, sin, cos, abs, sqrt, square, relu, sg, dot, sum, concat, clamp, zeros, ones, eye";

impl Ck {
    /// Check a source expression in context `cx` and lower it to a typed IR expression with its
    /// shape; `None` after reporting an error (unknown name, wrong time index, size mismatch, …).
    pub fn expr(&mut self, e: &Expr, cx: Cx) -> Option<ir::Expr> {
        match &e.kind {
            ExprKind::Num(v) => Some(ir::Expr::num(*v)),
            ExprKind::Name(id) => {
                if let Some(v) = self.scalar_values.get(&id.name).copied() {
                    self.resolve(id);
                    return Some(ir::Expr::num(v));
                }
                let sym = self.resolve(id)?;
                if self.poisoned.contains(&sym) {
                    return None; // its own fault is already reported
                }
                match sym {
                    Sym::Const(c) => Some(ir::Expr::new(K::Const(c), self.model.consts[c].shape.clone())),
                    Sym::Param(p) => Some(ir::Expr::new(K::Param(p), self.model.params[p].shape.clone())),
                    Sym::Var(v) => {
                        if self.var(v).timed {
                            let name = id.name.clone();
                            self.err(
                                Diagnostic::new(Code::TimeIndexMismatch, format!("`{name}` is time-indexed but read without a time index"))
                                    .label(e.span, "needs an index")
                                    .help(format!("write `{name}[t]` for the current step or `{name}[t-1]` for the previous one")),
                            );
                            return None;
                        }
                        self.read_var(v, TimeRef::Static, e.span, cx)
                    }
                    Sym::Net(_) => self.wrong_kind(e.span, &id.name, "a net", "call it: `f(x)`"),
                    Sym::Opt(_) => self.wrong_kind(e.span, &id.name, "an optimality variable", "optimality variables are evidence, not values; read the reward expression instead"),
                    Sym::Dim(_) => self.wrong_kind(e.span, &id.name, "a dim declared later", "declare dims before using them"),
                }
            }
            ExprKind::Index { name, index } => self.index(e, name, *index, cx),
            ExprKind::Neg(a) => {
                let a = self.expr(a, cx)?;
                let shape = a.shape.clone();
                Some(ir::Expr::new(
                    K::Unary {
                        op: UnOp::Neg,
                        arg: Box::new(a),
                    },
                    shape,
                ))
            }
            ExprKind::Bin { op, lhs, rhs } => {
                let (a, b) = (self.expr(lhs, cx), self.expr(rhs, cx));
                let (a, b) = (a?, b?);
                let shape = if *op == BinOp::MatMul {
                    self.matmul_shape(&a.shape, &b.shape, e.span, lhs.span, rhs.span)?
                } else {
                    self.broadcast(op.symbol(), &a.shape, &b.shape, e.span, lhs.span, rhs.span)?
                };
                Some(ir::Expr::new(
                    K::Binary {
                        op: *op,
                        lhs: Box::new(a),
                        rhs: Box::new(b),
                    },
                    shape,
                ))
            }
            ExprKind::Select(a, k) => {
                let inner = self.expr(a, cx)?;
                if inner.shape.is_matrix() || *k >= inner.shape.numel() {
                    self.err(
                        Diagnostic::new(
                            Code::SelectOutOfRange,
                            format!("element {k} of a value of shape {}", inner.shape),
                        )
                        .label(
                            e.span,
                            format!(
                                "valid indices are 0..{}",
                                inner.shape.numel().saturating_sub(1)
                            ),
                        )
                        .help("element indices are 0-based and select from vectors"),
                    );
                    return None;
                }
                Some(ir::Expr::new(
                    K::Select {
                        arg: Box::new(inner),
                        index: *k,
                    },
                    Shape::vector(1),
                ))
            }
            ExprKind::Array(_) => {
                let v = self.const_eval(e)?;
                Some(ir::Expr::new(K::Array(v.values), v.shape))
            }
            ExprKind::Call { fun, args } => self.call(e, fun, args, cx),
        }
    }

    fn wrong_kind(&mut self, span: Span, name: &str, what: &str, help: &str) -> Option<ir::Expr> {
        self.err(
            Diagnostic::new(Code::WrongKind, format!("`{name}` is {what}, not a value"))
                .label(span, what.to_string())
                .help(help.to_string()),
        );
        None
    }

    fn index(
        &mut self,
        e: &Expr,
        name: &crate::parse::ast::Ident,
        index: IndexAst,
        cx: Cx,
    ) -> Option<ir::Expr> {
        let sym = self.resolve(name)?;
        if self.poisoned.contains(&sym) {
            return None;
        }
        let v = match sym {
            Sym::Var(v) => v,
            other => {
                self.err(
                    Diagnostic::new(
                        Code::WrongKind,
                        format!(
                            "`{}` is {} and cannot take a time index",
                            name.name,
                            other.describe()
                        ),
                    )
                    .label(e.span, "indexed here")
                    .help(format!(
                        "only variables declared `[t]` have steps; read it as `{0}`, or select an element with `{0}.k` (0-based)",
                        name.name
                    )),
                );
                return None;
            }
        };
        if !self.var(v).timed {
            self.err(
                Diagnostic::new(
                    Code::TimeIndexMismatch,
                    format!("`{}` is static but read with a time index", name.name),
                )
                .label(e.span, "static variable")
                .help(format!(
                    "read it as `{}`, or declare it `{}[t]` if it changes over time",
                    name.name, name.name
                )),
            );
            return None;
        }
        let time = match (index, cx.time) {
            (IndexAst::Suffix | IndexAst::Prefix, _) => {
                let want_reverse = index == IndexAst::Suffix;
                match cx.seq {
                    Some(rev) if rev == want_reverse => {
                        if want_reverse {
                            TimeRef::Suffix
                        } else {
                            TimeRef::Prefix
                        }
                    }
                    Some(rev) => {
                        // An argument of a net over time, but of the other direction.
                        let (read, dir, want) = if want_reverse {
                            ("t:", "forward", "the past `{0}[:t]`; to read the future `{0}[t:]` declare a net `rnn(… , reverse)`")
                        } else {
                            (":t", "reverse", "the future `{0}[t:]`; to read the past `{0}[:t]` declare a forward net `rnn(…)`")
                        };
                        debug_assert_eq!(rev, !want_reverse);
                        self.err(
                            Diagnostic::new(
                                Code::BadSequenceRead,
                                format!("a {dir} net over time is given `{}[{read}]`", name.name),
                            )
                            .label(e.span, "wrong direction")
                            .help(format!(
                                "a {dir} net reads {}",
                                want.replace("{0}", &name.name)
                            )),
                        );
                        return None;
                    }
                    None => {
                        let (form, net) = if want_reverse {
                            ("x[t:]", "rnn(… , reverse)")
                        } else {
                            ("x[:t]", "rnn(…)")
                        };
                        self.err(
                            Diagnostic::new(Code::BadSequenceRead, format!("the sequence read `{}{}` is only valid as the argument of a net over time", name.name, if want_reverse { "[t:]" } else { "[:t]" }))
                                .label(e.span, "whole-sequence read here")
                                .help(format!("`{form}` must be an argument of a net declared `{net}`")),
                        );
                        return None;
                    }
                }
            }
            (_, Time::Static) => {
                self.err(
                    Diagnostic::new(Code::StaticReadsTimed, format!("a static factor reads the time-indexed `{}`", name.name))
                        .label(e.span, "time-indexed")
                        .help("a static variable cannot depend on one step; summarise the sequence with a net over time, or make the variable time-indexed"),
                );
                return None;
            }
            (IndexAst::At(k), _) => TimeRef::Step(k),
            (IndexAst::Shift(s), _) if s.unsigned_abs() > crate::limits::MAX_LAG => {
                self.err(
                    Diagnostic::new(
                        Code::TooLargeToAllocate,
                        format!(
                            "the shift t{s:+} is longer than {} steps",
                            crate::limits::MAX_LAG
                        ),
                    )
                    .label(e.span, "this lag")
                    .help(
                        "a model reads a bounded past; check the number for a typo (e.g. `s[t-1]`)",
                    ),
                );
                return None;
            }
            (IndexAst::Shift(s), Time::Base(k)) => TimeRef::Step(i64::from(k) + s),
            // In range: |s| ≤ MAX_LAG < 2³².
            (IndexAst::Shift(s), Time::General(_)) if s <= 0 => {
                TimeRef::Lag(s.unsigned_abs() as u32)
            }
            // q may read observed and input data ahead (a smoothing window); latents and
            // states stay causal.
            (IndexAst::Shift(s), Time::General(_))
                if cx.block == Some(Block::Q)
                    && matches!(self.var(v).role, Role::Observed | Role::Input) =>
            {
                TimeRef::Lead(s as u32)
            }
            (IndexAst::Shift(s), Time::General(_)) => {
                self.future(e.span, &name.name, &format!("t+{s}"), cx);
                return None;
            }
        };
        if cx.seq.is_some() && !matches!(time, TimeRef::Suffix | TimeRef::Prefix) {
            self.err(
                Diagnostic::new(
                    Code::BadSequenceRead,
                    "a net over time takes whole-sequence reads",
                )
                .label(e.span, "a single step")
                .help(format!(
                    "pass `{0}[t:]` to a reverse net or `{0}[:t]` to a forward one",
                    name.name
                )),
            );
            return None;
        }
        if let (TimeRef::Step(s), Time::Base(k)) = (time, cx.time) {
            if s > i64::from(k) {
                self.future(e.span, &name.name, &s.to_string(), cx);
                return None;
            }
        }
        self.read_var(v, time, e.span, cx)
    }

    fn future(&mut self, span: Span, name: &str, at: &str, cx: Cx) {
        let d = match cx.block {
            Some(Block::Q) => Diagnostic::new(Code::FutureInQ, format!("q reads the future `{name}[{at}]`"))
                .label(span, "a later step")
                .help("q reads latents and states only up to step t; observed and input data it may read ahead in a general case (`y[t+1]`), or summarise the future with a reverse-time net: `net back = rnn(… , reverse)` and `back(y[t:])`"),
            _ => Diagnostic::new(Code::FutureInP, format!("the generative model reads the future `{name}[{at}]`"))
                .label(span, "a later step")
                .help("p factorises forward in time: a factor at step t may read steps ≤ t only"),
        };
        self.err(d);
    }

    fn read_var(&mut self, v: usize, time: TimeRef, span: Span, cx: Cx) -> Option<ir::Expr> {
        let var = self.var(v).clone();
        if cx.no_vars {
            self.err(
                Diagnostic::new(
                    Code::NotConstant,
                    format!(
                        "`{}` is a variable; this value must not depend on variables",
                        var.name
                    ),
                )
                .label(span, "variable read")
                .help(
                    "init values and param initialisers use numbers, consts, dims and params only",
                ),
            );
            return None;
        }
        if matches!(time, TimeRef::Suffix | TimeRef::Prefix)
            && !matches!(var.role, Role::Observed | Role::Input)
        {
            self.err(
                Diagnostic::new(Code::BadSequenceRead, format!("a net over time reads the {} `{}`", var.role.keyword(), var.name))
                    .label(span, "not data")
                    .help("nets over time summarise observed or input sequences, which are known in advance"),
            );
            return None;
        }
        let shape = Shape::vector(var.ty.size());
        Some(ir::Expr::new(K::Var { var: v, time }, shape))
    }

    /// The result shape of the elementwise operator `op` on operands of shapes `a` and `b`: equal
    /// sizes (vector shapes of equal length count as equal), or one side a unit that broadcasts.
    /// Otherwise reports `E050` at `span` (operands labelled at `la`, `lb`) and returns `None`.
    pub fn broadcast(
        &mut self,
        op: &str,
        a: &Shape,
        b: &Shape,
        span: Span,
        la: Span,
        lb: Span,
    ) -> Option<Shape> {
        if a == b || (a.numel() == b.numel() && !a.is_matrix() && !b.is_matrix()) {
            return Some(if a.0.len() >= b.0.len() {
                a.clone()
            } else {
                b.clone()
            });
        }
        if a.is_unit() {
            return Some(b.clone());
        }
        if b.is_unit() {
            return Some(a.clone());
        }
        self.err(
            Diagnostic::new(
                Code::DimMismatch,
                format!("operands of `{op}` have sizes {a} and {b}"),
            )
            .label(la, format!("size {a}"))
            .label(lb, format!("size {b}"))
            .label(span, "in this operation")
            .help("elementwise operators need equal sizes, or one scalar that broadcasts"),
        );
        None
    }

    fn matmul_shape(
        &mut self,
        a: &Shape,
        b: &Shape,
        span: Span,
        la: Span,
        lb: Span,
    ) -> Option<Shape> {
        let r = match (a.0.as_slice(), b.0.as_slice()) {
            ([r, c], [n]) if c == n => Some(Shape::vector(*r)),
            ([n], [r, c]) if n == r => Some(Shape::vector(*c)),
            ([r, c], [c2, k]) if c == c2 => Some(Shape::matrix(*r, *k)),
            _ => None,
        };
        if r.is_none() {
            let help = if !a.is_matrix() && !b.is_matrix() {
                "`@` needs a matrix on one side; for vectors use `dot(a, b)`".to_string()
            } else {
                "in `A @ B` the columns of A must equal the rows (length) of B".to_string()
            };
            self.err(
                Diagnostic::new(Code::MatMulShape, format!("cannot multiply {a} @ {b}"))
                    .label(la, format!("shape {a}"))
                    .label(lb, format!("shape {b}"))
                    .label(span, "matrix product")
                    .help(help),
            );
        }
        r
    }

    fn positional<'a>(&mut self, fun: &str, span: Span, args: &'a [Arg]) -> Option<Vec<&'a Expr>> {
        let mut out = Vec::new();
        for a in args {
            match a {
                Arg::Pos(e) => out.push(e),
                Arg::Kw(k) => {
                    self.err(
                        Diagnostic::new(
                            Code::BadArguments,
                            format!("`{fun}` takes no keyword argument `{}`", k.name.name),
                        )
                        .label(k.name.span, "unexpected keyword")
                        .label(span, "in this call")
                        .help("pass arguments by position"),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn arity(&mut self, fun: &str, span: Span, got: usize, want: &str, ok: bool) -> Option<()> {
        if ok {
            return Some(());
        }
        self.err(
            Diagnostic::new(
                Code::BadArguments,
                format!("`{fun}` takes {want}, given {got}"),
            )
            .label(span, "wrong number of arguments")
            .help(format!(
                "call it as documented in docs/language.md ({fun}: {want})"
            )),
        );
        None
    }

    fn call(
        &mut self,
        e: &Expr,
        fun: &crate::parse::ast::Ident,
        args: &[Arg],
        cx: Cx,
    ) -> Option<ir::Expr> {
        if let Some((sym, _)) = self.names.get(&fun.name).copied() {
            self.used.insert(sym);
            return match sym {
                Sym::Net(_) if self.poisoned.contains(&sym) => None,
                Sym::Net(n) => self.net_call(e, n, args, cx),
                other => {
                    self.err(
                        Diagnostic::new(
                            Code::WrongKind,
                            format!(
                                "`{}` is {}, not a net or function",
                                fun.name,
                                other.describe()
                            ),
                        )
                        .label(fun.span, "called here")
                        .help("only nets and built-in functions can be called"),
                    );
                    None
                }
            };
        }
        let pos = self.positional(&fun.name, e.span, args)?;
        let n = pos.len();
        let name = fun.name.as_str();
        if let Some(op) = UnOp::parse(name) {
            self.arity(name, e.span, n, "1 argument", n == 1)?;
            let a = self.expr(pos[0], cx)?;
            let shape = a.shape.clone();
            return Some(ir::Expr::new(
                K::Unary {
                    op,
                    arg: Box::new(a),
                },
                shape,
            ));
        }
        match name {
            "dot" => {
                self.arity(name, e.span, n, "2 arguments", n == 2)?;
                let (a, b) = (self.expr(pos[0], cx), self.expr(pos[1], cx));
                let (a, b) = (a?, b?);
                if a.shape.is_matrix() || b.shape.is_matrix() || a.shape.numel() != b.shape.numel()
                {
                    self.err(
                        Diagnostic::new(
                            Code::DimMismatch,
                            format!("`dot` of sizes {} and {}", a.shape, b.shape),
                        )
                        .label(pos[0].span, format!("size {}", a.shape))
                        .label(pos[1].span, format!("size {}", b.shape))
                        .help("`dot(a, b)` takes two vectors of the same length"),
                    );
                    return None;
                }
                Some(ir::Expr::new(
                    K::Dot(Box::new(a), Box::new(b)),
                    Shape::scalar(),
                ))
            }
            "sum" => {
                self.arity(name, e.span, n, "1 argument", n == 1)?;
                let a = self.expr(pos[0], cx)?;
                Some(ir::Expr::new(K::Sum(Box::new(a)), Shape::scalar()))
            }
            "concat" => {
                self.arity(name, e.span, n, "at least 1 argument", n >= 1)?;
                let parts = self.vector_args(&pos, cx)?;
                let size = parts.iter().map(|p| p.shape.numel()).sum();
                Some(ir::Expr::new(K::Concat(parts), Shape::vector(size)))
            }
            "clamp" => {
                self.arity(name, e.span, n, "3 arguments (x, low, high)", n == 3)?;
                let (a, lo, hi) = (
                    self.expr(pos[0], cx),
                    self.expr(pos[1], cx),
                    self.expr(pos[2], cx),
                );
                let (a, lo, hi) = (a?, lo?, hi?);
                for (b, sp) in [(&lo, pos[1].span), (&hi, pos[2].span)] {
                    self.broadcast("clamp", &a.shape, &b.shape, e.span, pos[0].span, sp)?;
                }
                if let (Some(l), Some(h)) =
                    (super::rules::constant(&lo), super::rules::constant(&hi))
                {
                    if l > h {
                        self.err(
                            Diagnostic::new(
                                Code::BadValue,
                                format!("clamp bounds are reversed: low {l} > high {h}"),
                            )
                            .label(pos[1].span.to(pos[2].span), "low > high")
                            .help("write `clamp(x, low, high)` with low ≤ high"),
                        );
                        return None;
                    }
                }
                let shape = a.shape.clone();
                Some(ir::Expr::new(
                    K::Clamp {
                        arg: Box::new(a),
                        low: Box::new(lo),
                        high: Box::new(hi),
                    },
                    shape,
                ))
            }
            "zeros" | "ones" | "eye" => {
                let ok = if name == "eye" {
                    n == 1
                } else {
                    n == 1 || n == 2
                };
                self.arity(
                    name,
                    e.span,
                    n,
                    if name == "eye" {
                        "1 size"
                    } else {
                        "1 or 2 sizes"
                    },
                    ok,
                )?;
                let dims: Vec<usize> = pos
                    .iter()
                    .map(|x| self.size_eval(x))
                    .collect::<Option<_>>()?;
                if name == "eye" {
                    return Some(ir::Expr::new(K::Eye, Shape::matrix(dims[0], dims[0])));
                }
                Some(ir::Expr::new(
                    K::Fill(if name == "zeros" { 0.0 } else { 1.0 }),
                    Shape(dims),
                ))
            }
            "normal" | "uniform" => {
                self.err(
                    Diagnostic::new(Code::UnknownFunction, format!("`{name}(…)` is only valid as a param's initial value"))
                        .label(fun.span, "random initialiser used as a value")
                        .help(format!("write `param w : real[n] = {name}(…)`; to sample a random variable, declare a `latent`")),
                );
                None
            }
            _ => {
                let help = match self.suggest_function(name) {
                    Some(s) => format!("did you mean `{s}`? built-in functions: {FUNCTIONS}"),
                    None => {
                        format!("built-in functions: {FUNCTIONS}; nets are declared with `net`")
                    }
                };
                self.err(
                    Diagnostic::new(Code::UnknownFunction, format!("unknown function `{name}`"))
                        .label(fun.span, "not a function or net")
                        .help(help),
                );
                None
            }
        }
    }

    fn suggest_function(&self, name: &str) -> Option<&'static str> {
        FUNCTIONS
            .split(", ")
            .map(|f| (super::env::edit_distance(f, name), f))
            .filter(|(d, _)| *d <= 2)
            .min()
            .map(|(_, f)| f)
    }

    /// Arguments that are concatenated: each must be a vector or scalar.
    fn vector_args(&mut self, args: &[&Expr], cx: Cx) -> Option<Vec<ir::Expr>> {
        let mut out = Vec::new();
        let mut ok = true;
        for a in args {
            match self.expr(a, cx) {
                Some(x) if x.shape.is_matrix() => {
                    self.err(
                        Diagnostic::new(Code::NotAVector, format!("a matrix of shape {} where a vector is expected", x.shape))
                            .label(a.span, "matrix")
                            .help("arguments of nets and `concat` are vectors; multiply the matrix by a vector with `@`"),
                    );
                    ok = false;
                }
                Some(x) => out.push(x),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn net_call(&mut self, e: &Expr, n: usize, args: &[Arg], cx: Cx) -> Option<ir::Expr> {
        let net = self.model.nets[n].clone();
        let pos = self.positional(&net.name, e.span, args)?;
        match &net.kind {
            NetKind::Mlp { sizes, .. } => {
                let parts = self.vector_args(&pos, Cx { seq: None, ..cx })?;
                let got: usize = parts.iter().map(|p| p.shape.numel()).sum();
                self.net_input(&net.name, e.span, &pos, &parts, got, sizes[0], "")?;
                Some(ir::Expr::new(
                    K::Net {
                        net: n,
                        args: parts,
                    },
                    Shape::vector(net.kind.output_size()),
                ))
            }
            NetKind::Gru { input, hidden } => {
                self.arity(
                    &net.name,
                    e.span,
                    pos.len(),
                    "the previous hidden state and at least one input",
                    pos.len() >= 2,
                )?;
                let parts = self.vector_args(&pos, Cx { seq: None, ..cx })?;
                let h = parts[0].clone();
                if h.shape.numel() != *hidden {
                    self.err(
                        Diagnostic::new(Code::NetInputSize, format!("the hidden state of gru `{}` has size {hidden}, given {}", net.name, h.shape.numel()))
                            .label(pos[0].span, format!("size {}", h.shape.numel()))
                            .help(format!("the first argument of a gru cell is its previous state, e.g. `{}(h[t-1], x[t])`", net.name)),
                    );
                    return None;
                }
                let rest = parts[1..].to_vec();
                let got: usize = rest.iter().map(|p| p.shape.numel()).sum();
                self.net_input(
                    &net.name,
                    e.span,
                    &pos[1..],
                    &rest,
                    got,
                    *input,
                    " (after the hidden state)",
                )?;
                Some(ir::Expr::new(
                    K::Gru {
                        net: n,
                        hidden: Box::new(h),
                        args: rest,
                    },
                    Shape::vector(*hidden),
                ))
            }
            NetKind::Rnn {
                input,
                hidden,
                reverse,
            } => {
                let parts = self.vector_args(
                    &pos,
                    Cx {
                        seq: Some(*reverse),
                        ..cx
                    },
                )?;
                let got: usize = parts.iter().map(|p| p.shape.numel()).sum();
                self.net_input(&net.name, e.span, &pos, &parts, got, *input, "")?;
                Some(ir::Expr::new(
                    K::Rnn {
                        net: n,
                        seqs: parts,
                    },
                    Shape::vector(*hidden),
                ))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn net_input(
        &mut self,
        name: &str,
        span: Span,
        pos: &[&Expr],
        parts: &[ir::Expr],
        got: usize,
        want: usize,
        what: &str,
    ) -> Option<()> {
        if got == want {
            return Some(());
        }
        let mut d = Diagnostic::new(Code::NetInputSize, format!("net `{name}` takes input size {want}{what}, but its arguments have total size {got}"))
            .label(span, format!("{got} ≠ {want}"));
        for (a, p) in pos.iter().zip(parts) {
            d = d.label(a.span, format!("size {}", p.shape.numel()));
        }
        self.err(d.help(format!("a net's arguments are concatenated; make their sizes add up to {want}, or change the net's input size")));
        None
    }
}
