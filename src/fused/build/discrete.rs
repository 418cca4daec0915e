//! Lowering of discrete (one-hot) latents to the fused program: categorical draws with
//! straight-through or score-function gradients, exact enumeration, and their terms.
//!
//! Input: the [`Builder`] of `build.rs` at the points it hands over (a categorical factor
//! being produced, a term of a categorical latent or likelihood, an expression or net call
//! while a latent is enumerated). Output: ops of `fused::discrete` over planned buffers,
//! the score-function rows ([`Disc::sf`]) and the enumeration weights.
//! Invariants: the semantics are the reference path's (`reference/exec/dist.rs`, `terms.rs`).
//! With `c via enumerate` (static models only) the program's rows are the reference's tiled
//! batch — block `k` (rows `k·b ..`) holds value `k` of `c` — but whatever reads only data
//! (q(c | x), the data share of a net's first layer) runs once on the `b` base rows and is
//! tiled after, the same numbers with a tenth of the work; every term is weighted by
//! `q(c = k | x)` (with its gradient) and folded back to `b` rows, `c`'s own KL counted
//! once. Draws take one uniform per row and group, in the reference's order.

use super::*;
use crate::fused::discrete::digit;

/// The enumerated latent.
#[derive(Clone, Copy)]
pub(super) struct En {
    var: VarId,
    /// Its number of values (blocks of the tiled batch).
    n: usize,
    /// Sequences of the share (rows of a block).
    pub(super) base: usize,
}

/// State of the discrete lowering.
#[derive(Default)]
pub(super) struct Disc {
    pub(super) en: Option<En>,
    /// Evaluating on the base rows (inside [`Builder::in_base`]).
    base_mode: bool,
    /// Base data buffer → its tiled copy.
    tiled: HashMap<BufId, View>,
    /// Logits recorded for each categorical latent: static ones the rows, timed ones the
    /// whole `(T·b)` buffer.
    pub(super) cats: HashMap<VarId, View>,
    /// The enumeration weights `(n·b, 1)`.
    weight: Option<View>,
    /// Σ log q rows of score-function draws.
    pub(super) sf: Vec<View>,
}

/// Largest number of values enumerated on the fused runtime.
const MAX_VALUES: usize = 4096;

impl Disc {
    /// Check the estimators this lowering runs; `b` sequences in the share.
    pub(super) fn new(prog: &Program, b: usize) -> R<Disc> {
        let m = &prog.model;
        let mut d = Disc::default();
        let mut ids: Vec<_> = prog.estimators.iter().collect();
        ids.sort_by_key(|(v, _)| **v);
        for (v, e) in ids {
            let var = &m.vars[*v];
            let onehot = matches!(var.ty, VarType::OneHot { .. });
            match e {
                Estimator::Reparam => {}
                Estimator::StraightThrough | Estimator::ScoreFunction
                    if onehot || matches!(var.ty, VarType::Binary { .. }) => {}
                // A chain summed out by the forward algorithm (`build/hmm.rs`).
                Estimator::Enumerate if onehot && var.timed => {}
                Estimator::Enumerate if onehot => {
                    if m.vars.iter().any(|x| x.timed) {
                        return unsup(format!(
                            "enumerating `{}` in a model with time-indexed variables",
                            var.name
                        ));
                    }
                    let n = var.ty.support_size().unwrap_or(u64::MAX);
                    if n > MAX_VALUES as u64 {
                        return unsup(format!("enumerating the {n} values of `{}`", var.name));
                    }
                    d.en = Some(En {
                        var: *v,
                        n: n as usize,
                        base: b,
                    });
                }
                _ => return unsup(format!("the estimator of `{}`", var.name)),
            }
        }
        if m.objective.iwae > 1
            && prog
                .estimators
                .values()
                .any(|e| *e == Estimator::ScoreFunction)
        {
            return unsup("the score-function estimator under IWAE");
        }
        Ok(d)
    }

    /// Rows of the program's batch for `b` sequences.
    pub(super) fn rows(&self, b: usize) -> usize {
        self.en.map_or(b, |e| e.n * b)
    }

    /// Rows of a static data buffer when the program's rows are `b`.
    pub(super) fn base_rows(&self, b: usize) -> usize {
        self.en.map_or(b, |e| e.base)
    }

    /// Copies of the batch.
    pub(super) fn tiles(&self) -> usize {
        self.en.map_or(1, |e| e.n)
    }
}

impl Builder<'_> {
    /// Run `f` on the base rows of an enumerated batch.
    fn in_base<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        let Some(en) = self.disc.en else {
            return f(self);
        };
        let (saved, mode) = (self.b, self.disc.base_mode);
        self.b = en.base;
        self.disc.base_mode = true;
        let r = f(self);
        self.b = saved;
        self.disc.base_mode = mode;
        r
    }

    /// Whether an expression reads nothing but data (observed or input variables): its
    /// value is the same in every block of an enumerated batch.
    fn base_only(&self, e: &Expr) -> bool {
        let mut ok = true;
        e.walk(&mut |x| match x.kind {
            ExprKind::Var { var, .. } => {
                ok &= matches!(self.m.vars[var].role, Role::Observed | Role::Input)
            }
            ExprKind::Rnn { .. } | ExprKind::Gru { .. } => ok = false,
            _ => {}
        });
        ok
    }

    /// `x` (base rows) repeated over the blocks of the enumerated batch.
    fn tile_rows(&mut self, x: View) -> View {
        let n = self.disc.en.map_or(1, |e| e.n);
        let grad = self.g.grad(x);
        let out = self.temp(n * x.rows, self.g.cols(x), grad);
        self.op(Op::Tile { x, out });
        out
    }

    /// A static data read outside the base rows: the tiled copy of the data buffer.
    pub(super) fn enum_data(&mut self, var: VarId, x: View) -> View {
        let Some(en) = self.disc.en else { return x };
        if self.disc.base_mode
            || !matches!(self.m.vars[var].role, Role::Observed | Role::Input)
            || x.rows != en.base
        {
            return x;
        }
        if let Some(t) = self.disc.tiled.get(&x.buf) {
            return *t;
        }
        let t = self.tile_rows(x);
        self.disc.tiled.insert(x.buf, t);
        t
    }

    /// An expression of data only, on the tiled batch: computed on the base rows, then
    /// tiled (`None`: evaluate it as usual).
    pub(super) fn enum_base(&mut self, e: &Expr, at: At) -> R<Option<Val>> {
        if self.disc.en.is_none()
            || self.disc.base_mode
            || !matches!(at, At::Static)
            || matches!(e.kind, ExprKind::Var { .. })
            || !self.base_only(e)
        {
            return Ok(None);
        }
        Ok(Some(match self.in_base(|s| s.eval(e, at))? {
            Val::Rows(x) => Val::Rows(self.tile_rows(x)),
            v => v,
        }))
    }

    /// The first layer of a net call on the tiled batch that reads data or the enumerated
    /// latent `c` itself: the data share `Σ xᵢ·W[rowsᵢ] + b` on the base rows, plus `c`'s
    /// share as the weight rows of each block's value (no product: `c` is one-hot and the
    /// same in every row of a block); returns the other inputs and the sum, tiled (the
    /// layer's `add`; it has the bias).
    pub(super) fn enum_split(
        &mut self,
        args: &[Expr],
        at: At,
        prefix: &str,
        width: usize,
    ) -> R<Option<(Vec<DenseIn>, View)>> {
        let Some(en) = self.disc.en else {
            return Ok(None);
        };
        if self.disc.base_mode || !matches!(at, At::Static) {
            return Ok(None);
        }
        let mut c_arg: Option<(&Expr, usize)> = None;
        let mut off = 0;
        for a in args {
            if c_arg.is_none()
                && matches!(a.kind, ExprKind::Var { var, time: TimeRef::Static } if var == en.var)
            {
                c_arg = Some((a, off));
            }
            off += a.shape.numel();
        }
        let any_base = args.iter().any(|a| self.base_only(a));
        if !any_base && c_arg.is_none() {
            return Ok(None);
        }
        // A drawn one-hot latent read whole (exactly one 1 per group): its weight rows.
        let mut hot_arg: Option<(&Expr, Hot)> = None;
        if c_arg.is_some() {
            let mut off = 0;
            for a in args {
                if let ExprKind::Var {
                    var,
                    time: TimeRef::Static,
                } = a.kind
                {
                    let drawn = matches!(
                        self.prog.estimators.get(&var),
                        Some(Estimator::StraightThrough | Estimator::ScoreFunction)
                    );
                    if let (true, None, VarType::OneHot { groups, classes }, Some(_)) = (
                        drawn && var != en.var,
                        hot_arg,
                        self.m.vars[var].ty,
                        self.disc.cats.get(&var),
                    ) {
                        let x = self.read(var, TimeRef::Static, at)?;
                        hot_arg = Some((
                            a,
                            Hot {
                                x,
                                off,
                                groups,
                                classes,
                            },
                        ));
                    }
                }
                off += a.shape.numel();
            }
        }
        let w = self.param(&format!("{prefix}.l0.w"))?;
        let bias = self.param(&format!("{prefix}.l0.b"))?;
        let share = if any_base {
            Some(self.in_base(|s| {
                let xs = s.dense_inputs(args, at, |s, a| s.base_only(a))?;
                let rows = s.rows(at);
                let out = s.temp(rows, width, true);
                let scratch = s.temp(rows, width, false);
                s.op(Op::Dense {
                    xs,
                    w,
                    b: Some(bias),
                    add: None,
                    act: Act::Identity,
                    out,
                    scratch,
                    wgrad: true,
                });
                Ok(out)
            })?)
        } else {
            None
        };
        let add = match (c_arg, share) {
            (Some((_, off)), share) => {
                let VarType::OneHot { groups, classes } = self.m.vars[en.var].ty else {
                    return unsup("an enumerated latent that is not one-hot");
                };
                let out = self.temp(en.n * en.base, width, true);
                self.op(Op::EnumAdd {
                    hot: hot_arg.map(|(_, h)| h),
                    x: share,
                    w,
                    off,
                    groups,
                    classes,
                    n: en.n,
                    bias: share.is_none().then_some(bias),
                    out,
                });
                out
            }
            (None, Some(share)) => self.tile_rows(share),
            (None, None) => return Ok(None),
        };
        let skip: *const Expr = c_arg.map_or(std::ptr::null(), |(a, _)| a);
        let skip_hot: *const Expr = hot_arg.map_or(std::ptr::null(), |(a, _)| a);
        let xs = self.dense_inputs(args, at, |s, a| {
            let p = a as *const Expr;
            !s.base_only(a) && !std::ptr::eq(p, skip) && !std::ptr::eq(p, skip_hot)
        })?;
        Ok(Some((xs, add)))
    }

    /// Classes per group of a categorical variable (a plain vector is one group); `None`
    /// for an empty one.
    fn classes(&self, v: VarId) -> R<usize> {
        let c = match self.m.vars[v].ty {
            VarType::OneHot { classes, .. } => classes,
            ref t => t.size(),
        };
        if c == 0 || !self.m.vars[v].ty.size().is_multiple_of(c) {
            return unsup(format!("the categorical `{}`", self.m.vars[v].name));
        }
        Ok(c)
    }

    /// Draw (or enumerate) a categorical latent at `at` into `slot`.
    pub(super) fn produce_categorical(&mut self, v: VarId, d: &Dist, at: At, slot: View) -> R<()> {
        let var = &self.m.vars[v];
        let VarType::OneHot { groups, classes } = var.ty else {
            return unsup(format!("a categorical draw of `{}`", var.name));
        };
        if groups == 0 || classes == 0 {
            return unsup(format!("an empty one-hot `{}`", var.name));
        }
        let DistArgs::Logits(l) = &d.args else {
            return unsup("categorical parameters");
        };
        let size = groups * classes;
        let est = (self.prog.estimators.get(&v).copied()).unwrap_or(Estimator::Reparam);
        match (est, self.disc.en) {
            (Estimator::Enumerate, Some(en)) if en.var == v => {
                // q(c | x) reads data only: its logits on the base rows.
                let logits = self.in_base(|s| {
                    let lv = s.eval(l, at)?;
                    let rows = s.rows(at);
                    s.as_rows(lv, rows, size)
                })?;
                self.disc.cats.insert(v, logits);
                // Block k holds value k (no gradient).
                let mut host = Vec::with_capacity(en.n * en.base * size);
                for k in 0..en.n {
                    let mut one = vec![0.0f32; size];
                    for g in 0..groups {
                        one[g * classes + digit(k, g, groups, classes)] = 1.0;
                    }
                    for _ in 0..en.base {
                        host.extend_from_slice(&one);
                    }
                }
                let b = &mut self.g.bufs[slot.buf];
                if b.rows * b.cols != host.len() {
                    return unsup("an enumerated latent's buffer");
                }
                b.kind = BufKind::Const;
                b.grad = false;
                b.init = Some(host);
                let grad = self.g.grad(logits);
                let weight = self.temp(en.n * en.base, 1, grad);
                self.op(Op::EnumWeight {
                    logits,
                    classes,
                    out: weight,
                });
                self.disc.weight = Some(weight);
                Ok(())
            }
            (Estimator::StraightThrough | Estimator::ScoreFunction, _) => {
                let st = est == Estimator::StraightThrough;
                let rows = self.rows(at);
                let lv = self.eval(l, at)?;
                let lv = self.as_rows(lv, rows, size)?;
                let logits = self.record_logits(v, lv, at);
                let u = self.draw_uniforms(v, groups, at);
                let probs = self.temp(rows, size, false);
                self.g.bufs[slot.buf].grad = st;
                self.op(Op::CatSample {
                    logits,
                    u,
                    probs,
                    out: slot,
                    classes,
                    st,
                });
                if !st {
                    let lq = self.temp(rows, 1, self.g.grad(logits));
                    self.op(Op::CatLogProb {
                        x: slot,
                        logits,
                        classes,
                        out: lq,
                    });
                    self.disc.sf.push(lq);
                }
                Ok(())
            }
            _ => unsup(format!("the estimator of `{}`", self.m.vars[v].name)),
        }
    }

    /// The recorded logits of categorical latent `v` at `at`.
    pub(super) fn cat_rows(&self, v: VarId, at: At) -> Option<View> {
        let r = *self.disc.cats.get(&v)?;
        Some(if self.m.vars[v].timed {
            self.rec_rows(r.buf, at)
        } else {
            r
        })
    }

    /// Whether [`Builder::discrete_term`] computes this term.
    pub(super) fn discrete_term_applies(&self, term: &crate::derive::Term) -> bool {
        match &term.kind {
            TermKind::LogLikelihood { p } => matches!(
                &self.m.factors[p.factor].body,
                FactorBody::Sample(d) if d.family == Family::Categorical
            ),
            TermKind::Kl { p, .. } | TermKind::LogRatio { p, .. } => {
                self.disc.cats.contains_key(&self.m.factors[p.factor].var)
            }
            TermKind::Entropy { q, .. } => {
                self.disc.cats.contains_key(&self.m.factors[q.factor].var)
            }
            TermKind::Reward { .. } | TermKind::Marginal { .. } => false,
        }
    }

    fn cat_log_prob(&mut self, x: View, logits: View, classes: usize) -> View {
        let grad = self.g.grad(x) || self.g.grad(logits);
        let out = self.temp(x.rows, 1, grad);
        self.op(Op::CatLogProb {
            x,
            logits,
            classes,
            out,
        });
        out
    }

    /// p's logits of a categorical factor at `at` (on the base rows where `base`; with
    /// `one_row`, logits that are the same for every row as one row).
    pub(super) fn cat_logits(
        &mut self,
        d: &Dist,
        at: At,
        size: usize,
        base: bool,
        one_row: bool,
    ) -> R<View> {
        let DistArgs::Logits(l) = &d.args else {
            return unsup("categorical parameters");
        };
        if one_row && l.reads().is_empty() {
            if let Val::Un(x) = self.eval(l, at)? {
                if x.rows == 1 && self.g.cols(x) == size {
                    return Ok(x);
                }
            }
        }
        if base && self.base_only(l) {
            return self.in_base(|s| {
                let lv = s.eval(l, at)?;
                let rows = s.rows(at);
                s.as_rows(lv, rows, size)
            });
        }
        let lv = self.eval(l, at)?;
        let rows = self.rows(at);
        self.as_rows(lv, rows, size)
    }

    /// q's logits at the program's rows (tiled if they were recorded on the base rows).
    fn full_rows(&mut self, x: View) -> View {
        match self.disc.en {
            Some(en) if x.rows == en.base && !self.disc.base_mode => self.tile_rows(x),
            _ => x,
        }
    }

    /// A drawn discrete latent's logits at `at`, recorded for its KL and entropy terms: a
    /// timed latent's into its `(T·b)` record buffer, a static one's as they are.
    pub(super) fn record_logits(&mut self, v: VarId, lv: View, at: At) -> View {
        if !self.m.vars[v].timed {
            self.disc.cats.insert(v, lv);
            return lv;
        }
        let rec = match self.disc.cats.get(&v) {
            Some(r) => *r,
            None => {
                let cols = self.g.cols(lv);
                let r = self.temp(self.tt * self.b, cols, true);
                self.disc.cats.insert(v, r);
                r
            }
        };
        let dst = self.rec_rows(rec.buf, at);
        self.copy_into(lv, dst);
        dst
    }

    /// The uniforms of a discrete draw of `v` at `at` (`cols` a row: one per group or
    /// element), registered in the reference's noise order.
    pub(super) fn draw_uniforms(&mut self, v: VarId, cols: usize, at: At) -> View {
        let timed = self.m.vars[v].timed;
        let nb = *self.noise_bufs.entry(v).or_insert_with(|| {
            let r = if timed { self.tt * self.b } else { self.b };
            self.g.buf(r, cols, BufKind::Uniform, false)
        });
        let u = self.rec_rows(nb, at);
        self.push_noise(u, crate::fused::families::Noise::Uniform);
        u
    }

    /// A term of a categorical likelihood or latent: its rows and head.
    pub(super) fn discrete_term(&mut self, term: &crate::derive::Term, at: At) -> R<(View, Head)> {
        let m = self.m;
        let owner = match &term.kind {
            TermKind::Kl { p, .. } | TermKind::LogRatio { p, .. } => Some(m.factors[p.factor].var),
            TermKind::Entropy { q, .. } => Some(m.factors[q.factor].var),
            _ => None,
        };
        if owner.is_some_and(|v| self.is_bernoulli(v)) {
            return self.bernoulli_term(term, at);
        }
        let mods = &term.modifiers;
        if mods.free_nats.is_some() || mods.kl_balance.is_some() {
            return unsup("free nats or KL balancing on a categorical term");
        }
        match &term.kind {
            TermKind::LogLikelihood { p } => {
                let f = &m.factors[p.factor];
                let FactorBody::Sample(d) = &f.body else {
                    return unsup("a likelihood of a definition");
                };
                let size = m.vars[f.var].ty.size();
                let logits = self.cat_logits(d, at, size, false, false)?;
                let x = self.values(f.var, term.range)?;
                let k = self.classes(f.var)?;
                Ok((self.cat_log_prob(x, logits, k), Head::Plain))
            }
            TermKind::Kl { p, .. } | TermKind::LogRatio { p, .. } => {
                let f = &m.factors[p.factor];
                let v = f.var;
                let FactorBody::Sample(pd) = &f.body else {
                    return unsup("a KL against a definition");
                };
                if pd.family != Family::Categorical {
                    return unsup(format!(
                        "a KL of a categorical against {}",
                        pd.family.name()
                    ));
                }
                let size = m.vars[v].ty.size();
                let k = self.classes(v)?;
                let Some(q) = self.cat_rows(v, at) else {
                    return unsup("a KL of an unsampled latent");
                };
                let base = self.disc.en.is_some_and(|e| e.var == v);
                let closed = matches!(term.compute, Compute::Kl(_));
                let pl = self.cat_logits(pd, at, size, base, closed)?;
                let q = if pl.rows == q.rows || pl.rows == 1 {
                    q
                } else {
                    self.full_rows(q)
                };
                match term.compute {
                    Compute::Kl(KlForm::CategoricalCategorical) => {
                        let out = self.temp(q.rows, 1, true);
                        self.op(Op::CatKl {
                            q,
                            p: pl,
                            classes: k,
                            out,
                        });
                        Ok((out, Head::Kl))
                    }
                    Compute::LogRatio => {
                        let z = self.values(v, term.range)?;
                        let z = self.full_rows(z);
                        let q = self.full_rows(q);
                        let pl = self.full_rows(pl);
                        let lp = self.cat_log_prob(z, pl, k);
                        let lq = self.cat_log_prob(z, q, k);
                        let rows = lp.rows;
                        Ok((
                            self.bin_views(Bin::Sub, lp, Bc::Full, lq, Bc::Full, rows, 1),
                            Head::Plain,
                        ))
                    }
                    c => unsup(format!("the categorical term {c:?}")),
                }
            }
            TermKind::Entropy { q, .. } => {
                let v = m.factors[q.factor].var;
                let k = self.classes(v)?;
                let Some(ql) = self.cat_rows(v, at) else {
                    return unsup("an entropy of an unsampled latent");
                };
                let rows = match term.compute {
                    Compute::Entropy(EntropyForm::Categorical) => {
                        let out = self.temp(ql.rows, 1, true);
                        self.op(Op::CatEntropy {
                            logits: ql,
                            classes: k,
                            out,
                        });
                        out
                    }
                    Compute::EntropyMc => {
                        let z = self.values(v, term.range)?;
                        let ql = self.full_rows(ql);
                        let lq = self.cat_log_prob(z, ql, k);
                        self.unary(Un::Affine(-1.0, 0.0), lq)
                    }
                    c => return unsup(format!("the entropy {c:?}")),
                };
                Ok((rows, Head::Entropy))
            }
            TermKind::Reward { .. } | TermKind::Marginal { .. } => {
                unsup("a reward as a categorical term")
            }
        }
    }

    /// With an enumerated latent: a term's rows weighted by q(c = k | x) and folded to the
    /// base rows (`c`'s own KL-like term: `1/n` of each block, i.e. once); rows already on
    /// the base rows (the same in every block) are the term as is.
    pub(super) fn enum_fold(&mut self, term: &crate::derive::Term, rows: View) -> R<View> {
        let Some(en) = self.disc.en else {
            return Ok(rows);
        };
        if rows.rows == en.base {
            return Ok(rows);
        }
        if rows.rows != en.n * en.base {
            return unsup("a term's rows under enumeration");
        }
        let own = term.compute.is_kl_like() && term.owner_id == VarOrOpt::Var(en.var);
        let x = if own {
            self.unary(Un::Affine(1.0 / en.n as f32, 0.0), rows)
        } else {
            let Some(w) = self.disc.weight else {
                return unsup("a term before the enumerated latent");
            };
            self.bin_views(Bin::Mul, rows, Bc::Full, w, Bc::Full, rows.rows, 1)
        };
        let out = self.temp(en.base, 1, self.g.grad(x));
        self.op(Op::Fold { x, out });
        Ok(out)
    }
}
