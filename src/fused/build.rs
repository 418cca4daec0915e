//! Lowering to the static program: the same semantics as [`crate::lower`]'s reference
//! forward pass (chain step by step, then every term once over its range), emitted as ops
//! over planned buffers instead of run on dfdx tensors.
//!
//! Layout: a timed variable (data or chain) is one padded time-major buffer of
//! `(k + T)·b` rows (step `s` at rows `(s + k − 1)·b ..`, steps `≤ 0` hold `init` values or
//! zeros); q's recorded parameters are `(T·b)` buffers written step by step, so a KL over
//! `t ≥ 2` reads one contiguous view. The data-only inputs of a chain net's first layer
//! (observed/input reads) are multiplied for all steps at once before the loop.
//! Nets over time are lowered in `build/rnn.rs`, the families beside Normal and TanhNormal
//! in `build/families.rs`, latent overshooting's windows in `build/overshoot.rs` (after the
//! terms); IWAE needs nothing here (the engine's loss head takes the log-mean-exp over the
//! tiled batch). Whether a program runs here is decided before `build` by the capability
//! table (`super::caps`); an `Unsupported` from `build` on a program it accepts is a fault.
//! Discrete latents (categorical draws, exact enumeration) are lowered in `build/discrete.rs`.
//! The same builder, with each variable's value at a step placed by the caller, builds the
//! agent's one-step programs (`build/step.rs`): there is one lowering of the IR to ops.

use super::graph::*;
use crate::derive::{Compute, KlForm, Range, TermKind};
use crate::family::EntropyForm;
use crate::ir::*;
use crate::lower::plan::ChainVar;
use crate::lower::{net_prefix, param_name, Program};
use crate::objective::{shaping, Floor, Shaping};
use std::collections::{HashMap, HashSet};

mod bernoulli;
mod discrete;
mod families;
mod hmm;
mod overshoot;
mod predictive;
mod rnn;
mod step;

pub use predictive::{
    build_draws, build_one_step, build_predictive, draws_lack, one_step_lacks, Predictive,
};
pub use step::{DistV, Draw, Stepper};

/// Why a model runs on the reference path.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported(pub String);

pub(crate) type R<T> = Result<T, Unsupported>;

fn unsup<T>(msg: impl Into<String>) -> R<T> {
    Err(Unsupported(msg.into()))
}

/// Where a data variable's rows go before each forward pass.
#[derive(Clone, Debug)]
pub struct DataSlot {
    /// The variable.
    pub var: VarId,
    /// Its buffer.
    pub buf: BufId,
    /// First row written (past the padding of a timed variable).
    pub row0: usize,
    /// Whether it is time-indexed.
    pub timed: bool,
}

/// How the loss treats a term's rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Head {
    /// A log-likelihood or Monte Carlo log-ratio: the rows are the value.
    Plain,
    /// A closed-form KL (the rows are the non-negative KL; free nats act here).
    Kl,
    /// An entropy (counted for an auto-tuned α).
    Entropy,
    /// A reward: the rows are `r`, the value is `r / α` of optimality variable `opt`.
    Reward {
        /// The optimality variable.
        opt: usize,
    },
    /// A latent-overshooting KL (after the ELBO's terms; not part of the ELBO, trained with
    /// `kl_weight / D`).
    Overshoot,
}

/// One ELBO term's output.
#[derive(Clone, Debug)]
pub struct TermOut {
    /// `(tp·b, 1)`, time-major; `None` when the term's range is past the horizon.
    pub rows: Option<View>,
    /// Steps covered and the first (0-based).
    pub tp: usize,
    /// The first step it covers.
    pub step0: usize,
    /// Whether a batch mask applies.
    pub maskable: bool,
    /// How its value is read out.
    pub head: Head,
}

/// A program for one share of the batch.
pub struct Built {
    /// The graph of buffers and kernels.
    pub g: Graph,
    /// Where each data variable is written.
    pub data: Vec<DataSlot>,
    /// Noise views in the order the reference path draws them.
    pub noise: Vec<View>,
    /// Per noise view: what it holds and the number of `b`-row blocks it spans (a block is
    /// drawn for the global batch and this share's rows kept, block by block).
    pub noise_meta: Vec<(super::families::Noise, usize)>,
    /// Where each ELBO term is read.
    pub terms: Vec<TermOut>,
    /// Each timed chain variable's buffer: step `s` at rows `(s + k − 1)·b ..` (behaviour
    /// learning reads the posterior states of the data from it).
    pub chain: Vec<(VarId, BufId)>,
    /// Padding steps before step 1 (the largest lag).
    pub k: usize,
    /// Copies of the batch (the values of an enumerated latent; 1 without): a static noise
    /// view holds `tiles` blocks of the share's rows.
    pub tiles: usize,
    /// Σ log q of each score-function draw, `(b, 1)` per draw (the surrogate's rows).
    pub sf: Vec<View>,
    /// The batch mask `(T·b, 1)` a chain summed out reads (filled before each pass; 1s
    /// without a mask).
    pub mask: Option<BufId>,
}

/// Parameter name → (index, rows, cols) as the program lays parameters out.
pub type ParamIndex = HashMap<String, (usize, usize, usize)>;

/// The layout of `store`'s parameters (a vector is one row) and their values, in store order.
pub fn param_index(
    store: &crate::runtime::nets::params::ParamStore,
) -> (ParamIndex, Vec<Vec<f32>>) {
    let mut index = ParamIndex::new();
    let mut values = Vec::new();
    for (i, (name, p)) in store.iter().enumerate() {
        let shape = p.shape();
        let (r, c) = if shape.len() == 2 {
            (shape[0], shape[1])
        } else {
            (1, shape[0])
        };
        index.insert(name.clone(), (i, r, c));
        values.push(p.to_host());
    }
    (index, values)
}

#[derive(Clone, Copy)]
enum At {
    Static,
    Step(u32),
    Range(u32),
}

#[derive(Clone, Copy)]
enum Val {
    Num(f32),
    Rows(View),
    /// An unbatched `(r, c)` buffer.
    Un(View),
}

/// The stacked `(T·b)`-row buffers of one per-step net call: per layer (MLP) the output and
/// the pre-activation gradient; for a GRU `[gates, ghn, gi, gh]`. `last` is the last step
/// built (a second call at the same step gets its own buffers).
struct Site {
    outs: Vec<BufId>,
    scratch: Vec<BufId>,
    /// Layer 0's inputs (for the GRU: and `h`) are plain reads, so its parameter gradient is
    /// deferred too.
    first_deferred: bool,
    last: u32,
}

/// Recorded q parameters (and TanhNormal's pre-squash values) of a sampled latent.
#[derive(Clone, Copy)]
struct Rec {
    family: Family,
    loc: BufId,
    scale: BufId,
    pre: Option<BufId>,
}

struct Builder<'a> {
    prog: &'a Program,
    m: &'a Model,
    params: &'a ParamIndex,
    g: Graph,
    pre: Vec<Op>,
    b: usize,
    tt: usize,
    k: usize,
    vars: HashMap<VarId, BufId>,
    recs: HashMap<VarId, Rec>,
    pbuf: HashMap<usize, BufId>,
    consts: HashMap<(usize, usize, u32), BufId>,
    /// Per call site: a chain net's first-layer data share, or a net over time's output.
    precomp: HashMap<*const Expr, BufId>,
    /// Per-step net calls of the chain: buffers stacked over steps, so the parameter
    /// gradients of all steps are one product after the loop.
    sites: HashMap<*const Expr, Site>,
    in_chain: bool,
    noise: Vec<View>,
    noise_meta: Vec<(super::families::Noise, usize)>,
    noise_bufs: HashMap<VarId, BufId>,
    data: Vec<DataSlot>,
    /// Set while lowering an overshooting window ([`overshoot`]).
    win: Option<overshoot::Win>,
    /// p's `(loc, scale)` over a KL-like term's range, by p factor, and the range's first
    /// step (an overshooting window reuses them).
    pviews: PViews,
    /// Discrete latents: records, enumeration, score-function rows (`build/discrete.rs`).
    disc: discrete::Disc,
    /// A step program ([`Stepper`]): where each variable's value at each step lives, given
    /// by the caller instead of planned here.
    ext: Option<HashMap<(VarId, i64), View>>,
    /// The parameters that get gradients (`None`: all of them).
    learn: Option<&'a HashSet<usize>>,
    /// Drawing only (`vic sample`): every sampled variable, discrete or continuous, latent or
    /// observed, is drawn from its factor with fresh noise; nothing is recorded or summed.
    sampling: bool,
    /// The batch mask buffer, once a chain summed out reads it (`build/hmm.rs`).
    mask: Option<BufId>,
}

/// p's `(loc, scale)` views over a term's range and the range's first step, by p factor.
type PViews = HashMap<FactorId, (View, View, u32)>;

/// Lower `prog` for `b` sequences of `tt` steps.
pub fn build(prog: &Program, params: &ParamIndex, b: usize, tt: usize) -> R<Built> {
    let disc = discrete::Disc::new(prog, b)?;
    let mut bd = Builder::blank(prog, params, disc.rows(b), tt, disc);
    bd.run()?;
    let mut terms = bd.terms()?;
    terms.extend(bd.overshooting()?);
    Ok(bd.finish(terms))
}

impl<'a> Builder<'a> {
    /// The program built, with `terms` read out of it.
    fn finish(mut self, terms: Vec<TermOut>) -> Built {
        let m = self.m;
        // Data-only first-layer products run before everything else.
        let mut ops = std::mem::take(&mut self.pre);
        ops.append(&mut self.g.ops);
        self.g.ops = ops;
        let mut chain: Vec<(VarId, BufId)> = (self.vars.iter())
            .filter(|(v, _)| {
                m.vars[**v].timed && matches!(m.vars[**v].role, Role::Latent | Role::State)
            })
            .map(|(v, b)| (*v, *b))
            .collect();
        chain.sort();
        Built {
            tiles: self.disc.tiles(),
            sf: std::mem::take(&mut self.disc.sf),
            g: self.g,
            data: self.data,
            noise: self.noise,
            noise_meta: self.noise_meta,
            terms,
            chain,
            k: self.k,
            mask: self.mask,
        }
    }

    /// A fresh noise buffer of `rows × cols`, drawn before each forward pass.
    fn fresh_noise(&mut self, rows: usize, cols: usize, kind: super::families::Noise) -> View {
        let buf = self.g.buf(rows, cols, BufKind::Noise, false);
        let v = self.g.all(buf);
        self.push_noise(v, kind);
        v
    }

    /// A builder with nothing built, for `b` rows of `tt` steps.
    fn blank(
        prog: &'a Program,
        params: &'a ParamIndex,
        b: usize,
        tt: usize,
        disc: discrete::Disc,
    ) -> Self {
        Builder {
            prog,
            m: &prog.model,
            params,
            g: Graph::default(),
            pre: Vec::new(),
            b,
            tt,
            k: prog.lag_steps(),
            vars: HashMap::new(),
            recs: HashMap::new(),
            pbuf: HashMap::new(),
            consts: HashMap::new(),
            precomp: HashMap::new(),
            sites: HashMap::new(),
            in_chain: false,
            noise: Vec::new(),
            noise_meta: Vec::new(),
            noise_bufs: HashMap::new(),
            data: Vec::new(),
            win: None,
            pviews: HashMap::new(),
            disc,
            ext: None,
            learn: None,
            sampling: false,
            mask: None,
        }
    }
}

impl Builder<'_> {
    fn rows(&self, at: At) -> usize {
        match at {
            At::Static | At::Step(_) => self.b,
            At::Range(s) => (self.tt + 1 - s as usize) * self.b,
        }
    }

    fn temp(&mut self, rows: usize, cols: usize, grad: bool) -> View {
        let b = self.g.buf(rows, cols, BufKind::Temp, grad);
        self.g.all(b)
    }

    fn op(&mut self, op: Op) {
        self.g.ops.push(op);
    }

    /// A noise view, drawn before each forward pass in the reference order: one block of the
    /// batch's rows, or one per enumerated value when the batch is tiled over them (the
    /// reference draws for its whole tiled batch).
    fn push_noise(&mut self, v: View, kind: super::families::Noise) {
        let base = self.disc.en.as_ref().map_or(self.b, |e| e.base).max(1);
        self.noise.push(v);
        self.noise_meta.push((kind, (v.rows / base).max(1)));
    }

    /// The buffer holding a variable's values (padded if timed).
    fn var_buf(&mut self, v: VarId) -> BufId {
        if let Some(b) = self.vars.get(&v) {
            return *b;
        }
        let var = &self.m.vars[v];
        let size = var.ty.size();
        let grad = matches!(var.role, Role::Latent | Role::State);
        let rows = if var.timed {
            (self.k + self.tt + self.lead_of(v)) * self.b
        } else if grad {
            self.b
        } else {
            self.disc.base_rows(self.b)
        };
        let kind = if grad { BufKind::Temp } else { BufKind::Data };
        let buf = self.g.buf(rows, size, kind, grad);
        self.vars.insert(v, buf);
        buf
    }

    /// The steps past the last one a data variable's buffer keeps (zeros, never written by
    /// the data): the largest lead q reads (`y[t+k]`, a smoothing window).
    fn lead_of(&self, v: VarId) -> usize {
        if matches!(self.m.vars[v].role, Role::Observed | Role::Input) {
            self.m.max_lead() as usize
        } else {
            0
        }
    }

    fn step_view(&mut self, v: VarId, s: i64) -> R<View> {
        if let Some(ext) = &self.ext {
            return ext.get(&(v, s)).copied().ok_or_else(|| {
                Unsupported(format!(
                    "`{}` at step {s} has no value here",
                    self.m.vars[v].name
                ))
            });
        }
        if let Some(view) = self.win_view(v, s)? {
            return Ok(view);
        }
        let buf = self.var_buf(v);
        let i = s + self.k as i64 - 1;
        if i < 0 || i as usize >= self.k + self.tt + self.lead_of(v) {
            return unsup(format!("step {s} of `{}`", self.m.vars[v].name));
        }
        Ok(View {
            buf,
            r0: i as usize * self.b,
            rows: self.b,
        })
    }

    fn param(&mut self, name: &str) -> R<BufId> {
        let Some(&(i, r, c)) = self.params.get(name) else {
            return unsup(format!("parameter `{name}` is missing"));
        };
        if let Some(b) = self.pbuf.get(&i) {
            return Ok(*b);
        }
        let grad = self.learn.is_none_or(|l| l.contains(&i));
        let b = self.g.buf(r, c, BufKind::Param(i), grad);
        self.pbuf.insert(i, b);
        Ok(b)
    }

    /// A constant buffer `(rows, cols)` filled with `v` (shared).
    fn fill(&mut self, rows: usize, cols: usize, v: f32) -> View {
        let key = (rows, cols, v.to_bits());
        if let Some(b) = self.consts.get(&key) {
            return self.g.all(*b);
        }
        let b = self.g.buf(rows, cols, BufKind::Const, false);
        self.g.bufs[b].init = Some(vec![v; rows * cols]);
        self.consts.insert(key, b);
        self.g.all(b)
    }

    fn constant(&mut self, shape: &Shape, values: &[f64]) -> Val {
        let v: Vec<f32> = values.iter().map(|x| *x as f32).collect();
        let (r, c) = match shape.0.as_slice() {
            [] => return Val::Num(v[0]),
            [n] => (1, *n),
            [r, c] => (*r, *c),
            _ => (1, v.len()),
        };
        let b = self.g.buf(r, c, BufKind::Const, false);
        self.g.bufs[b].init = Some(v);
        Val::Un(self.g.all(b))
    }

    /// Any value as `(rows, n)`.
    fn as_rows(&mut self, v: Val, rows: usize, n: usize) -> R<View> {
        Ok(match v {
            Val::Num(x) => self.fill(rows, n, x),
            Val::Rows(x) => {
                let c = self.g.cols(x);
                if c == n {
                    x
                } else if c == 1 {
                    let grad = self.g.grad(x);
                    let out = self.temp(rows, n, grad);
                    self.op(Op::Copy {
                        x: Opd { v: x, bc: Bc::Col },
                        out,
                    });
                    out
                } else {
                    return unsup("a width mismatch");
                }
            }
            Val::Un(x) if x.rows > 1 && x.rows * self.g.cols(x) == n => {
                // A matrix read as its values, row-major (a `scale_tril`).
                let grad = self.g.grad(x);
                let out = self.temp(rows, n, grad);
                self.op(Op::Fam(super::families::FamOp::Special(
                    super::special::SpecialOp::Flatten { x, out },
                )));
                out
            }
            Val::Un(x) => {
                let c = self.g.cols(x);
                if x.rows != 1 {
                    return unsup("a matrix where rows are expected");
                }
                let bc = if c == n {
                    Bc::Row
                } else if c == 1 {
                    Bc::Scalar
                } else {
                    return unsup("a width mismatch");
                };
                let grad = self.g.grad(x);
                let out = self.temp(rows, n, grad);
                self.op(Op::Copy {
                    x: Opd { v: x, bc },
                    out,
                });
                out
            }
        })
    }

    fn copy_into(&mut self, x: View, out: View) {
        if x != out {
            if self.g.grad(x) {
                self.g.bufs[out.buf].grad = true;
            }
            self.op(Op::Copy {
                x: Opd { v: x, bc: Bc::Full },
                out,
            });
        }
    }

    fn read(&mut self, var: VarId, time: TimeRef, at: At) -> R<View> {
        let timed = self.m.vars[var].timed;
        if self.ext.is_some() {
            return match (time, at) {
                (TimeRef::Lag(j), At::Step(t)) => self.step_view(var, i64::from(t) - i64::from(j)),
                (TimeRef::Step(s), _) => self.step_view(var, s),
                // A static variable: the caller places it at step 0.
                (TimeRef::Static, _) => self.step_view(var, 0),
                _ => unsup(format!(
                    "the read of `{}` in a step program (lags and steps only)",
                    self.m.vars[var].name
                )),
            };
        }
        match (time, at) {
            (TimeRef::Static, At::Range(_)) => {
                let buf = self.var_buf(var);
                let x = self.g.all(buf);
                let rows = self.rows(at);
                let grad = self.g.grad(x);
                let out = self.temp(rows, self.g.cols(x), grad);
                self.op(Op::Tile { x, out });
                Ok(out)
            }
            (TimeRef::Static, _) => {
                let buf = self.var_buf(var);
                let x = self.g.all(buf);
                Ok(self.enum_data(var, x))
            }
            (TimeRef::Lag(j), At::Step(t)) => self.step_view(var, i64::from(t) - i64::from(j)),
            (TimeRef::Step(s), _) if timed => self.step_view(var, s),
            // A data variable ahead: its buffer's trailing steps are zeros.
            (TimeRef::Lead(_), At::Range(_)) if self.win.is_some() => {
                unsup("a read over a range in an overshooting window")
            }
            (TimeRef::Lead(j), At::Step(t)) => self.step_view(var, i64::from(t) + i64::from(j)),
            (TimeRef::Lead(j), At::Range(s)) => {
                let first = self.step_view(var, i64::from(s) + i64::from(j))?;
                Ok(View {
                    rows: self.rows(at),
                    ..first
                })
            }
            // A sequence read in an argument of a net over time: each step's own value.
            (TimeRef::Suffix | TimeRef::Prefix, At::Step(_) | At::Range(_)) if timed => {
                self.read(var, TimeRef::Lag(0), at)
            }
            // A window's steps are not one contiguous view of its buffers.
            (TimeRef::Lag(_), At::Range(_)) if self.win.is_some() => {
                unsup("a read over a range in an overshooting window")
            }
            (TimeRef::Lag(j), At::Range(s)) => {
                let first = self.step_view(var, i64::from(s) - i64::from(j))?;
                Ok(View {
                    rows: self.rows(at),
                    ..first
                })
            }
            _ => unsup("a read outside its context"),
        }
    }

    fn eval(&mut self, e: &Expr, at: At) -> R<Val> {
        if let Some(v) = self.enum_base(e, at)? {
            return Ok(v);
        }
        Ok(match &e.kind {
            ExprKind::Num(v) => Val::Num(*v as f32),
            ExprKind::Const(c) => {
                let c = &self.m.consts[*c];
                self.constant(&c.shape, &c.values)
            }
            ExprKind::Array(vs) => self.constant(&e.shape, vs),
            ExprKind::Fill(v) => self.constant(&e.shape, &vec![*v; e.shape.numel()]),
            ExprKind::Eye => {
                let n = e.shape.0[0];
                let vals: Vec<f64> = (0..n * n)
                    .map(|i| f64::from(u8::from(i / n == i % n)))
                    .collect();
                self.constant(&e.shape, &vals)
            }
            ExprKind::Param(id) => {
                let b = self.param(&param_name(self.m, *id))?;
                Val::Un(self.g.all(b))
            }
            ExprKind::Var { var, time } => Val::Rows(self.read(*var, *time, at)?),
            ExprKind::Unary { op, arg } => match self.eval(arg, at)? {
                Val::Num(v) => Val::Num(crate::lower::num_op(*op, v)),
                Val::Rows(x) => Val::Rows(self.unary(un_of(*op), x)),
                Val::Un(x) => Val::Un(self.unary(un_of(*op), x)),
            },
            ExprKind::Binary {
                op: BinOp::MatMul,
                lhs,
                rhs,
            } => {
                let a = self.eval(lhs, at)?;
                let b = self.eval(rhs, at)?;
                match (a, b) {
                    (Val::Un(a), Val::Rows(x)) => Val::Rows(self.gemm(x, a.buf, true)),
                    (Val::Un(a), Val::Un(x)) if x.rows == 1 && self.g.bufs[a.buf].rows > 1 => {
                        Val::Un(self.gemm(x, a.buf, true))
                    }
                    (Val::Rows(x), Val::Un(a)) => Val::Rows(self.gemm(x, a.buf, false)),
                    (Val::Un(x), Val::Un(a)) => Val::Un(self.gemm(x, a.buf, false)),
                    _ => return unsup("a matmul of these operands"),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.eval(lhs, at)?;
                let b = self.eval(rhs, at)?;
                self.binary(*op, a, b, at)?
            }
            ExprKind::Dot(a, b) => {
                let rows = self.rows(at);
                let n = a.shape.numel();
                let x = self.eval(a, at)?;
                let x = self.as_rows(x, rows, n)?;
                let y = self.eval(b, at)?;
                let y = self.as_rows(y, rows, n)?;
                let p = self.bin_views(Bin::Mul, x, Bc::Full, y, Bc::Full, rows, n);
                Val::Rows(self.row_sum(p))
            }
            ExprKind::Sum(a) => {
                let rows = self.rows(at);
                let n = a.shape.numel();
                let x = self.eval(a, at)?;
                let x = self.as_rows(x, rows, n)?;
                Val::Rows(self.row_sum(x))
            }
            ExprKind::Concat(xs) => {
                let rows = self.rows(at);
                let mut parts = Vec::new();
                for x in xs {
                    let v = self.eval(x, at)?;
                    parts.push(self.as_rows(v, rows, x.shape.numel())?);
                }
                let n: usize = parts.iter().map(|p| self.g.cols(*p)).sum();
                let grad = parts.iter().any(|p| self.g.grad(*p));
                let out = self.temp(rows, n, grad);
                self.op(Op::Concat { parts, out });
                Val::Rows(out)
            }
            ExprKind::Select { arg, index } => {
                let x = self.eval(arg, at)?;
                match x {
                    Val::Num(v) => Val::Num(v),
                    Val::Un(x) => Val::Un(self.slice(x, *index, 1)),
                    x => {
                        let rows = self.rows(at);
                        let v = self.as_rows(x, rows, arg.shape.numel())?;
                        Val::Rows(self.slice(v, *index, 1))
                    }
                }
            }
            ExprKind::Clamp { arg, low, high } => {
                let lo = self.eval(low, at)?;
                let hi = self.eval(high, at)?;
                let (Val::Num(lo), Val::Num(hi)) = (lo, hi) else {
                    return Ok(Val::Rows(self.clamp_tensor(arg, lo, hi, at)?));
                };
                match self.eval(arg, at)? {
                    // `f32::clamp` panics on reversed or NaN bounds.
                    Val::Num(v) => Val::Num(v.max(lo).min(hi)),
                    Val::Rows(x) => Val::Rows(self.unary(Un::Clamp(lo, hi), x)),
                    Val::Un(x) => Val::Un(self.unary(Un::Clamp(lo, hi), x)),
                }
            }
            ExprKind::Net { .. } | ExprKind::Gru { .. } => Val::Rows(self.net(e, at, None)?),
            ExprKind::Rnn { .. } => Val::Rows(self.rnn(e, at)?),
        })
    }

    fn unary(&mut self, op: Un, x: View) -> View {
        let grad = op != Un::StopGrad && self.g.grad(x);
        let out = self.temp(x.rows, self.g.cols(x), grad);
        self.op(Op::Unary { op, x, out });
        out
    }

    fn slice(&mut self, x: View, c0: usize, n: usize) -> View {
        let grad = self.g.grad(x);
        let out = self.temp(x.rows, n, grad);
        self.op(Op::Slice { x, c0, out });
        out
    }

    fn row_sum(&mut self, x: View) -> View {
        let grad = self.g.grad(x);
        let out = self.temp(x.rows, 1, grad);
        self.op(Op::RowSum { x, out });
        out
    }

    fn gemm(&mut self, a: View, b: BufId, tb: bool) -> View {
        let bb = &self.g.bufs[b];
        let n = if tb { bb.rows } else { bb.cols };
        let grad = self.g.grad(a) || bb.grad;
        let out = self.temp(a.rows, n, grad);
        self.op(Op::Gemm { a, b, tb, out });
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn bin_views(
        &mut self,
        op: Bin,
        a: View,
        abc: Bc,
        b: View,
        bbc: Bc,
        rows: usize,
        n: usize,
    ) -> View {
        let grad = self.g.grad(a) || self.g.grad(b);
        let out = self.temp(rows, n, grad);
        self.op(Op::Binary {
            op,
            a: Opd { v: a, bc: abc },
            b: Opd { v: b, bc: bbc },
            out,
        });
        out
    }

    fn binary(&mut self, op: BinOp, a: Val, b: Val, at: At) -> R<Val> {
        let bop = match op {
            BinOp::Add => Bin::Add,
            BinOp::Sub => Bin::Sub,
            BinOp::Mul => Bin::Mul,
            _ => Bin::Div,
        };
        let num = |x: f32, y: f32| match bop {
            Bin::Add => x + y,
            Bin::Sub => x - y,
            Bin::Mul => x * y,
            Bin::Div => x / y,
        };
        let wrap = |v: &Val, out: View| match v {
            Val::Un(_) => Val::Un(out),
            _ => Val::Rows(out),
        };
        Ok(match (a, b) {
            (Val::Num(x), Val::Num(y)) => Val::Num(num(x, y)),
            (v @ (Val::Rows(t) | Val::Un(t)), Val::Num(y)) => {
                let un = match bop {
                    Bin::Add => Un::Affine(1.0, y),
                    Bin::Sub => Un::Affine(1.0, -y),
                    Bin::Mul => Un::Affine(y, 0.0),
                    Bin::Div => Un::Affine(1.0 / y, 0.0),
                };
                wrap(&v, self.unary(un, t))
            }
            (Val::Num(x), v @ (Val::Rows(t) | Val::Un(t))) => {
                let un = match bop {
                    Bin::Add => Un::Affine(1.0, x),
                    Bin::Sub => Un::Affine(-1.0, x),
                    Bin::Mul => Un::Affine(x, 0.0),
                    Bin::Div => Un::RDiv(x),
                };
                wrap(&v, self.unary(un, t))
            }
            (Val::Un(x), Val::Un(y)) => {
                let (cx, cy) = (self.g.cols(x), self.g.cols(y));
                if x.rows != y.rows {
                    return unsup("unbatched operands of different shapes");
                }
                let n = cx.max(cy);
                let bc = |c: usize| if c == n { Bc::Full } else { Bc::Col };
                Val::Un(self.bin_views(bop, x, bc(cx), y, bc(cy), x.rows, n))
            }
            (a, b) => {
                let rows = self.rows(at);
                let side = |s: &Self, v: Val| -> (View, usize, bool) {
                    match v {
                        Val::Rows(x) => (x, s.g.cols(x), false),
                        Val::Un(x) => (x, s.g.cols(x), true),
                        Val::Num(_) => unreachable!("numbers handled above"),
                    }
                };
                let (x, cx, ux) = side(self, a);
                let (y, cy, uy) = side(self, b);
                if (ux && x.rows != 1) || (uy && y.rows != 1) {
                    return unsup("a matrix in an elementwise op with rows");
                }
                let n = cx.max(cy);
                let bc = |c: usize, un: bool| match (un, c == n) {
                    (false, true) => Bc::Full,
                    (false, false) => Bc::Col,
                    (true, true) => Bc::Row,
                    (true, false) => Bc::Scalar,
                };
                Val::Rows(self.bin_views(bop, x, bc(cx, ux), y, bc(cy, uy), rows, n))
            }
        })
    }

    /// Whether an argument only reads data (observed or input) at a lag: its share of a
    /// first layer can run for all steps before the chain.
    fn data_only(&self, e: &Expr) -> bool {
        matches!(e.kind, ExprKind::Var { var, time: TimeRef::Lag(_) }
            if matches!(self.m.vars[var].role, Role::Observed | Role::Input) && self.m.vars[var].timed)
    }

    /// Arguments as dense-layer inputs `(view, first weight row)`.
    fn dense_inputs(
        &mut self,
        args: &[Expr],
        at: At,
        keep: impl Fn(&Self, &Expr) -> bool,
    ) -> R<Vec<DenseIn>> {
        let rows = self.rows(at);
        let mut off = 0;
        let mut xs = Vec::new();
        for a in args {
            let n = a.shape.numel();
            if keep(self, a) {
                let v = self.eval(a, at)?;
                xs.push((self.as_rows(v, rows, n)?, off));
            }
            off += n;
        }
        Ok(xs)
    }

    /// Whether an argument is a plain read of a timed variable at a lag (its values over all
    /// steps are one contiguous view).
    fn plain_read(&self, e: &Expr) -> bool {
        matches!(e.kind, ExprKind::Var { var, time: TimeRef::Lag(_) } if self.m.vars[var].timed)
    }

    /// Rows of step `t` of a stacked buffer, or steps `t ..= T` with `all`.
    fn stacked(&self, buf: BufId, t: u32, all: bool) -> View {
        let r0 = (t as usize - 1) * self.b;
        let rows = if all { self.tt * self.b - r0 } else { self.b };
        View { buf, r0, rows }
    }

    /// The stacked buffers of a per-step chain call (`None` outside the chain, or for a
    /// second call at the same step); creates them, and the deferred gradient ops, on the
    /// first call. `sizes`: each buffer's columns; `first`: layer 0's inputs are plain reads.
    fn site(
        &mut self,
        e: &Expr,
        at: At,
        sizes: &[usize],
        with_outs: bool,
        first: bool,
    ) -> Option<(u32, bool)> {
        let At::Step(t) = at else { return None };
        if !self.in_chain {
            return None;
        }
        let key: *const Expr = e;
        if let Some(site) = self.sites.get_mut(&key) {
            if site.last >= t {
                return None;
            }
            site.last = t;
            return Some((t, false));
        }
        let rows = self.tt * self.b;
        let outs = sizes
            .iter()
            .filter(|_| with_outs)
            .map(|c| self.g.buf(rows, *c, BufKind::Temp, true))
            .collect();
        let scratch = sizes
            .iter()
            .map(|c| self.g.buf(rows, *c, BufKind::Temp, false))
            .collect();
        self.sites.insert(
            key,
            Site {
                outs,
                scratch,
                first_deferred: first,
                last: t,
            },
        );
        Some((t, true))
    }

    /// An MLP or GRU call, written into `dest` when given.
    fn net(&mut self, e: &Expr, at: At, dest: Option<View>) -> R<View> {
        let rows = self.rows(at);
        match &e.kind {
            ExprKind::Net { net, args } => {
                let NetKind::Mlp { sizes, activation } = &self.m.nets[*net].kind else {
                    return unsup("a net call of a non-MLP");
                };
                let act = *activation;
                let prefix = net_prefix(self.m, *net);
                let layers = sizes.len() - 1;
                let split = self.win.is_none()
                    && self.ext.is_none()
                    && !self.sampling
                    && matches!(at, At::Step(_))
                    && args.iter().any(|a| self.data_only(a));
                let keep = |s: &Self, a: &Expr| !split || !s.data_only(a);
                let first = args.iter().all(|a| !keep(self, a) || self.plain_read(a));
                let site = self.site(e, at, &sizes[1..], true, first);
                let (mut xs, add) = if split {
                    let t = match at {
                        At::Step(t) => t as usize,
                        _ => 1,
                    };
                    let key: *const Expr = e;
                    let pbuf = match self.precomp.get(&key) {
                        Some(b) => *b,
                        None => {
                            // First layer's data share, all steps: rows (t−1)·b.. of step t.
                            let all = At::Range(1);
                            let dx = self.dense_inputs(args, all, |s, a| s.data_only(a))?;
                            let w = self.param(&format!("{prefix}.l0.w"))?;
                            let bias = self.param(&format!("{prefix}.l0.b"))?;
                            let out = self.temp(self.rows(all), sizes[1], true);
                            let scratch = self.temp(self.rows(all), sizes[1], false);
                            self.pre.push(Op::Dense {
                                xs: dx,
                                w,
                                b: Some(bias),
                                add: None,
                                act: Act::Identity,
                                out,
                                scratch,
                                wgrad: true,
                            });
                            self.precomp.insert(key, out.buf);
                            out.buf
                        }
                    };
                    let add = View {
                        buf: pbuf,
                        r0: (t - 1) * self.b,
                        rows: self.b,
                    };
                    (self.dense_inputs(args, at, keep)?, Some(add))
                } else if let Some((xs, add)) = self.enum_split(args, at, &prefix, sizes[1])? {
                    (xs, Some(add))
                } else {
                    (self.dense_inputs(args, at, |_, _| true)?, None)
                };
                if let Some((t, true)) = site {
                    // The deferred parameter gradients, placed before the chain.
                    let sv = &self.sites[&(e as *const Expr)];
                    let (outs, scratch, first) =
                        (sv.outs.clone(), sv.scratch.clone(), sv.first_deferred);
                    for i in 0..layers {
                        let w = self.param(&format!("{prefix}.l{i}.w"))?;
                        let bias = self.param(&format!("{prefix}.l{i}.b"))?;
                        let dpre = self.stacked(scratch[i], t, true);
                        let op = if i == 0 {
                            if !first {
                                continue;
                            }
                            let mut fx = Vec::new();
                            let mut off = 0;
                            for a in args {
                                if keep(self, a) {
                                    let ExprKind::Var { var, time } = a.kind else {
                                        unreachable!("checked by plain_read")
                                    };
                                    fx.push((self.read(var, time, At::Range(t))?, off));
                                }
                                off += a.shape.numel();
                            }
                            Op::DenseGrad {
                                xs: fx,
                                dpre,
                                w,
                                b: (!split).then_some(bias),
                            }
                        } else {
                            Op::DenseGrad {
                                xs: vec![(self.stacked(outs[i - 1], t, true), 0)],
                                dpre,
                                w,
                                b: Some(bias),
                            }
                        };
                        self.pre.push(op);
                    }
                }
                let mut h = View {
                    buf: 0,
                    r0: 0,
                    rows,
                };
                // Whether a layer's output has a gradient: its inputs or a weight have one.
                let mut grad =
                    xs.iter().any(|(v, _)| self.g.grad(*v)) || add.is_some_and(|a| self.g.grad(a));
                for i in 0..layers {
                    let w = self.param(&format!("{prefix}.l{i}.w"))?;
                    let bias = self.param(&format!("{prefix}.l{i}.b"))?;
                    grad |= self.g.bufs[w].grad || self.g.bufs[bias].grad;
                    let last = i + 1 == layers;
                    let (out, scratch, wgrad) = match site {
                        Some((t, _)) => {
                            let sv = &self.sites[&(e as *const Expr)];
                            let deferred = i > 0 || sv.first_deferred;
                            let (o, sc) = (sv.outs[i], sv.scratch[i]);
                            (
                                self.stacked(o, t, false),
                                self.stacked(sc, t, false),
                                !deferred,
                            )
                        }
                        None => (
                            self.temp(rows, sizes[i + 1], grad),
                            self.temp(rows, sizes[i + 1], false),
                            true,
                        ),
                    };
                    let out = match (last, dest) {
                        (true, Some(d)) => {
                            self.g.bufs[d.buf].grad = true;
                            d
                        }
                        _ => out,
                    };
                    let (inputs, b, a) = if i == 0 {
                        (
                            std::mem::take(&mut xs),
                            if add.is_some() { None } else { Some(bias) },
                            add,
                        )
                    } else {
                        (vec![(h, 0)], Some(bias), None)
                    };
                    self.op(Op::Dense {
                        xs: inputs,
                        w,
                        b,
                        add: a,
                        act: if last { Act::Identity } else { act },
                        out,
                        scratch,
                        wgrad,
                    });
                    h = out;
                }
                Ok(h)
            }
            ExprKind::Gru { net, hidden, args } => {
                let NetKind::Gru { hidden: hd, .. } = self.m.nets[*net].kind else {
                    return unsup("a cell call of a non-GRU");
                };
                let prefix = net_prefix(self.m, *net);
                let first = self.plain_read(hidden) && args.iter().all(|a| self.plain_read(a));
                let site = self.site(e, at, &[3 * hd, hd, 3 * hd, 3 * hd], false, first);
                let hv = self.eval(hidden, at)?;
                let h = self.as_rows(hv, rows, hd)?;
                let xs = self.dense_inputs(args, at, |_, _| true)?;
                let wi = self.param(&format!("{prefix}.w_i"))?;
                let wh = self.param(&format!("{prefix}.w_h"))?;
                let bi = self.param(&format!("{prefix}.b_i"))?;
                let bh = self.param(&format!("{prefix}.b_h"))?;
                let grad = self.g.grad(h)
                    || xs.iter().any(|(v, _)| self.g.grad(*v))
                    || [wi, wh, bi, bh].iter().any(|p| self.g.bufs[*p].grad);
                let out = match dest {
                    Some(d) => {
                        self.g.bufs[d.buf].grad = true;
                        d
                    }
                    None => self.temp(rows, hd, grad),
                };
                let (gates, ghn, gi, gh, wgrad) = match site {
                    Some((t, created)) => {
                        let sc = self.sites[&(e as *const Expr)].scratch.clone();
                        if created && first {
                            let ExprKind::Var { var, time } = hidden.kind else {
                                unreachable!("checked by plain_read")
                            };
                            let hall = self.read(var, time, At::Range(t))?;
                            let mut fx = Vec::new();
                            let mut off = 0;
                            for a in args {
                                let ExprKind::Var { var, time } = a.kind else {
                                    unreachable!("checked by plain_read")
                                };
                                fx.push((self.read(var, time, At::Range(t))?, off));
                                off += a.shape.numel();
                            }
                            let (dgi, dgh) =
                                (self.stacked(sc[2], t, true), self.stacked(sc[3], t, true));
                            self.pre.push(Op::GruGrad {
                                xs: fx,
                                h: hall,
                                dgi,
                                dgh,
                                wi,
                                wh,
                                bi,
                                bh,
                            });
                        }
                        let v = |s: &Self, i: usize| s.stacked(sc[i], t, false);
                        (v(self, 0), v(self, 1), v(self, 2), v(self, 3), !first)
                    }
                    None => (
                        self.temp(rows, 3 * hd, false),
                        self.temp(rows, hd, false),
                        self.temp(rows, 3 * hd, false),
                        self.temp(rows, 3 * hd, false),
                        true,
                    ),
                };
                self.op(Op::Gru {
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
                    wgrad,
                });
                Ok(out)
            }
            _ => unsup("not a net"),
        }
    }

    /// Evaluate into `dest`.
    fn eval_into(&mut self, e: &Expr, at: At, dest: View) -> R<()> {
        if matches!(e.kind, ExprKind::Net { .. } | ExprKind::Gru { .. }) {
            self.net(e, at, Some(dest))?;
            return Ok(());
        }
        let v = self.eval(e, at)?;
        let n = self.g.cols(dest);
        let x = self.as_rows(v, dest.rows, n)?;
        self.copy_into(x, dest);
        Ok(())
    }

    /// A distribution's (loc, scale), bounds (a Uniform's, in the same slots) or logits at
    /// `at`, into `dest` when given.
    fn dist(
        &mut self,
        d: &Dist,
        at: At,
        size: usize,
        dest: Option<(View, View)>,
    ) -> R<(View, Option<View>)> {
        let rows = self.rows(at);
        match &d.args {
            DistArgs::LocScale { loc, scale }
            | DistArgs::Bounds {
                low: loc,
                high: scale,
            } => {
                let l = self.eval(loc, at)?;
                let l = self.as_rows(l, rows, size)?;
                let s = self.eval(scale, at)?;
                let s = self.as_rows(s, rows, size)?;
                if let Some((dl, ds)) = dest {
                    self.copy_into(l, dl);
                    self.copy_into(s, ds);
                    return Ok((dl, Some(ds)));
                }
                Ok((l, Some(s)))
            }
            DistArgs::Split { head, scale_fn } => {
                let h = self.eval(head, at)?;
                let h = self.as_rows(h, rows, 2 * size)?;
                let (l, s) = match dest {
                    Some(d) => d,
                    None => (self.temp(rows, size, true), self.temp(rows, size, true)),
                };
                let link = match *scale_fn {
                    ScaleFn::Softplus { min } => Link::Softplus(min as f32),
                    ScaleFn::Exp { min } => Link::Exp(min as f32),
                };
                self.op(Op::Split {
                    h,
                    link,
                    loc: l,
                    scale: s,
                });
                Ok((l, Some(s)))
            }
            DistArgs::Logits(l) => {
                let v = self.eval(l, at)?;
                Ok((self.as_rows(v, rows, size)?, None))
            }
            _ => self.dist_other(d, at, size, dest),
        }
    }

    fn rec(&mut self, v: VarId, family: Family) -> Rec {
        if let Some(r) = self.recs.get(&v) {
            return *r;
        }
        let size = self.m.vars[v].ty.size();
        let rows = if self.m.vars[v].timed {
            self.tt * self.b
        } else {
            self.b
        };
        let loc = self.g.buf(rows, size, BufKind::Temp, true);
        // A MultivariateNormal's scale slot holds its `scale_tril`, D² values per row.
        let swidth = match family {
            Family::MultivariateNormal => size * size,
            _ => size,
        };
        let scale = self.g.buf(rows, swidth, BufKind::Temp, true);
        // A TanhNormal's pre-squash value, or a StudentT's df (the third slot).
        let pre = matches!(family, Family::TanhNormal | Family::StudentT)
            .then(|| self.g.buf(rows, size, BufKind::Temp, true));
        let r = Rec {
            family,
            loc,
            scale,
            pre,
        };
        self.recs.insert(v, r);
        r
    }

    /// Rows of a timed record buffer for step `t` (or all of a static one).
    fn rec_rows(&self, buf: BufId, at: At) -> View {
        match at {
            At::Step(t) => View {
                buf,
                r0: (t as usize - 1) * self.b,
                rows: self.b,
            },
            At::Range(s) => View {
                buf,
                r0: (s as usize - 1) * self.b,
                rows: self.rows(at),
            },
            At::Static => self.g.all(buf),
        }
    }

    fn produce(&mut self, cv: &ChainVar, at: At) -> R<()> {
        let t = match at {
            At::Step(t) => t,
            _ => 1,
        };
        let Some(prod) = cv.at(t) else {
            return unsup(format!(
                "no factor for `{}` at step {t}",
                self.m.vars[cv.var].name
            ));
        };
        if self.win_shares(cv.var, t) {
            return Ok(());
        }
        let slot = match at {
            At::Step(t) => self.step_view(cv.var, i64::from(t))?,
            _ => {
                let b = self.var_buf(cv.var);
                self.g.all(b)
            }
        };
        match &self.m.factors[prod.factor].body {
            FactorBody::Define(e) => self.eval_into(e, at, slot),
            FactorBody::Sample(d) if self.sampling => self.draw_into(cv.var, d, at, slot),
            FactorBody::Sample(d) if d.family == Family::Categorical => {
                self.produce_categorical(cv.var, d, at, slot)
            }
            FactorBody::Sample(d) if d.family == Family::Bernoulli => {
                self.produce_bernoulli(cv.var, d, at, slot)
            }
            FactorBody::Sample(d) => {
                let size = self.m.vars[cv.var].ty.size();
                let Some(kind) = families::noise_of(d.family) else {
                    return unsup(format!("sampling a {} latent", d.family.name()));
                };
                let r = self.rec(cv.var, d.family);
                if r.family != d.family {
                    return unsup("a latent whose family changes over time");
                }
                let (dl, ds) = (self.rec_rows(r.loc, at), self.rec_rows(r.scale, at));
                if !self.win_dist(prod.factor, t, (dl, ds)) {
                    self.dist(d, at, size, Some((dl, ds)))?;
                    if d.family == Family::StudentT {
                        let df = r.pre.map(|p| self.rec_rows(p, at));
                        self.third(d, at, size, df)?;
                    }
                }
                let nb = *self.noise_bufs.entry(cv.var).or_insert_with(|| {
                    let rows = if self.m.vars[cv.var].timed {
                        self.tt * self.b
                    } else {
                        self.b
                    };
                    self.g.buf(rows, size, BufKind::Noise, false)
                });
                let eps = self.rec_rows(nb, at);
                self.push_noise(eps, kind);
                let pre = r.pre.map(|p| self.rec_rows(p, at));
                self.draw(d.family, (dl, ds), eps, slot, pre)
            }
        }
    }

    /// A reparameterised draw of a continuous family from its `(loc, scale)` (a Uniform's
    /// bounds) and noise into `out`; `pre` holds a TanhNormal's pre-squash value.
    fn draw(
        &mut self,
        f: Family,
        (loc, scale): (View, View),
        eps: View,
        out: View,
        pre: Option<View>,
    ) -> R<()> {
        match (f, pre) {
            (Family::TanhNormal, Some(u)) => self.op(Op::TanhSample {
                loc,
                scale,
                eps,
                u,
                y: out,
            }),
            (Family::Normal, _) => self.op(Op::NormalSample {
                loc,
                scale,
                eps,
                out,
            }),
            (f, third) => self.sample_other(f, loc, scale, eps, out, third)?,
        }
        Ok(())
    }

    /// A closed-form `KL(q ‖ p)` per row → `(rows, 1)`; `g`: the gradient factors of q and
    /// p (KL balancing), `floor`: per-element free nats (Normal ‖ Normal only).
    fn kl(
        &mut self,
        form: KlForm,
        (ql, qs): (View, View),
        (pl, ps): (View, Option<View>),
        (gq, gp): (f32, f32),
        floor: Option<f32>,
    ) -> R<View> {
        let (KlForm::NormalNormal, Some(ps)) = (form, ps) else {
            return self.kl_other(form, (ql, qs), (pl, ps), (gq, gp));
        };
        let grad = [ql, qs, pl, ps].iter().any(|v| self.g.grad(*v));
        let out = self.temp(ql.rows, 1, grad);
        self.op(Op::NormalKl {
            ql,
            qs,
            pl,
            ps,
            out,
            gq,
            gp,
            floor,
        });
        Ok(out)
    }

    /// A closed-form entropy per row → `(rows, 1)` (`third`: a StudentT's df).
    fn entropy(
        &mut self,
        form: EntropyForm,
        loc: View,
        scale: View,
        third: Option<View>,
    ) -> R<View> {
        if form != EntropyForm::Normal {
            return self.entropy_other(form, loc, scale, third);
        }
        let out = self.temp(scale.rows, 1, self.g.grad(scale));
        self.op(Op::NormalEntropy { scale, out });
        Ok(out)
    }

    fn run(&mut self) -> R<()> {
        let plan = &self.prog.plan;
        self.chain(&plan.statics, |_| &plan.timed)
    }

    /// Data slots and `init` values, then the chain: `statics`, and at each step `t` the
    /// variables of `timed(t)` in order.
    fn chain<'p>(&mut self, statics: &[ChainVar], timed: impl Fn(u32) -> &'p [ChainVar]) -> R<()> {
        let m = self.m;
        for (v, var) in m.vars.iter().enumerate() {
            if matches!(var.role, Role::Observed | Role::Input) {
                let buf = self.var_buf(v);
                self.data.push(DataSlot {
                    var: v,
                    buf,
                    row0: if var.timed { self.k * self.b } else { 0 },
                    timed: var.timed,
                });
            }
        }
        for i in &m.inits {
            let dest = self.step_view(i.var, i.step)?;
            self.eval_into(&i.value, At::Static, dest)?;
        }
        for cv in statics {
            self.produce(cv, At::Static)?;
        }
        // Per-step net calls stack their buffers over steps (training's deferred products).
        self.in_chain = !self.sampling;
        for t in 1..=self.tt as u32 {
            for cv in timed(t) {
                self.produce(cv, At::Step(t))?;
            }
        }
        self.in_chain = false;
        Ok(())
    }

    fn values(&mut self, v: VarId, range: Range) -> R<View> {
        match range {
            Range::Static => self.read(v, TimeRef::Static, At::Static),
            Range::At { t } => self.step_view(v, i64::from(t)),
            Range::From { t } => self.read(v, TimeRef::Lag(0), At::Range(t)),
        }
    }

    fn log_prob(
        &mut self,
        fam: Family,
        x: View,
        loc: View,
        scale: Option<View>,
        pre: Option<View>,
    ) -> R<View> {
        let grad = |s: &Self, vs: &[Option<View>]| vs.iter().flatten().any(|v| s.g.grad(*v));
        let g = grad(self, &[Some(x), Some(loc), scale, pre]);
        let out = self.temp(x.rows, 1, g);
        match (fam, scale, pre) {
            (Family::Normal, Some(s), _) => self.op(Op::NormalLogProb {
                x,
                loc,
                scale: s,
                out,
            }),
            (Family::TanhNormal, Some(s), Some(u)) => self.op(Op::TanhLogProb {
                u,
                loc,
                scale: s,
                out,
            }),
            (Family::Bernoulli, None, _) => self.op(Op::BernoulliLogProb {
                x,
                logits: loc,
                out,
            }),
            _ => return self.log_prob_other(fam, x, loc, scale, out, pre),
        }
        Ok(out)
    }

    fn terms(&mut self) -> R<Vec<TermOut>> {
        let m = self.m;
        let elbo = &self.prog.elbo;
        let mut out = Vec::with_capacity(elbo.terms.len());
        for term in &elbo.terms {
            let tt = self.tt;
            let at = match term.range {
                Range::Static => At::Static,
                Range::At { t } if (t as usize) <= tt => At::Step(t),
                Range::From { t } if (t as usize) <= tt => At::Range(t),
                _ => {
                    out.push(TermOut {
                        rows: None,
                        tp: 0,
                        step0: 0,
                        maskable: false,
                        head: Head::Plain,
                    });
                    continue;
                }
            };
            let (tp, step0) = match at {
                At::Range(s) => (tt + 1 - s as usize, s as usize - 1),
                At::Step(t) => (1, t as usize - 1),
                At::Static => (1, 0),
            };
            let owner_timed = match term.owner_id {
                VarOrOpt::Var(v) => m.vars[v].timed,
                VarOrOpt::Opt(_) => true,
            };
            let maskable = owner_timed && !matches!(term.range, Range::Static);
            if let TermKind::Marginal { .. } = &term.kind {
                let rows = self.marginal_term(term)?;
                out.push(TermOut {
                    rows: Some(rows),
                    tp: 1,
                    step0: 0,
                    maskable: false,
                    head: Head::Plain,
                });
                continue;
            }
            let (rows, head) = match &term.kind {
                _ if self.discrete_term_applies(term) => self.discrete_term(term, at)?,
                TermKind::LogLikelihood { p } => {
                    let f = &m.factors[p.factor];
                    let FactorBody::Sample(d) = &f.body else {
                        return unsup("a likelihood of a definition");
                    };
                    let size = m.vars[f.var].ty.size();
                    let (l, s) = self.dist(d, at, size, None)?;
                    let df = self.third(d, at, size, None)?;
                    let x = self.values(f.var, term.range)?;
                    (self.log_prob(d.family, x, l, s, df)?, Head::Plain)
                }
                TermKind::Kl { p, .. } | TermKind::LogRatio { p, .. } => {
                    let f = &m.factors[p.factor];
                    let v = f.var;
                    let FactorBody::Sample(pd) = &f.body else {
                        return unsup("a KL against a definition");
                    };
                    let size = m.vars[v].ty.size();
                    let (pl, ps) = self.dist(pd, at, size, None)?;
                    if let (At::Range(t0), Some(ps)) = (at, ps) {
                        self.pviews.insert(p.factor, (pl, ps, t0));
                    }
                    let Some(r) = self.recs.get(&v).copied() else {
                        return unsup("a KL of an unsampled latent");
                    };
                    let (ql, qs) = (self.rec_rows(r.loc, at), self.rec_rows(r.scale, at));
                    if let Compute::Kl(form) = term.compute {
                        // The KL op applies balancing and per-element free nats; the factor
                        // and the other floors are the loss head's (`engine`).
                        let Shaping {
                            factor: _,
                            floor,
                            balance,
                        } = shaping(&term.modifiers, 1.0);
                        let (gq, gp) = balance.unwrap_or((1.0, 1.0));
                        let floor = match floor {
                            Some(Floor::Element(n)) => Some(n),
                            Some(Floor::Row(_) | Floor::Mean(_)) | None => None,
                        };
                        if form != KlForm::NormalNormal {
                            let o = self.kl(form, (ql, qs), (pl, ps), (gq, gp), floor)?;
                            out.push(TermOut {
                                rows: Some(o),
                                tp,
                                step0,
                                maskable,
                                head: Head::Kl,
                            });
                            continue;
                        }
                        (
                            self.kl(form, (ql, qs), (pl, ps), (gq, gp), floor)?,
                            Head::Kl,
                        )
                    } else {
                        let z = self.values(v, term.range)?;
                        let pdf = self.third(pd, at, size, None)?;
                        let lp = self.log_prob(pd.family, z, pl, ps, pdf)?;
                        let pre = r.pre.map(|p| self.rec_rows(p, at));
                        let lq = self.log_prob(r.family, z, ql, Some(qs), pre)?;
                        let rows = lp.rows;
                        (
                            self.bin_views(Bin::Sub, lp, Bc::Full, lq, Bc::Full, rows, 1),
                            Head::Plain,
                        )
                    }
                }
                TermKind::Entropy { q, .. } => {
                    let v = m.factors[q.factor].var;
                    let Some(r) = self.recs.get(&v).copied() else {
                        return unsup("an entropy of an unsampled latent");
                    };
                    let (ql, qs) = (self.rec_rows(r.loc, at), self.rec_rows(r.scale, at));
                    let rows = match term.compute {
                        Compute::Entropy(form) => {
                            let third = r.pre.map(|p| self.rec_rows(p, at));
                            self.entropy(form, ql, qs, third)?
                        }
                        Compute::EntropyMc => {
                            let z = self.values(v, term.range)?;
                            let pre = r.pre.map(|p| self.rec_rows(p, at));
                            let lq = self.log_prob(r.family, z, ql, Some(qs), pre)?;
                            self.unary(Un::Affine(-1.0, 0.0), lq)
                        }
                        c => return unsup(format!("the entropy {c:?}")),
                    };
                    (rows, Head::Entropy)
                }
                TermKind::Marginal { .. } => return unsup("a chain term out of place"),
                TermKind::Reward { opt, .. } => {
                    let o = &m.optimality[*opt];
                    let rows = self.rows(at);
                    let r = self.eval(&o.reward, at)?;
                    (self.as_rows(r, rows, 1)?, Head::Reward { opt: *opt })
                }
            };
            let rows = self.enum_fold(term, rows)?;
            out.push(TermOut {
                rows: Some(rows),
                tp,
                step0,
                maskable,
                head,
            });
        }
        Ok(out)
    }
}

fn un_of(op: UnOp) -> Un {
    match op {
        UnOp::Neg => Un::Affine(-1.0, 0.0),
        UnOp::Exp => Un::Exp,
        UnOp::Log => Un::Log,
        UnOp::Softplus => Un::Softplus,
        UnOp::Tanh => Un::Tanh,
        UnOp::Sigmoid => Un::Sigmoid,
        UnOp::Sin => Un::Sin,
        UnOp::Cos => Un::Cos,
        UnOp::Abs => Un::Abs,
        UnOp::Sqrt => Un::Sqrt,
        UnOp::Square => Un::Square,
        UnOp::Relu => Un::Relu,
        UnOp::StopGrad => Un::StopGrad,
    }
}
