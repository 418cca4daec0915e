//! Expressions on tensors. A value is a per-row tensor `(rows, n)` or an unbatched constant
//! (a number, a `(1, n)` vector, an `(r, c)` matrix); elementwise operations broadcast
//! constants and one-column values, exactly as the checker's shape rules allow.

use super::LTape;
use crate::ir::{self, BinOp, ExprKind, NetKind, UnOp};
use crate::lower::{net_prefix, num_op, param_name};
use crate::runtime::nets::params::Params;
use crate::runtime::nets::{gru, mlp};
use crate::runtime::{ops, RtError, T2};
use dfdx::prelude::*;

pub enum Val<T> {
    Num(f32),
    /// `(rows, n)`.
    Rows(T2<T>),
    /// `(1, n)`, unbatched.
    Vec(T2<T>),
    /// `(r, c)`, unbatched.
    Mat(T2<T>),
}

/// Where the variable reads of an expression come from.
pub trait Env<T> {
    /// Rows of this evaluation (`B` for one step, `T'·B` for a range).
    fn rows(&self) -> usize;
    fn read(&mut self, var: ir::VarId, time: ir::TimeRef) -> Result<T2<T>, RtError>;
    /// The per-step outputs of a net over time, for this evaluation's rows.
    fn rnn(&mut self, e: &ir::Expr) -> Result<T2<T>, RtError>;
}

/// A constant host vector or matrix as a tensor on the tape.
fn constant<T: LTape, P: Params<T>>(p: &P, shape: &ir::Shape, values: &[f64]) -> Val<T> {
    let v: Vec<f32> = values.iter().map(|x| *x as f32).collect();
    match shape.0.as_slice() {
        [] => Val::Num(v[0]),
        [n] => Val::Vec(p.input(ops::from_host(p.device(), v, 1, *n))),
        [r, c] => Val::Mat(p.input(ops::from_host(p.device(), v, *r, *c))),
        _ => unreachable!("the checker limits shapes to two dims"),
    }
}

/// Broadcast any value to `(rows, n)`.
pub fn to_rows<T: LTape, P: Params<T>>(p: &P, v: Val<T>, rows: usize, n: usize) -> T2<T> {
    match v {
        Val::Num(x) => p.input(ops::full(p.device(), rows, n, x)),
        Val::Rows(x) => {
            if x.shape().1 == n {
                x
            } else {
                ops::broadcast_cols(x, n)
            }
        }
        Val::Mat(x) if x.shape().0 > 1 => {
            // A matrix parameter (a MultivariateNormal's `scale_tril`): its values row-major.
            let (r, c) = *x.shape();
            let b = ops::materialize(ops::broadcast_rows(x.reshape_like(&(r * c,)), rows));
            if r * c == n {
                b
            } else {
                ops::broadcast_cols(b, n)
            }
        }
        Val::Vec(x) | Val::Mat(x) => {
            // Materialised (contiguous, with its own id): stride-0 broadcasts cannot be stacked,
            // and two steps must not share one tensor id.
            let c = x.shape().1;
            let b = ops::materialize(ops::broadcast_rows(x.reshape_like(&(c,)), rows));
            if c == n {
                b
            } else {
                ops::broadcast_cols(b, n)
            }
        }
    }
}

fn width<T>(v: &Val<T>) -> usize {
    match v {
        Val::Num(_) => 1,
        Val::Rows(x) | Val::Vec(x) | Val::Mat(x) => x.shape().1,
    }
}

fn unary<T: LTape, P: Params<T>>(p: &P, op: UnOp, x: T2<T>) -> T2<T> {
    match op {
        UnOp::Neg => x.negate(),
        UnOp::Exp => x.exp(),
        UnOp::Log => x.ln(),
        UnOp::Softplus => ops::softplus(x),
        UnOp::Tanh => x.tanh(),
        UnOp::Sigmoid => x.sigmoid(),
        UnOp::Sin => x.sin(),
        UnOp::Cos => x.cos(),
        UnOp::Abs => x.abs(),
        UnOp::Sqrt => x.sqrt(),
        UnOp::Square => x.square(),
        UnOp::Relu => x.relu(),
        UnOp::StopGrad => p.input(ops::stop_gradient(&x)),
    }
}

fn map<T: LTape>(v: Val<T>, f: impl FnOnce(T2<T>) -> T2<T>) -> Val<T> {
    match v {
        Val::Num(_) => unreachable!("numbers are folded before"),
        Val::Rows(x) => Val::Rows(f(x)),
        Val::Vec(x) => Val::Vec(f(x)),
        Val::Mat(x) => Val::Mat(f(x)),
    }
}

/// A leaf's identity: two reads of the same leaf share a tensor id, which dfdx's backward of
/// a binary op cannot take; the second read is made fresh.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Var(ir::VarId, ir::TimeRef),
    Param(ir::ParamId),
}

fn leaf_key(e: &ir::Expr) -> Option<Leaf> {
    match e.kind {
        ExprKind::Var { var, time } => Some(Leaf::Var(var, time)),
        ExprKind::Param(p) => Some(Leaf::Param(p)),
        _ => None,
    }
}

pub struct Evaluator<'a, T, P> {
    pub p: &'a P,
    pub m: &'a ir::Model,
    _t: std::marker::PhantomData<T>,
}

impl<'a, T: LTape, P: Params<T>> Evaluator<'a, T, P> {
    pub fn new(p: &'a P, m: &'a ir::Model) -> Self {
        Evaluator {
            p,
            m,
            _t: std::marker::PhantomData,
        }
    }

    /// Evaluate several expressions that a multi-input op combines, refreshing repeated leaves.
    fn args(&self, es: &[&ir::Expr], env: &mut dyn Env<T>) -> Result<Vec<Val<T>>, RtError> {
        let mut seen: Vec<Leaf> = Vec::new();
        let mut out = Vec::new();
        for e in es {
            let v = self.eval(e, env)?;
            let v = match leaf_key(e) {
                Some(k) if seen.contains(&k) => map(v, ops::fresh),
                Some(k) => {
                    seen.push(k);
                    v
                }
                None => v,
            };
            out.push(v);
        }
        Ok(out)
    }

    /// Concatenate vectors row-wise into `(rows, Σn)`.
    fn concat(&self, es: &[&ir::Expr], env: &mut dyn Env<T>) -> Result<T2<T>, RtError> {
        let rows = env.rows();
        let vals = self.args(es, env)?;
        let mut it = vals.into_iter().zip(es.iter());
        let (v0, e0) = it
            .next()
            .ok_or_else(|| RtError::Shape("empty concat".into()))?;
        let mut acc = to_rows(self.p, v0, rows, e0.shape.numel());
        for (v, e) in it {
            acc = ops::cat_cols(acc, to_rows(self.p, v, rows, e.shape.numel()));
        }
        Ok(acc)
    }

    pub fn eval(&self, e: &ir::Expr, env: &mut dyn Env<T>) -> Result<Val<T>, RtError> {
        let p = self.p;
        Ok(match &e.kind {
            ExprKind::Num(v) => Val::Num(*v as f32),
            ExprKind::Const(c) => {
                let c = &self.m.consts[*c];
                constant(p, &c.shape, &c.values)
            }
            ExprKind::Array(vs) => constant(p, &e.shape, vs),
            ExprKind::Fill(v) => constant(p, &e.shape, &vec![*v; e.shape.numel()]),
            ExprKind::Eye => {
                let n = e.shape.0[0];
                let vals: Vec<f64> = (0..n * n)
                    .map(|i| f64::from(u8::from(i / n == i % n)))
                    .collect();
                constant(p, &e.shape, &vals)
            }
            ExprKind::Param(id) => {
                let name = param_name(self.m, *id);
                let shape = &self.m.params[*id].shape;
                if shape.is_matrix() {
                    Val::Mat(p.mat(&name)?)
                } else {
                    let v = p.vector(&name)?;
                    let n = v.shape().0;
                    Val::Vec(v.reshape_like(&(1, n)))
                }
            }
            ExprKind::Var { var, time } => Val::Rows(env.read(*var, *time)?),
            ExprKind::Unary { op, arg } => match self.eval(arg, env)? {
                Val::Num(x) => Val::Num(num_op(*op, x)),
                v => map(v, |x| unary(p, *op, x)),
            },
            ExprKind::Binary {
                op: BinOp::MatMul,
                lhs,
                rhs,
            } => {
                let mut vals = self.args(&[lhs, rhs], env)?.into_iter();
                let (a, b) = (
                    vals.next().unwrap_or(Val::Num(0.0)),
                    vals.next().unwrap_or(Val::Num(0.0)),
                );
                match (a, b) {
                    // A (r, c) @ x per row: x · Aᵀ.
                    (Val::Mat(a), Val::Rows(x)) => {
                        Val::Rows(x.matmul(a.permute::<_, Axes2<1, 0>>()))
                    }
                    (Val::Mat(a), Val::Vec(x)) => Val::Vec(x.matmul(a.permute::<_, Axes2<1, 0>>())),
                    (Val::Rows(x), Val::Mat(a)) => Val::Rows(x.matmul(a)),
                    (Val::Vec(x), Val::Mat(a)) => Val::Vec(x.matmul(a)),
                    (Val::Mat(a), Val::Mat(b)) => Val::Mat(a.matmul(b)),
                    _ => {
                        return Err(RtError::Shape(
                            "matmul of non-matrices (checker invariant)".into(),
                        ))
                    }
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let mut vals = self.args(&[lhs, rhs], env)?.into_iter();
                let (a, b) = (
                    vals.next().unwrap_or(Val::Num(0.0)),
                    vals.next().unwrap_or(Val::Num(0.0)),
                );
                self.elementwise(*op, a, b, env.rows())
            }
            ExprKind::Dot(a, b) => {
                let rows = env.rows();
                let mut vals = self.args(&[a, b], env)?.into_iter();
                let (x, y) = (
                    vals.next().unwrap_or(Val::Num(0.0)),
                    vals.next().unwrap_or(Val::Num(0.0)),
                );
                let n = a.shape.numel();
                let (x, y) = (to_rows(p, x, rows, n), to_rows(p, y, rows, n));
                Val::Rows(ops::row_sum(x * y))
            }
            ExprKind::Sum(a) => {
                let rows = env.rows();
                let n = a.shape.numel();
                let x = self.eval(a, env)?;
                Val::Rows(ops::row_sum(to_rows(p, x, rows, n)))
            }
            ExprKind::Concat(xs) => {
                let refs: Vec<&ir::Expr> = xs.iter().collect();
                Val::Rows(self.concat(&refs, env)?)
            }
            ExprKind::Select { arg, index } => {
                let rows = env.rows();
                let n = arg.shape.numel();
                let x = self.eval(arg, env)?;
                match x {
                    Val::Num(v) => Val::Num(v),
                    Val::Vec(x) => Val::Vec(ops::cols(x, *index, index + 1)),
                    x => Val::Rows(ops::cols(to_rows(p, x, rows, n), *index, index + 1)),
                }
            }
            ExprKind::Clamp { arg, low, high } => {
                let rows = env.rows();
                let n = arg.shape.numel();
                let mut vals = self.args(&[arg, low, high], env)?.into_iter();
                let x = vals.next().unwrap_or(Val::Num(0.0));
                let lo = vals.next().unwrap_or(Val::Num(f32::MIN));
                let hi = vals.next().unwrap_or(Val::Num(f32::MAX));
                match (lo, hi) {
                    (Val::Num(lo), Val::Num(hi)) => match x {
                        // `f32::clamp` panics on reversed or NaN bounds.
                        Val::Num(v) => Val::Num(v.max(lo).min(hi)),
                        v => map(v, |t| t.clamp(lo, hi)),
                    },
                    (lo, hi) => {
                        let x = to_rows(p, x, rows, n);
                        let lo = to_rows(p, lo, rows, n);
                        let hi = to_rows(p, hi, rows, n);
                        Val::Rows(x.maximum(lo).minimum(hi))
                    }
                }
            }
            ExprKind::Net { net, args } => {
                let refs: Vec<&ir::Expr> = args.iter().collect();
                let x = self.concat(&refs, env)?;
                let NetKind::Mlp { sizes, activation } = &self.m.nets[*net].kind else {
                    return Err(RtError::Shape(
                        "net call of a non-mlp (checker invariant)".into(),
                    ));
                };
                Val::Rows(mlp::mlp_forward_layers(
                    p,
                    &net_prefix(self.m, *net),
                    x,
                    *activation,
                    sizes.len() - 1,
                )?)
            }
            ExprKind::Gru { net, hidden, args } => {
                let rows = env.rows();
                let hv = self.eval(hidden, env)?;
                let h = to_rows(p, hv, rows, hidden.shape.numel());
                let refs: Vec<&ir::Expr> = args.iter().collect();
                let x = self.concat(&refs, env)?;
                Val::Rows(gru::gru_cell(p, &net_prefix(self.m, *net), h, x)?)
            }
            ExprKind::Rnn { .. } => Val::Rows(env.rnn(e)?),
        })
    }

    fn elementwise(&self, op: BinOp, a: Val<T>, b: Val<T>, rows: usize) -> Val<T> {
        let f = |x: f32, y: f32| match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            _ => x / y,
        };
        match (a, b) {
            (Val::Num(x), Val::Num(y)) => Val::Num(f(x, y)),
            (v, Val::Num(y)) => map(v, |t| match op {
                BinOp::Add => t + y,
                BinOp::Sub => t - y,
                BinOp::Mul => t * y,
                _ => t / y,
            }),
            (Val::Num(x), v) => map(v, |t| match op {
                BinOp::Add => t + x,
                BinOp::Sub => t.negate() + x,
                BinOp::Mul => t * x,
                _ => t.recip() * x,
            }),
            (a, b) => {
                let unbatched = |v: &Val<T>| matches!(v, Val::Vec(_) | Val::Mat(_));
                let (wa, wb) = (width(&a), width(&b));
                if unbatched(&a) && unbatched(&b) {
                    // Same shape (the checker allows (1, n) ∘ (1, 1) only through numbers).
                    let (x, y) = match (a, b) {
                        (Val::Vec(x) | Val::Mat(x), Val::Vec(y) | Val::Mat(y)) => (x, y),
                        _ => unreachable!(),
                    };
                    let (x, y) = widen(x, y);
                    let r = apply(op, x, y);
                    return if r.shape().0 == 1 {
                        Val::Vec(r)
                    } else {
                        Val::Mat(r)
                    };
                }
                let n = wa.max(wb);
                let x = to_rows(self.p, a, rows, n);
                let y = to_rows(self.p, b, rows, n);
                Val::Rows(apply(op, x, y))
            }
        }
    }
}

fn widen<T: LTape>(x: T2<T>, y: T2<T>) -> (T2<T>, T2<T>) {
    let (a, b) = (x.shape().1, y.shape().1);
    if a == b {
        (x, y)
    } else if a == 1 {
        (ops::broadcast_cols(x, b), y)
    } else {
        (x, ops::broadcast_cols(y, a))
    }
}

fn apply<T: LTape>(op: BinOp, x: T2<T>, y: T2<T>) -> T2<T> {
    match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        _ => x / y,
    }
}
