//! Whole-model rules, run after every factor is built: roles, time coverage, causality
//! between blocks, acyclicity, KL support, estimator applicability, evidence, unused names.

use super::env::{Ck, Sym};
use crate::diag::{Code, Diagnostic};
use crate::family::Bounded;
use crate::ir::*;
use crate::span::Span;
use std::collections::HashSet;

impl Ck {
    /// Each variable's factors (indices into `model.factors`), built once so that the
    /// whole-model rules stay linear in the number of declarations.
    fn factors_by_var(&self) -> Vec<Vec<FactorId>> {
        let mut by_var = vec![Vec::new(); self.model.vars.len()];
        for (fi, f) in self.model.factors.iter().enumerate() {
            by_var[f.var].push(fi);
        }
        by_var
    }

    /// Check that every variable has the factors its role needs: an observed one a p factor, a
    /// latent one a prior in p (and a q factor wherever that prior is improper), a state one
    /// definition (in p or in q, not both).
    pub fn roles(&mut self) {
        let by_var = self.factors_by_var();
        for (v, fs) in by_var.iter().enumerate() {
            let var = self.model.vars[v].clone();
            let span = self.spans.vars[v];
            let of = |block: Block| -> Vec<&Factor> {
                fs.iter()
                    .map(|&fi| &self.model.factors[fi])
                    .filter(|f| f.block == block)
                    .collect()
            };
            let p = of(Block::P);
            let q = of(Block::Q);
            let tried_p = self.attempted.contains(&(Block::P, v));
            let tried_q = self.attempted.contains(&(Block::Q, v));
            let general_p = p
                .iter()
                .any(|f| matches!(f.case, TimeCase::From(_) | TimeCase::Static));
            let mut errs = Vec::new();
            // A latent without a q factor is drawn from p, and an improper prior has no draws.
            if var.role == Role::Latent && !tried_q {
                for &fi in fs {
                    let f = &self.model.factors[fi];
                    let flat = matches!(&f.body, FactorBody::Sample(d) if d.family.spec().improper);
                    if f.block == Block::P && flat && !q.iter().any(|g| overlaps(g.case, f.case)) {
                        errs.push(Diagnostic::new(Code::ImproperLikelihood, format!("latent `{}` has an improper Flat prior and no q factor to draw it from", var.name))
                            .label(self.spans.factors[fi], "Flat prior, no q factor")
                            .help(format!("a latent without a q factor is sampled from its prior: give `{0}` a q factor (a policy, e.g. `{0}{1} ~ Normal(…, 1)` in q) or a proper prior", var.name, if var.timed { "[t]" } else { "" })));
                    }
                }
            }
            match var.role {
                Role::Observed if !tried_p => errs.push(Diagnostic::new(Code::ObservedWithoutP, format!("observed `{}` has no factor in p", var.name))
                    .label(span, "no likelihood")
                    .help(format!("give it a likelihood in p, e.g. `{}{} ~ Normal(…, 1)`; if it is an exogenous input the model conditions on, declare it `input`", var.name, if var.timed { "[t]" } else { "" }))),
                Role::Latent if !tried_p => errs.push(Diagnostic::new(Code::LatentWithoutPrior, format!("latent `{}` has no factor in p", var.name))
                    .label(span, "no prior")
                    .help(format!("every latent needs a prior in p, e.g. `{}{} ~ Normal(0, 1)`", var.name, if var.timed { "[t]" } else { "" }))),
                Role::State => {
                    let defs: Vec<&Factor> = p.iter().chain(q.iter()).copied().collect();
                    if defs.is_empty() && !tried_p && !tried_q {
                        errs.push(Diagnostic::new(Code::StateUndefined, format!("state `{}` is never defined", var.name))
                            .label(span, "no definition")
                            .help(format!("define it with `=` in p (or in q, if only the posterior uses it): `{}{} = …`", var.name, if var.timed { "[t]" } else { "" })));
                    } else if !p.is_empty() && !q.is_empty() {
                        let qi = fs.iter().copied().find(|&fi| self.model.factors[fi].block == Block::Q).unwrap_or(0);
                        errs.push(Diagnostic::new(Code::FactorInWrongBlock, format!("state `{}` is defined in both p and q", var.name))
                            .label(self.spans.factors[qi], "second definition in q")
                            .help("define a shared deterministic state once, in p; q may read it"));
                    }
                }
                _ => {}
            }
            let has_p_general = var.role != Role::State && !p.is_empty() && !general_p;
            let defs_general = var.role == Role::State
                && !(p.iter().chain(q.iter()))
                    .any(|f| matches!(f.case, TimeCase::From(_) | TimeCase::Static));
            let failed =
                self.failed.contains(&(Block::P, v)) || self.failed.contains(&(Block::Q, v));
            if var.timed
                && !failed
                && (has_p_general || (defs_general && !(p.is_empty() && q.is_empty())))
            {
                let last = p
                    .iter()
                    .chain(q.iter())
                    .filter_map(|f| {
                        if let TimeCase::At(k) = f.case {
                            Some(k)
                        } else {
                            None
                        }
                    })
                    .max()
                    .unwrap_or(0);
                errs.push(
                    Diagnostic::new(
                        Code::BadBaseCase,
                        if last == 1 {
                            format!("`{}` is defined only at step 1", var.name)
                        } else {
                            format!("`{}` is defined only at steps 1..{last}", var.name)
                        },
                    )
                    .label(span, "no general case")
                    .help(format!(
                        "add the general case `{}[t] {} …` for the steps after the base cases",
                        var.name,
                        if var.role == Role::State { "=" } else { "~" }
                    )),
                );
            }
            for e in errs {
                self.err(e);
            }
        }
    }

    /// Lags must be covered by a base case or an `init` (`E032`); `p` must not read a
    /// state defined only in `q` (`E027`).
    pub fn time_coverage(&mut self) {
        let mut errs = Vec::new();
        let inits: HashSet<(VarId, i64)> =
            self.model.inits.iter().map(|i| (i.var, i.step)).collect();
        // (in p, in q) per variable.
        let mut blocks_of = vec![(false, false); self.model.vars.len()];
        for f in &self.model.factors {
            let b = &mut blocks_of[f.var];
            match f.block {
                Block::P => b.0 = true,
                Block::Q => b.1 = true,
            }
        }
        // (block, time case, reads, span, the factor's variable); rewards have neither.
        type User = (Option<Block>, TimeCase, Vec<Read>, Span, Option<VarId>);
        let users: Vec<User> = self
            .model
            .factors
            .iter()
            .zip(&self.spans.factors)
            .map(|(f, s)| (Some(f.block), f.case, f.parents.clone(), *s, Some(f.var)))
            .chain(
                self.model
                    .optimality
                    .iter()
                    .zip(&self.spans.optimality)
                    .map(|(o, s)| {
                        (
                            None,
                            if o.timed {
                                TimeCase::From(1)
                            } else {
                                TimeCase::Static
                            },
                            o.parents.clone(),
                            *s,
                            None,
                        )
                    }),
            )
            .collect();
        for (block, case, reads, span, owner) in users {
            for r in reads {
                let var = &self.model.vars[r.var];
                // Walked lazily: a lag can be up to `limits::MAX_LAG`, and only the first
                // missing step is reported.
                let needed = match (r.time, case) {
                    (TimeRef::Lag(k), TimeCase::From(start)) => i64::from(start) - i64::from(k)..=0,
                    (TimeRef::Step(s), _) if s <= 0 => s..=s,
                    #[allow(clippy::reversed_empty_ranges)] // no step is needed
                    _ => 1..=0,
                };
                for s in needed {
                    if !inits.contains(&(r.var, s)) {
                        let at = match case {
                            TimeCase::From(start) => {
                                format!("at t = {start} it reads `{}[{s}]`", var.name)
                            }
                            _ => format!("it reads `{}[{s}]`", var.name),
                        };
                        let help = match (owner, case) {
                            (Some(o), TimeCase::From(start)) => {
                                let o = &self.model.vars[o];
                                let op = if o.role == Role::State { "=" } else { "~" };
                                format!("add `init {}[{s}] = …` (e.g. `= 0`), or a base case `{}[{start}] {op} …` so that the general case of `{}` starts later", var.name, o.name, o.name)
                            }
                            _ => format!("add `init {}[{s}] = …` (e.g. `= 0`)", var.name),
                        };
                        errs.push(
                            Diagnostic::new(
                                Code::MissingBaseCase,
                                format!("a lag reaches before the sequence starts: {at}"),
                            )
                            .label(
                                span,
                                if owner.is_some() {
                                    "this factor"
                                } else {
                                    "this reward"
                                },
                            )
                            .help(help),
                        );
                        break;
                    }
                }
                if block == Some(Block::P) && var.role == Role::State {
                    let (in_p, in_q) = blocks_of[r.var];
                    if in_q && !in_p {
                        errs.push(Diagnostic::new(Code::FactorInWrongBlock, format!("p reads `{}`, a state defined in q", var.name))
                            .label(span, "this p factor")
                            .help("the generative model cannot depend on the posterior; define the state in p if both need it"));
                    }
                }
            }
        }
        for e in errs {
            self.err(e);
        }
    }

    /// Acyclicity within a time step: in p (`E040`) and in the sampling order of q, where
    /// latents without a q factor are drawn from p (`E041`).
    pub fn cycles(&mut self) {
        let n = self.model.vars.len();
        // (has a p factor, has a q factor) per variable.
        let mut blocks_of = vec![(false, false); n];
        for f in &self.model.factors {
            match f.block {
                Block::P => blocks_of[f.var].0 = true,
                Block::Q => blocks_of[f.var].1 = true,
            }
        }
        for block in [Block::P, Block::Q] {
            let mut edges: Vec<Vec<(usize, usize)>> = vec![vec![]; n];
            for (fi, f) in self.model.factors.iter().enumerate() {
                let included = f.block == block
                    || (block == Block::Q
                        && f.block == Block::P
                        && !blocks_of[f.var].1
                        && self.model.vars[f.var].role != Role::Observed);
                if !included {
                    continue;
                }
                for r in &f.parents {
                    let same_step = match (r.time, f.case) {
                        (TimeRef::Lag(0), _) | (TimeRef::Static, _) => true,
                        (TimeRef::Step(s), TimeCase::At(k)) => s == i64::from(k),
                        _ => false,
                    };
                    let (in_p, in_q) = blocks_of[r.var];
                    let generated = match block {
                        Block::P => in_p,
                        Block::Q => in_p || in_q,
                    };
                    if same_step
                        && generated
                        && matches!(
                            self.model.vars[r.var].role,
                            Role::Latent | Role::State | Role::Observed
                        )
                    {
                        edges[r.var].push((f.var, fi));
                    }
                }
            }
            if let Some((v, fi)) = find_cycle(&edges) {
                let name = self.model.vars[v].name.clone();
                let (code, which) = if block == Block::P {
                    (Code::CycleInP, "p")
                } else {
                    (Code::CycleInQ, "q")
                };
                self.err(Diagnostic::new(code, format!("`{name}` depends on itself within one time step in {which}"))
                    .label(self.spans.factors[fi], "part of the cycle")
                    .help("within a step, factors must form a DAG: read one of the variables at the previous step (`x[t-1]`) instead"));
                if block == Block::P {
                    // A p cycle usually also shows up in q's sampling order; report it once.
                    return;
                }
            }
        }
    }

    /// Support of q inside support of p (`E072`) and estimator applicability (`E074`).
    pub fn supports(&mut self) {
        let mut errs = Vec::new();
        let by_var = self.factors_by_var();
        for (qi, qf) in self
            .model
            .factors
            .iter()
            .enumerate()
            .filter(|(_, f)| f.block == Block::Q)
        {
            let FactorBody::Sample(qd) = &qf.body else {
                continue;
            };
            for pf in by_var[qf.var]
                .iter()
                .map(|&fi| &self.model.factors[fi])
                .filter(|f| f.block == Block::P && overlaps(f.case, qf.case))
            {
                let FactorBody::Sample(pd) = &pf.body else {
                    continue;
                };
                if let Some(why) = kl_infinite(qd, pd) {
                    let name = &self.model.vars[qf.var].name;
                    errs.push(Diagnostic::new(Code::InfiniteKl, format!("KL(q ‖ p) for `{name}` is infinite: {why}"))
                        .label(self.spans.factors[qi], format!("q is {}", qd.family.name()))
                        .help("q must put no mass where p has none: use a q with bounded support (TanhNormal, Uniform) under a bounded prior, or widen the prior"));
                }
            }
        }
        for (v, var) in self.model.vars.iter().enumerate() {
            let Some(est) = var.estimator else { continue };
            let ok = match est {
                Estimator::Reparam => !var.ty.is_discrete(),
                Estimator::StraightThrough | Estimator::Enumerate => var.ty.is_discrete(),
                Estimator::ScoreFunction => true,
            };
            let latent = var.role == Role::Latent;
            let values = var.ty.support_size();
            if ok
                && latent
                && est == Estimator::Enumerate
                && values.map(|n| n > ENUMERATE_LIMIT).unwrap_or(true)
            {
                let n = values
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "more than 2^64".into());
                errs.push(Diagnostic::new(Code::EstimatorMismatch, format!("`{}` has {n} values: too many to enumerate", var.name))
                    .label(self.spans.vars[v], "via enumerate")
                    .help(format!("enumeration evaluates the model once per value (at most {ENUMERATE_LIMIT}); use `via straight_through` or `via score_function`")));
                continue;
            }
            if !ok || !latent {
                errs.push(Diagnostic::new(Code::EstimatorMismatch, if latent { format!("`{}` cannot be estimated by {} — it is {}", var.name, est.keyword(), if var.ty.is_discrete() { "discrete" } else { "continuous" }) } else { format!("`{}` is {} and is not integrated, so it has no estimator", var.name, var.role.keyword()) })
                    .label(self.spans.vars[v], format!("via {}", est.keyword()))
                    .help(if latent { "reparam fits continuous latents; enumerate and straight_through fit discrete ones; score_function fits any" } else { "remove `via …`: only latents are integrated over" }));
            }
        }
        for e in errs {
            self.err(e);
        }
    }

    /// A time-indexed latent annotated `via enumerate` is summed out of p by the forward
    /// algorithm (`derive::marginal`); one that is not such a chain would be refused by every
    /// runtime, so each reason is an error here (`E079`), at the factor it is about.
    pub fn chains(&mut self) {
        let mut errs = Vec::new();
        for v in 0..self.model.vars.len() {
            let Err(why) = crate::derive::marginal::chain(&self.model, v) else {
                continue;
            };
            let name = self.model.vars[v].name.clone();
            for (msg, factor) in why {
                let d = Diagnostic::new(
                    Code::ChainNotSummable,
                    format!("`{name}` cannot be summed out exactly: {msg}"),
                );
                let d = match factor {
                    Some(fi) => d
                        .label(self.spans.factors[fi], "here")
                        .label(self.spans.vars[v], "via enumerate"),
                    None => d.label(self.spans.vars[v], "via enumerate"),
                };
                errs.push(d.help(format!(
                    "a time-indexed `via enumerate` latent is a chain `{name}[1] ~ Categorical(…)`, `{name}[t] ~ Categorical(f({name}[t-1]))` with no q factor (or a q of the same shape whose logits read data: enumerated over q's chain), read at the same step only by p factors of observed variables or of reparameterised continuous latents with a q factor (the forward algorithm sums it out, at q's draw in a switching model); otherwise annotate it `via straight_through` or `via score_function`"
                )));
            }
        }
        for e in errs {
            self.err(e);
        }
    }

    /// A typo in a size (`dim H = 100000000`) must be a diagnostic, not an allocation abort.
    pub fn size(&mut self) {
        let nets: u128 = self
            .model
            .nets
            .iter()
            .map(|n| match &n.kind {
                NetKind::Mlp { sizes, .. } => sizes
                    .windows(2)
                    .map(|w| (w[0] as u128 + 1) * w[1] as u128)
                    .sum(),
                NetKind::Gru { input, hidden } | NetKind::Rnn { input, hidden, .. } => {
                    3 * *hidden as u128 * (*input as u128 + *hidden as u128 + 2)
                }
            })
            .sum();
        let params: u128 = self
            .model
            .params
            .iter()
            .map(|p| p.shape.numel() as u128)
            .sum();
        let total = nets + params;
        if total > MAX_PARAMETERS {
            self.err(
                Diagnostic::new(
                    Code::TooLarge,
                    format!(
                        "model `{}` has {total} parameters, more than {MAX_PARAMETERS}",
                        self.model.name
                    ),
                )
                .label(
                    Span::new(self.spans.model.lo, self.spans.model.lo + 5),
                    "too large to train",
                )
                .help("check the sizes in `dim`, `net` and `param` declarations for a typo"),
            );
        }
    }

    /// `E084`: the model needs an observed variable or an optimality variable.
    pub fn evidence(&mut self) {
        let has_obs = self.model.vars.iter().any(|v| v.role == Role::Observed);
        // Known-dynamics imagination (`start = prior`) conditions on its imagined optimality.
        let known = (self.model.behaviour.as_ref()).is_some_and(|b| b.start == ImagineStart::Prior);
        if !has_obs && self.model.optimality.is_empty() && !known {
            self.err(Diagnostic::new(Code::NoEvidence, format!("model `{}` has no observed variable and no optimality variable", self.model.name))
                .label(Span::new(self.spans.model.lo, self.spans.model.lo + 5), "nothing to condition on")
                .help("declare data with `observed x : …`, or rewards with `optimality O[t] : reward = …`"));
        }
    }

    /// Warn about declared names that nothing reads.
    pub fn unused(&mut self) {
        let mut warns = Vec::new();
        let read_vars: std::collections::HashSet<VarId> = self
            .model
            .factors
            .iter()
            .flat_map(|f| f.parents.iter().map(|r| r.var))
            .chain(
                self.model
                    .optimality
                    .iter()
                    .flat_map(|o| o.parents.iter().map(|r| r.var)),
            )
            // What the `imagine` block reads (with known dynamics, a state the policy reads).
            .chain(self.model.behaviour.iter().flat_map(|b| {
                (b.policy_parents.iter())
                    .chain(&b.prior_parents)
                    .chain(&b.reward_parents)
                    .chain(&b.critic_parents)
                    .map(|r| r.var)
            }))
            .collect();
        let mut decls: Vec<(Sym, String, Span)> = Vec::new();
        for (i, d) in self.model.dims.iter().enumerate() {
            decls.push((Sym::Dim(i), d.name.clone(), self.dim_spans[i]));
        }
        for (i, c) in self.model.consts.iter().enumerate() {
            decls.push((Sym::Const(i), c.name.clone(), self.const_spans[i]));
        }
        // Point at the declared name, not the whole declaration.
        let name_span = |name: &str, decl: Span| self.names.get(name).map_or(decl, |n| n.1);
        for (i, p) in self.model.params.iter().enumerate() {
            decls.push((
                Sym::Param(i),
                p.name.clone(),
                name_span(&p.name, self.spans.params[i]),
            ));
        }
        for (i, n) in self.model.nets.iter().enumerate() {
            decls.push((
                Sym::Net(i),
                n.name.clone(),
                name_span(&n.name, self.spans.nets[i]),
            ));
        }
        for (sym, name, span) in decls {
            if !self.used.contains(&sym) && !name.starts_with('_') {
                warns.push(
                    Diagnostic::new(
                        Code::Unused,
                        format!(
                            "{} `{name}` is never used",
                            sym.describe()
                                .trim_start_matches("a ")
                                .trim_start_matches("an ")
                        ),
                    )
                    .label(span, "unused")
                    .help("remove it, or prefix the name with `_` to keep it"),
                );
            }
        }
        for (v, var) in self.model.vars.iter().enumerate() {
            let unused = match var.role {
                Role::Input | Role::State => !read_vars.contains(&v),
                Role::Latent => !read_vars.contains(&v),
                Role::Observed => false,
            };
            if unused && !var.name.starts_with('_') {
                let (code, what) = if var.role == Role::Latent {
                    (
                        Code::NeverInferred,
                        format!(
                            "latent `{}` is read by no factor: it only adds its own KL term",
                            var.name
                        ),
                    )
                } else {
                    (
                        Code::Unused,
                        format!("{} `{}` is never read", var.role.keyword(), var.name),
                    )
                };
                warns.push(
                    Diagnostic::new(code, what)
                        .label(self.spans.vars[v], "never read")
                        .help("remove it, use it in a factor, or prefix the name with `_`"),
                );
            }
        }
        for w in warns {
            self.err(w);
        }
    }
}

/// The most parameters a model may have (2 GiB of f32, before optimiser state).
pub const MAX_PARAMETERS: u128 = 1 << 29;

/// The most values an explicitly enumerated latent may have (the batch is tiled once per value).
pub const ENUMERATE_LIMIT: u64 = 256;

fn overlaps(a: TimeCase, b: TimeCase) -> bool {
    match (a, b) {
        (TimeCase::Static, TimeCase::Static) => true,
        (TimeCase::At(x), TimeCase::At(y)) => x == y,
        (TimeCase::At(x), TimeCase::From(k)) | (TimeCase::From(k), TimeCase::At(x)) => x >= k,
        (TimeCase::From(_), TimeCase::From(_)) => true,
        _ => false,
    }
}

/// The value of a literal number, negated or not (dims and scalar consts are already numbers).
pub(super) fn constant(e: &Expr) -> Option<f64> {
    match e.kind {
        ExprKind::Num(v) => Some(v),
        ExprKind::Unary {
            op: UnOp::Neg,
            ref arg,
        } => constant(arg).map(|v| -v),
        _ => None,
    }
}

/// Why KL(q ‖ p) is +∞ for every parameter value, if it is.
pub(super) fn kl_infinite(q: &Dist, p: &Dist) -> Option<String> {
    let bounded = |d: &Dist| -> Option<(Option<f64>, Option<f64>)> {
        match (d.family.spec().bounded, &d.args) {
            (Bounded::ByParams, DistArgs::Bounds { low, high }) => {
                Some((constant(low), constant(high)))
            }
            (Bounded::Fixed(lo, hi), _) => Some((Some(f64::from(lo)), Some(f64::from(hi)))),
            (Bounded::Positive, _) => Some((Some(0.0), Some(f64::INFINITY))),
            _ => None,
        }
    };
    let unbounded = |d: &Dist| d.family.spec().bounded == Bounded::Unbounded;
    match (bounded(q), bounded(p)) {
        (None, Some(_)) if unbounded(q) => Some(format!(
            "q is a {} on all of ℝ, p is a {} on an interval",
            q.family.name(),
            p.family.name()
        )),
        (Some((ql, qh)), Some((pl, ph))) => {
            let out_low = matches!((ql, pl), (Some(a), Some(b)) if a < b);
            let out_high = matches!((qh, ph), (Some(a), Some(b)) if a > b);
            (out_low || out_high).then(|| "q's interval is not inside p's".to_string())
        }
        _ => None,
    }
}

/// A cycle in a graph given as adjacency lists of (target, factor); returns a node on it
/// and the factor of the edge that closes it.
fn find_cycle(edges: &[Vec<(usize, usize)>]) -> Option<(usize, usize)> {
    let n = edges.len();
    let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (v, ref mut i)) = stack.last_mut() {
            if *i < edges[v].len() {
                let (w, f) = edges[v][*i];
                *i += 1;
                match state[w] {
                    1 => return Some((w, f)),
                    0 => {
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    _ => {}
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    None
}
