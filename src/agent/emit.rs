//! Emitting the fused runtime's ops ([`crate::fused::graph`]) for behaviour learning and
//! acting: the model's nets, definitions and distributions evaluated at one step of an
//! imagined (or filtered) trajectory, over `rows` rows at once.
//!
//! Input: the checked model, the parameter layout of the world model's compiled program, and
//! where each variable's value at each step lives (a [`View`]). Output: ops appended to one
//! [`Graph`]. Invariants: a parameter buffer has a gradient only when its parameter is in
//! `learn` (the world model's nets are read frozen: their weight products are skipped in
//! backward, and gradients still flow through them to what they read); a value has a gradient
//! exactly when something it was computed from has one.

use crate::family::Family;
use crate::fused::build::ParamIndex;
use crate::fused::graph::*;
use crate::ir::*;
use crate::lower::net_prefix;
use std::collections::{HashMap, HashSet};

/// What imagination or acting cannot evaluate (the model uses a form only the world model's
/// runtimes run).
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported(pub String);

pub(crate) type R<T> = Result<T, Unsupported>;

fn unsup<T>(msg: impl Into<String>) -> R<T> {
    Err(Unsupported(msg.into()))
}

/// A distribution's parameters as views.
#[derive(Clone, Copy, Debug)]
pub struct DistV {
    /// The family.
    pub family: Family,
    /// Location (Normal, TanhNormal) or lower bound (Uniform).
    pub loc: View,
    /// Scale (Normal, TanhNormal) or upper bound (Uniform).
    pub scale: View,
}

/// A draw: the value, and TanhNormal's pre-squash value.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    /// The sample.
    pub x: View,
    /// `u` with `x = tanh u` (TanhNormal only).
    pub pre: Option<View>,
}

/// The builder of one graph.
pub struct Emit<'a> {
    /// The model.
    pub m: &'a Model,
    index: &'a ParamIndex,
    learn: &'a HashSet<usize>,
    /// The graph being built.
    pub g: Graph,
    /// Rows of every per-step value.
    pub rows: usize,
    /// Where variable `v` at step `s` lives.
    pub at: HashMap<(VarId, i64), View>,
    /// Noise buffers in creation order (the caller fills them before each forward pass).
    pub noise: Vec<View>,
    pbuf: HashMap<usize, BufId>,
    fills: HashMap<(usize, u32), View>,
}

impl<'a> Emit<'a> {
    /// An empty graph over `rows` rows; parameters in `learn` get gradients.
    pub fn new(
        m: &'a Model,
        index: &'a ParamIndex,
        learn: &'a HashSet<usize>,
        rows: usize,
    ) -> Self {
        Emit {
            m,
            index,
            learn,
            g: Graph::default(),
            rows,
            at: HashMap::new(),
            noise: Vec::new(),
            pbuf: HashMap::new(),
            fills: HashMap::new(),
        }
    }

    /// A value buffer of `cols` columns.
    pub fn temp(&mut self, cols: usize, grad: bool) -> View {
        let b = self.g.buf(self.rows, cols, BufKind::Temp, grad);
        self.g.all(b)
    }

    /// A data buffer of `cols` columns (no gradient), filled by the caller.
    pub fn data(&mut self, cols: usize) -> View {
        let b = self.g.buf(self.rows, cols, BufKind::Data, false);
        self.g.all(b)
    }

    fn noise_view(&mut self, cols: usize) -> View {
        let b = self.g.buf(self.rows, cols, BufKind::Noise, false);
        let v = self.g.all(b);
        self.noise.push(v);
        v
    }

    fn fill(&mut self, cols: usize, x: f64) -> View {
        let key = (cols, (x as f32).to_bits());
        if let Some(v) = self.fills.get(&key) {
            return *v;
        }
        let b = self.g.buf(self.rows, cols, BufKind::Const, false);
        self.g.bufs[b].init = Some(vec![x as f32; self.rows * cols]);
        let v = self.g.all(b);
        self.fills.insert(key, v);
        v
    }

    /// The buffer of parameter `name`.
    pub fn param(&mut self, name: &str) -> R<BufId> {
        let Some(&(i, r, c)) = self.index.get(name) else {
            return unsup(format!(
                "parameter `{name}` is not in the world model's program"
            ));
        };
        if let Some(b) = self.pbuf.get(&i) {
            return Ok(*b);
        }
        let b = self.g.buf(r, c, BufKind::Param(i), self.learn.contains(&i));
        self.pbuf.insert(i, b);
        Ok(b)
    }

    fn grad(&self, v: View) -> bool {
        self.g.grad(v)
    }

    /// The value of `var` read at `time` from step `t`.
    pub fn read(&self, var: VarId, time: TimeRef, t: i64) -> R<View> {
        let s = match time {
            TimeRef::Lag(k) => t - k as i64,
            TimeRef::Step(k) => k,
            _ => {
                return unsup(format!(
                    "the read of `{}` (lags only)",
                    self.m.vars[var].name
                ))
            }
        };
        match self.at.get(&(var, s)) {
            Some(v) => Ok(*v),
            None => unsup(format!(
                "`{}` at step {s} has no value here",
                self.m.vars[var].name
            )),
        }
    }

    /// Evaluate `e` at step `t`.
    pub fn eval(&mut self, e: &Expr, t: i64) -> R<View> {
        match &e.kind {
            ExprKind::Var { var, time } => self.read(*var, *time, t),
            ExprKind::Net { .. } | ExprKind::Gru { .. } => self.net(e, t),
            ExprKind::Num(x) | ExprKind::Fill(x) => Ok(self.fill(e.shape.numel(), *x)),
            ExprKind::Concat(parts) => {
                let mut vs = Vec::new();
                for p in parts {
                    vs.push(self.eval(p, t)?);
                }
                let grad = vs.iter().any(|v| self.grad(*v));
                let out = self.temp(e.shape.numel(), grad);
                self.g.ops.push(Op::Concat { parts: vs, out });
                Ok(out)
            }
            _ => unsup(format!(
                "`{}` (imagination evaluates nets, cells, variables and numbers)",
                self.m.show_expr(e)
            )),
        }
    }

    fn inputs(&mut self, args: &[Expr], t: i64) -> R<Vec<DenseIn>> {
        let mut xs = Vec::new();
        let mut off = 0;
        for a in args {
            xs.push((self.eval(a, t)?, off));
            off += a.shape.numel();
        }
        Ok(xs)
    }

    fn net(&mut self, e: &Expr, t: i64) -> R<View> {
        match &e.kind {
            ExprKind::Net { net, args } => {
                let NetKind::Mlp { sizes, activation } = &self.m.nets[*net].kind else {
                    return unsup("a net call of a non-MLP");
                };
                let act = *activation;
                let prefix = net_prefix(self.m, *net);
                let mut xs = self.inputs(args, t)?;
                let mut grad = xs.iter().any(|(v, _)| self.grad(*v));
                let layers = sizes.len() - 1;
                let mut h = None;
                for i in 0..layers {
                    let w = self.param(&format!("{prefix}.l{i}.w"))?;
                    let b = self.param(&format!("{prefix}.l{i}.b"))?;
                    grad |= self.g.bufs[w].grad;
                    let out = self.temp(sizes[i + 1], grad);
                    let scratch = self.temp(sizes[i + 1], false);
                    let inputs = match h {
                        None => std::mem::take(&mut xs),
                        Some(prev) => vec![(prev, 0)],
                    };
                    self.g.ops.push(Op::Dense {
                        xs: inputs,
                        w,
                        b: Some(b),
                        add: None,
                        act: if i + 1 == layers { Act::Identity } else { act },
                        out,
                        scratch,
                        wgrad: true,
                    });
                    h = Some(out);
                }
                h.ok_or_else(|| Unsupported("an MLP without layers".into()))
            }
            ExprKind::Gru { net, hidden, args } => {
                let NetKind::Gru { hidden: hd, .. } = self.m.nets[*net].kind else {
                    return unsup("a cell call of a non-GRU");
                };
                let prefix = net_prefix(self.m, *net);
                let h = self.eval(hidden, t)?;
                let xs = self.inputs(args, t)?;
                let wi = self.param(&format!("{prefix}.w_i"))?;
                let wh = self.param(&format!("{prefix}.w_h"))?;
                let bi = self.param(&format!("{prefix}.b_i"))?;
                let bh = self.param(&format!("{prefix}.b_h"))?;
                let grad =
                    self.grad(h) || xs.iter().any(|(v, _)| self.grad(*v)) || self.g.bufs[wi].grad;
                let out = self.temp(hd, grad);
                let gates = self.temp(3 * hd, false);
                let ghn = self.temp(hd, false);
                let gi = self.temp(3 * hd, false);
                let gh = self.temp(3 * hd, false);
                self.g.ops.push(Op::Gru {
                    xs,
                    h,
                    wi,
                    wh,
                    bi,
                    bh,
                    out,
                    gates,
                    ghn,
                    gi,
                    gh,
                    wgrad: true,
                });
                Ok(out)
            }
            _ => unsup("not a net"),
        }
    }

    /// The parameters of `d` (of event size `size`) at step `t`; `None` for Flat.
    pub fn dist(&mut self, d: &Dist, size: usize, t: i64) -> R<Option<DistV>> {
        let (loc, scale) = match &d.args {
            DistArgs::None => return Ok(None),
            DistArgs::LocScale { loc, scale } => (self.eval(loc, t)?, self.eval(scale, t)?),
            DistArgs::Bounds { low, high } => (self.eval(low, t)?, self.eval(high, t)?),
            DistArgs::Split { head, scale_fn } => {
                let h = self.eval(head, t)?;
                let grad = self.grad(h);
                let (l, s) = (self.temp(size, grad), self.temp(size, grad));
                let link = match *scale_fn {
                    ScaleFn::Softplus { min } => Link::Softplus(min as f32),
                    ScaleFn::Exp { min } => Link::Exp(min as f32),
                };
                self.g.ops.push(Op::Split {
                    h,
                    link,
                    loc: l,
                    scale: s,
                });
                (l, s)
            }
            DistArgs::Logits(_) => {
                return unsup(format!(
                    "{} (imagination draws reparameterised continuous values)",
                    d.family.name()
                ))
            }
        };
        if !matches!(
            d.family,
            Family::Normal | Family::TanhNormal | Family::Uniform
        ) {
            return unsup(format!("{} in imagination", d.family.name()));
        }
        // A scalar argument broadcast to the event.
        let loc = self.widen(loc, size);
        let scale = self.widen(scale, size);
        Ok(Some(DistV {
            family: d.family,
            loc,
            scale,
        }))
    }

    fn widen(&mut self, v: View, size: usize) -> View {
        if self.g.cols(v) == size {
            return v;
        }
        let out = self.temp(size, self.grad(v));
        self.g.ops.push(Op::Copy {
            x: Opd { v, bc: Bc::Col },
            out,
        });
        out
    }

    /// A reparameterised draw from `d` (fresh noise).
    pub fn sample(&mut self, d: DistV) -> R<Draw> {
        let size = self.g.cols(d.loc);
        let grad = self.grad(d.loc) || self.grad(d.scale);
        let eps = self.noise_view(size);
        match d.family {
            Family::Normal => {
                let out = self.temp(size, grad);
                self.g.ops.push(Op::NormalSample {
                    loc: d.loc,
                    scale: d.scale,
                    eps,
                    out,
                });
                Ok(Draw { x: out, pre: None })
            }
            Family::TanhNormal => {
                let (u, y) = (self.temp(size, grad), self.temp(size, grad));
                self.g.ops.push(Op::TanhSample {
                    loc: d.loc,
                    scale: d.scale,
                    eps,
                    u,
                    y,
                });
                Ok(Draw { x: y, pre: Some(u) })
            }
            f => unsup(format!("drawing {} in imagination", f.name())),
        }
    }

    /// `Σ_cols log density` of `x` (`pre`: TanhNormal's pre-squash value) → one column.
    pub fn log_prob(&mut self, d: DistV, x: Draw) -> R<View> {
        let grad = self.grad(d.loc) || self.grad(d.scale) || self.grad(x.x);
        let out = self.temp(1, grad);
        match (d.family, x.pre) {
            (Family::Normal, _) => self.g.ops.push(Op::NormalLogProb {
                x: x.x,
                loc: d.loc,
                scale: d.scale,
                out,
            }),
            (Family::TanhNormal, Some(u)) => self.g.ops.push(Op::TanhLogProb {
                u,
                loc: d.loc,
                scale: d.scale,
                out,
            }),
            (f, _) => return unsup(format!("the log-density of {} in imagination", f.name())),
        }
        Ok(out)
    }

    /// `Σ_cols H[N(loc, scale)]` → one column.
    pub fn normal_entropy(&mut self, d: DistV) -> View {
        let out = self.temp(1, self.grad(d.scale));
        self.g.ops.push(Op::NormalEntropy {
            scale: d.scale,
            out,
        });
        out
    }

    /// `Σ_cols KL(N(q) ‖ N(p))` → one column.
    pub fn normal_kl(&mut self, q: DistV, p: DistV) -> View {
        let grad = [q.loc, q.scale, p.loc, p.scale]
            .iter()
            .any(|v| self.grad(*v));
        let out = self.temp(1, grad);
        self.g.ops.push(Op::NormalKl {
            ql: q.loc,
            qs: q.scale,
            pl: p.loc,
            ps: p.scale,
            out,
            gq: 1.0,
            gp: 1.0,
            floor: None,
        });
        out
    }
}
