//! `p` and `q` blocks: statements → factors, with role, time-case and distribution checks.

use super::env::{Ck, Sym};
use super::expr::{Cx, Time};
use crate::diag::{Code, Diagnostic};
use crate::family::{ArgsKind, Constraint, Support};
use crate::ir::*;
use crate::parse::ast::{self, Arg, BlockKind, Item, StmtAst, TargetIndex};
use crate::span::Span;
use std::collections::{BTreeMap, HashMap};

struct Pending<'a> {
    block: Block,
    var: VarId,
    case: TimeCase,
    stmt: &'a StmtAst,
}

impl Ck {
    /// Check the `p { … }` and `q { … }` blocks: each statement's target, time case, family,
    /// arguments (arity, shapes, parameter constraints, support) and parents, adding one
    /// `Factor` per statement.
    pub fn blocks(&mut self, items: &[Item]) {
        let mut seen: BTreeMap<Block, Span> = BTreeMap::new();
        let mut pending = Vec::new();
        let mut seen_targets = HashMap::new();
        for item in items {
            let Item::Block { kind, stmts, span } = item else {
                continue;
            };
            let block = if *kind == BlockKind::P {
                Block::P
            } else {
                Block::Q
            };
            if let Some(first) = seen.get(&block) {
                self.err(
                    Diagnostic::new(
                        Code::MultipleModelParts,
                        format!("a second `{}` block", block.letter()),
                    )
                    .label(Span::new(span.lo, span.lo + 1), "declared again here")
                    .label(Span::new(first.lo, first.lo + 1), "first block")
                    .help("put all factors of one distribution in one block"),
                );
                // Its statements are still checked, as if written in the first block, so
                // their variables are not also reported as having no factor.
            } else {
                seen.insert(block, *span);
            }
            for s in stmts {
                if let Some(p) = self.target(block, s, &mut seen_targets) {
                    pending.push(p);
                }
            }
        }
        // Base cases per (block, var) must be contiguous from 1; the general case starts after.
        let mut starts: BTreeMap<(Block, VarId), u32> = BTreeMap::new();
        let mut groups: BTreeMap<(Block, VarId), Vec<(u32, Span)>> = BTreeMap::new();
        for p in &pending {
            if let TimeCase::At(k) = p.case {
                groups
                    .entry((p.block, p.var))
                    .or_default()
                    .push((k, p.stmt.target().span));
            }
        }
        for ((block, var), mut steps) in groups {
            steps.sort();
            for (expect, (k, span)) in (1..).zip(&steps) {
                if *k != expect {
                    let name = self.var(var).name.clone();
                    self.err(Diagnostic::new(Code::BadBaseCase, format!("`{name}[{k}]` in {} leaves step {expect} without a factor", block.letter()))
                        .label(*span, "gap before this base case")
                        .help(format!("base cases are contiguous from step 1: write `{name}[1]`, `{name}[2]`, … and then `{name}[t]`")));
                    break;
                }
            }
            starts.insert((block, var), steps.last().map(|s| s.0).unwrap_or(0) + 1);
        }
        for p in pending {
            let start = starts.get(&(p.block, p.var)).copied().unwrap_or(1);
            let case = match p.case {
                TimeCase::From(_) => TimeCase::From(start),
                c => c,
            };
            let time = match case {
                TimeCase::Static => Time::Static,
                TimeCase::At(k) => Time::Base(k),
                TimeCase::From(k) => Time::General(k),
            };
            let cx = Cx {
                block: Some(p.block),
                time,
                seq: None,
                no_vars: false,
            };
            let body = match p.stmt {
                StmtAst::Sample { dist, .. } => {
                    self.dist(p.var, p.block, dist, cx).map(FactorBody::Sample)
                }
                StmtAst::Assign { value, .. } => {
                    self.define(p.var, value, cx).map(FactorBody::Define)
                }
            };
            if let Some(body) = body {
                let parents = match &body {
                    FactorBody::Sample(d) => dist_reads(d),
                    FactorBody::Define(e) => e.reads(),
                };
                self.model.factors.push(Factor {
                    block: p.block,
                    var: p.var,
                    case,
                    body,
                    parents,
                });
                self.spans.factors.push(p.stmt.span());
            } else {
                self.failed.insert((p.block, p.var));
            }
        }
    }

    /// Resolve a statement's target and check role, block and time case.
    fn target<'a>(
        &mut self,
        block: Block,
        s: &'a StmtAst,
        seen: &mut HashMap<(Block, VarId, TimeCase), Span>,
    ) -> Option<Pending<'a>> {
        let t = s.target();
        let sym = self.resolve(&t.name)?;
        let Sym::Var(v) = sym else {
            self.err(
                Diagnostic::new(
                    Code::WrongKind,
                    format!(
                        "`{}` is {}; only variables have factors",
                        t.name.name,
                        sym.describe()
                    ),
                )
                .label(t.name.span, "not a variable")
                .help("declare it with a role: `observed`, `latent` or `state`"),
            );
            return None;
        };
        let var = self.var(v).clone();
        // A faulty statement still counts as the variable's factor in this block, so the
        // fault is not also reported as a missing factor or definition.
        self.attempted.insert((block, v));
        let sampled = matches!(s, StmtAst::Sample { .. });
        let bad = |ck: &mut Ck, code: Code, msg: String, label: &str, help: String| {
            ck.err(
                Diagnostic::new(code, msg)
                    .label(t.span, label.to_string())
                    .help(help),
            );
            None
        };
        match (var.role, sampled, block) {
            (Role::Input, _, _) => return bad(self, Code::InputWithFactor, format!("`{}` is an input and has no distribution", var.name), "input", format!("inputs are conditioned on, not modelled; to model `{0}` declare it `observed {0}`", var.name)),
            (Role::Observed, _, Block::Q) => return bad(self, Code::ObservedInQ, format!("observed `{}` has a factor in q", var.name), "observed", "q is the posterior over latents given data; observed variables are modelled only in p".into()),
            (Role::State, true, _) => return bad(self, Code::SampleVsAssign, format!("`{}` is a deterministic state but is sampled with `~`", var.name), "state", format!("define it with `=`: `{}[t] = …`, or declare it `latent`", var.name)),
            (Role::Observed | Role::Latent, false, _) => return bad(self, Code::SampleVsAssign, format!("the {} `{}` is defined with `=`", var.role.keyword(), var.name), "random variable", format!("give it a distribution with `~`, or declare it `state {}` if it is deterministic", var.name)),
            _ => {}
        }
        let case = match (t.index, var.timed) {
            (TargetIndex::None, false) => TimeCase::Static,
            (TargetIndex::T, true) => TimeCase::From(1),
            (TargetIndex::At(k), true) if k >= 1 && k <= u32::MAX as i64 => TimeCase::At(k as u32),
            (TargetIndex::At(k), true) => {
                return bad(
                    self,
                    Code::BadBaseCase,
                    format!("base case `{}[{k}]` is before the first step", var.name),
                    "steps start at 1",
                    format!(
                        "for a value before the sequence starts write `init {}[{k}] = …`",
                        var.name
                    ),
                )
            }
            (TargetIndex::None, true) => {
                return bad(
                    self,
                    Code::TimeIndexMismatch,
                    format!(
                        "`{}` is time-indexed; its factor needs `[t]` or a step",
                        var.name
                    ),
                    "missing index",
                    format!("write `{}[t] ~ …`", var.name),
                )
            }
            (_, false) => {
                return bad(
                    self,
                    Code::TimeIndexMismatch,
                    format!("`{}` is static but its factor has a time index", var.name),
                    "static variable",
                    format!("write `{0} ~ …`, or declare `{0}[t]`", var.name),
                )
            }
        };
        // Duplicates: same block, variable and case.
        if let Some(&prev_span) = seen.get(&(block, v, case)) {
            self.err(
                Diagnostic::new(
                    Code::DuplicateFactor,
                    format!("`{}` has two factors in {}", t.name.name, block.letter()),
                )
                .label(t.span, "second factor")
                .label(prev_span, "first factor")
                .help("each variable has one factor per block and time case"),
            );
            return None;
        }
        seen.insert((block, v, case), t.span);
        Some(Pending {
            block,
            var: v,
            case,
            stmt: s,
        })
    }

    fn define(&mut self, v: VarId, value: &ast::Expr, cx: Cx) -> Option<Expr> {
        let e = self.expr(value, cx)?;
        let var = self.var(v).clone();
        // A variable whose type had an error has no size to compare with.
        let sized = !self.poisoned.contains(&Sym::Var(v));
        if sized && (e.shape.numel() != var.ty.size() || e.shape.is_matrix()) {
            self.err(
                Diagnostic::new(
                    Code::DefinitionSize,
                    format!(
                        "`{}` is declared with size {}, its definition has size {}",
                        var.name,
                        var.ty.size(),
                        e.shape
                    ),
                )
                .label(value.span, format!("size {}", e.shape))
                .help(
                    "make the definition's size match the declaration, or change the declared size",
                ),
            );
            return None;
        }
        Some(e)
    }

    pub(super) fn dist(
        &mut self,
        v: VarId,
        block: Block,
        d: &ast::DistAst,
        cx: Cx,
    ) -> Option<Dist> {
        let var = self.var(v).clone();
        let Some(family) = Family::from_name(&d.family.name) else {
            self.err(
                Diagnostic::new(
                    Code::UnknownDistribution,
                    format!("unknown distribution `{}`", d.family.name),
                )
                .label(d.family.span, "not a distribution")
                .help(format!("distributions: {}", Family::names())),
            );
            return None;
        };
        let spec = family.spec();
        let split = match &d.form {
            None => false,
            Some(f) if f.name == "split" && spec.split => true,
            Some(f) => {
                self.err(
                    Diagnostic::new(
                        Code::UnknownDistribution,
                        format!("`{}` has no form `{}`", family.name(), f.name),
                    )
                    .label(f.span, "unknown form")
                    .help(format!("only {} have `.split(head)`", split_families())),
                );
                return None;
            }
        };
        // A variable whose type had an error has no size or support to compare with.
        let sized = !self.poisoned.contains(&Sym::Var(v));
        if sized {
            self.support(&var, block, family, d.span)?;
        }
        let size = var.ty.size();
        let mut pos = Vec::new();
        let mut kws = Vec::new();
        for a in &d.args {
            match a {
                Arg::Pos(e) => pos.push(e),
                Arg::Kw(k) => kws.push(k),
            }
        }
        let fam = family.name();
        let arity = |ck: &mut Ck, want: &str| {
            ck.err(
                Diagnostic::new(
                    Code::BadArguments,
                    format!("`{fam}{}` takes {want}", if split { ".split" } else { "" }),
                )
                .label(d.span, "wrong arguments")
                .help("see the distribution table in docs/language.md"),
            );
            None
        };
        if split {
            let [head] = pos.as_slice() else {
                return arity(
                    self,
                    "one head expression, then `scale = exp|softplus`, `min = …`",
                );
            };
            let mut min = 0.0;
            let mut exp = false;
            for k in &kws {
                match (k.name.name.as_str(), &k.value.kind) {
                    ("min", _) => {
                        let m = self.scalar_eval(&k.value)?;
                        if m < 0.0 {
                            self.err(
                                Diagnostic::new(Code::BadValue, "the minimum scale must be ≥ 0")
                                    .label(k.value.span, "negative")
                                    .help("e.g. `min = 0.1` as in Dreamer"),
                            );
                            return None;
                        }
                        min = m;
                    }
                    ("scale", ast::ExprKind::Name(id))
                        if id.name == "exp" || id.name == "softplus" =>
                    {
                        exp = id.name == "exp"
                    }
                    _ => {
                        return arity(
                            self,
                            "one head expression, then `scale = exp|softplus`, `min = …`",
                        )
                    }
                }
            }
            let h = self.expr(head, cx)?;
            if sized && (h.shape.numel() != 2 * size || h.shape.is_matrix()) {
                self.err(Diagnostic::new(Code::SplitSize, format!("`{fam}.split` of `{}` (size {size}) needs a head of size {}, given {}", var.name, 2 * size, h.shape))
                    .label(head.span, format!("size {}", h.shape))
                    .help(format!("the head holds loc and scale side by side: make its output size 2·{size} = {}", 2 * size)));
                return None;
            }
            let scale_fn = if exp {
                ScaleFn::Exp { min }
            } else {
                ScaleFn::Softplus { min }
            };
            return Some(Dist {
                family,
                args: DistArgs::Split { head: h, scale_fn },
            });
        }
        // Keywords name parameters as torch.distributions does (`Normal(loc = 0, scale = 1)`,
        // `Gamma(concentration = 2, rate = 3)`), after the positional ones; a family with
        // logits also takes `probs = p` instead (stored as logits: `log p`, or `log p −
        // log(1 − p)` for a Bernoulli).
        let want = spec.params.len();
        let mut slots: Vec<Option<&ast::Expr>> = vec![None; want.max(pos.len())];
        for (i, e) in pos.iter().enumerate() {
            slots[i] = Some(e);
        }
        let mut probs = false;
        for k in &kws {
            let name = k.name.name.as_str();
            let at = if name == "probs" && spec.args == ArgsKind::Logits {
                probs = true;
                Some(0)
            } else {
                spec.params.iter().position(|p| p.name == name)
            };
            let Some(i) = at else {
                let names: Vec<String> = (spec.params.iter().map(|p| format!("`{}`", p.name)))
                    .chain((spec.args == ArgsKind::Logits).then(|| "`probs`".to_string()))
                    .collect();
                self.err(
                    Diagnostic::new(
                        Code::BadArguments,
                        format!("`{fam}` takes no keyword `{}`", k.name.name),
                    )
                    .label(k.name.span, "unexpected keyword")
                    .help(if names.is_empty() {
                        format!("`{fam}` has no parameters")
                    } else {
                        format!(
                            "{fam}'s keywords: {}; keywords `scale` and `min` of a head belong to `.split`",
                            names.join(", ")
                        )
                    }),
                );
                return None;
            };
            if slots[i].is_some() {
                self.err(
                    Diagnostic::new(
                        Code::BadArguments,
                        format!(
                            "`{fam}` is given its {} twice",
                            if probs && i == 0 {
                                "logits (as `probs`)"
                            } else {
                                spec.params[i].name
                            }
                        ),
                    )
                    .label(k.name.span, "given again")
                    .help("give each parameter once, by position or by keyword"),
                );
                return None;
            }
            slots[i] = Some(&k.value);
        }
        let pos: Vec<&ast::Expr> = slots.iter().flatten().copied().collect();
        if pos.len() != want || slots.iter().any(|s| s.is_none()) {
            let names: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
            let text = match want {
                0 => "no parameters".to_string(),
                1 => format!("1 parameter ({})", names[0]),
                n => format!("{n} parameters ({})", names.join(", ")),
            };
            return arity(self, &text);
        }
        let mut ps = Vec::new();
        for (i, e) in pos.iter().enumerate() {
            let x = self.expr(e, cx);
            let Some(x) = x else { continue };
            let tril = spec.params[i].constraint == Constraint::ScaleTril;
            let ok = !sized
                || if tril {
                    x.shape.numel() == size * size
                        && (!x.shape.is_matrix() || x.shape.0 == [size, size])
                } else {
                    (x.shape.numel() == size || x.shape.is_unit()) && !x.shape.is_matrix()
                };
            if !ok && tril {
                let pname = spec.params[i].name;
                self.err(Diagnostic::new(Code::DistParamSize, format!("`{}` has size {size}, but the {pname} of its {fam} has shape {}", var.name, x.shape))
                    .label(e.span, format!("shape {}", x.shape))
                    .help(format!("{pname} is a {size}×{size} lower-triangular matrix (or its {} values, row-major)", size * size)));
                continue;
            }
            if !ok {
                let pname = spec.params[i].name;
                self.err(Diagnostic::new(Code::DistParamSize, format!("`{}` has size {size}, but the {pname} of its {fam} has size {}", var.name, x.shape))
                    .label(e.span, format!("size {}", x.shape))
                    .help(format!("each parameter has the variable's size ({size}) or is a scalar that broadcasts")));
                continue;
            }
            let x = if probs {
                if let Some(s) = super::rules::constant(&x) {
                    if s <= 0.0 || (s >= 1.0 && spec.support == Support::Binary) {
                        self.err(
                            Diagnostic::new(
                                Code::BadValue,
                                format!("the probs of a {fam} must be in (0, 1), given {s}"),
                            )
                            .label(e.span, "not a probability")
                            .help("a probability of 0 or 1 has an infinite log-odds; give logits instead"),
                        );
                        continue;
                    }
                }
                probs_to_logits(x, spec.support == Support::Binary)
            } else {
                x
            };
            if tril {
                if let ExprKind::Array(vals) = &x.kind {
                    if let Some(j) = (0..size).find(|&j| vals.get(j * size + j) == Some(&0.0)) {
                        let pname = spec.params[i].name;
                        self.err(
                            Diagnostic::new(
                                Code::BadValue,
                                format!("the {pname} of a {fam} has a zero on its diagonal (row {j})"),
                            )
                            .label(e.span, format!("{pname}[{j}, {j}] = 0"))
                            .help("the covariance L Lᵀ is singular when a diagonal entry of L is 0; give every diagonal entry a non-zero value (a standard deviation, > 0 by convention)"),
                        );
                        continue;
                    }
                }
            }
            if let Some(s) = super::rules::constant(&x) {
                if spec.params[i].constraint == Constraint::Positive && s <= 0.0 {
                    let pname = spec.params[i].name;
                    self.err(
                        Diagnostic::new(
                            Code::BadValue,
                            format!("the {pname} of a {fam} must be positive, given {s}"),
                        )
                        .label(e.span, format!("{pname} ≤ 0"))
                        .help(if pname == "scale" {
                            "a standard deviation is > 0".to_string()
                        } else {
                            format!("{fam}'s {pname} is > 0")
                        }),
                    );
                    continue;
                }
            }
            ps.push(x);
        }
        if ps.len() != want {
            return None;
        }
        for i in 1..ps.len() {
            if spec.params[i].constraint != Constraint::AbovePrevious {
                continue;
            }
            let (lo_name, hi_name) = (spec.params[i - 1].name, spec.params[i].name);
            if let (Some(lo), Some(hi)) = (
                super::rules::constant(&ps[i - 1]),
                super::rules::constant(&ps[i]),
            ) {
                if lo >= hi {
                    self.err(
                        Diagnostic::new(Code::BadValue, format!("{fam}({lo}, {hi}) is empty"))
                            .label(d.span, format!("{lo_name} ≥ {hi_name}"))
                            .help(format!(
                                "{fam}({lo_name}, {hi_name}) needs {lo_name} < {hi_name}"
                            )),
                    );
                    return None;
                }
            }
        }
        let mut it = ps.into_iter();
        let args = match spec.args {
            ArgsKind::LocScale => DistArgs::LocScale {
                loc: it.next()?,
                scale: it.next()?,
            },
            ArgsKind::Bounds => DistArgs::Bounds {
                low: it.next()?,
                high: it.next()?,
            },
            ArgsKind::Logits => DistArgs::Logits(it.next()?),
            ArgsKind::Params => DistArgs::Params(it.collect()),
            ArgsKind::None => DistArgs::None,
        };
        Some(Dist { family, args })
    }

    /// Distribution support against the variable's type and role (`E070`, `E073`).
    fn support(&mut self, var: &Var, block: Block, family: Family, span: Span) -> Option<()> {
        let support = family.spec().support;
        let ok = match (support, var.ty) {
            (Support::Real, VarType::Real { .. } | VarType::Unit { .. }) => true,
            (Support::Binary, VarType::Binary { .. }) => true,
            (Support::Binary, VarType::Unit { .. }) => var.role == Role::Observed,
            (Support::OneHot, VarType::OneHot { .. }) => true,
            _ => false,
        };
        if !ok {
            let fits = support.fits();
            self.err(
                Diagnostic::new(
                    Code::SupportMismatch,
                    format!(
                        "a {} cannot generate the {} variable `{}`",
                        family.name(),
                        var.ty.keyword(),
                        var.name
                    ),
                )
                .label(
                    span,
                    format!(
                        "support of {} does not match `{}`",
                        family.name(),
                        var.ty.keyword()
                    ),
                )
                .help(format!("{} fits {fits}", family.name())),
            );
            return None;
        }
        if family.spec().likelihood_only && var.role != Role::Observed {
            self.err(
                Diagnostic::new(
                    Code::SupportMismatch,
                    format!(
                        "a {} cannot generate the {} `{}`: it is a likelihood of observed counts only",
                        family.name(),
                        var.role.keyword(),
                        var.name
                    ),
                )
                .label(span, "not observed")
                .help(format!(
                    "{} has no reparameterised or enumerable sampler here; observe `{}` (`observed {}: real[…]` holding counts), or give a latent count a continuous family (e.g. Gamma or LogNormal)",
                    family.name(),
                    var.name,
                    var.name
                )),
            );
            return None;
        }
        if family.spec().improper && (var.role == Role::Observed || block == Block::Q) {
            self.err(Diagnostic::new(Code::ImproperLikelihood, if block == Block::Q { format!("q samples `{}` from the improper Flat distribution", var.name) } else { format!("the observed `{}` has an improper Flat likelihood", var.name) })
                .label(span, "improper")
                .help("Flat is only a prior of a latent (e.g. a MaxEnt RL action prior); give q or the likelihood a normalised distribution"));
            return None;
        }
        Some(())
    }
}

/// The smallest probability a `probs =` argument is read as: f32's machine epsilon, as
/// torch's `clamp_probs` (a probability of 0 or 1 computed by the model would be an infinite
/// logit, and its gradient 0·∞ = NaN).
const PROBS_EPS: f64 = f32::EPSILON as f64;

/// Logits from probabilities, clamped as torch's `probs_to_logits`: `log max(p, ε)` (a softmax
/// per group renormalises them, as torch's `Categorical(probs = …)` does), or `log p̃ − log(1 −
/// p̃)` with `p̃ = clamp(p, ε, 1 − ε)` for a Bernoulli.
fn probs_to_logits(p: Expr, binary: bool) -> Expr {
    let shape = p.shape.clone();
    let log = |e: Expr| Expr {
        kind: ExprKind::Unary {
            op: UnOp::Log,
            arg: Box::new(e),
        },
        shape: shape.clone(),
    };
    let high = if binary {
        1.0 - PROBS_EPS
    } else {
        f64::from(f32::MAX)
    };
    let p = Expr {
        kind: ExprKind::Clamp {
            arg: Box::new(p),
            low: Box::new(Expr::num(PROBS_EPS)),
            high: Box::new(Expr::num(high)),
        },
        shape: shape.clone(),
    };
    if !binary {
        return log(p);
    }
    let one_minus = Expr {
        kind: ExprKind::Binary {
            op: BinOp::Sub,
            lhs: Box::new(Expr::num(1.0)),
            rhs: Box::new(p.clone()),
        },
        shape: shape.clone(),
    };
    Expr {
        kind: ExprKind::Binary {
            op: BinOp::Sub,
            lhs: Box::new(log(p)),
            rhs: Box::new(log(one_minus)),
        },
        shape,
    }
}

pub fn dist_reads(d: &Dist) -> Vec<Read> {
    let mut out: Vec<Read> = Vec::new();
    let exprs: Vec<&Expr> = match &d.args {
        DistArgs::LocScale { loc, scale } => vec![loc, scale],
        DistArgs::Split { head, .. } => vec![head],
        DistArgs::Logits(l) => vec![l],
        DistArgs::Bounds { low, high } => vec![low, high],
        DistArgs::Params(ps) => ps.iter().collect(),
        DistArgs::None => vec![],
    };
    for e in exprs {
        for r in e.reads() {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// The families with a `.split(head)` form, as a help line lists them: "A, B and C".
fn split_families() -> String {
    let names: Vec<&str> = crate::family::FAMILIES
        .iter()
        .filter(|s| s.split)
        .map(|s| s.name)
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}
