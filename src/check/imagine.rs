//! The `imagine { … }` block: behaviour learning in imagination (Dreamer; Marino & Yue).
//!
//! `policy a[t] ~ …` and `prior a[t] ~ …` are factor statements on one time-indexed `input`
//! (the action: data for the world model, sampled from the policy in imagination); the
//! settings are `reward`, `alpha`, `critic`, `horizon`, `discount`, `lambda`, `start` and
//! `continue` (the observed continuation flag `c` whose `Bernoulli(logits)` factor in p
//! predicts that an episode goes on: the imagined discount becomes γ·P(c = 1 | state)).
//! Codes: `E085` (no policy on an action, or a prior on another variable), `E086` (the
//! policy, prior or reward reads an observed variable: imagined rollouts have no data),
//! `E087` (the critic is not a scalar net over the model state), `E088` (a setting missing,
//! unknown, given twice or out of range).

use super::env::{Ck, Sym};
use super::expr::{Cx, Time};
use super::factors::dist_reads;
use crate::diag::{Code, Diagnostic};
use crate::ir::*;
use crate::parse::ast::{self, ImagineFactor, ImagineRole, Item, SettingAst, StmtAst, TargetIndex};
use crate::span::Span;

const SETTINGS: &str =
    "reward, alpha, critic, horizon, discount, lambda, start, continue, estimator";

/// The general-case context of an imagined step: `t` is the step τ of the rollout.
fn general(block: Option<Block>) -> Cx {
    Cx {
        block,
        time: Time::General(1),
        seq: None,
        no_vars: false,
    }
}

impl Ck {
    /// Check the `imagine { … }` block (at most one) and store it in `Model::behaviour`.
    pub fn imagine(&mut self, items: &[Item]) {
        let mut first: Option<Span> = None;
        for item in items {
            let Item::Imagine {
                factors,
                settings,
                span,
            } = item
            else {
                continue;
            };
            if let Some(f) = first {
                self.err(
                    Diagnostic::new(Code::MultipleModelParts, "a second `imagine` block")
                        .label(Span::new(span.lo, span.lo + 7), "declared again here")
                        .label(Span::new(f.lo, f.lo + 7), "first block")
                        .help("put the policy, the prior and every setting in one `imagine` block"),
                );
                continue;
            }
            first = Some(*span);
            let head = Span::new(span.lo, span.lo + 7);
            if let Some(b) = self.behaviour(factors, settings, head) {
                self.model.behaviour = Some(b);
            }
        }
    }

    fn behaviour(
        &mut self,
        factors: &[ImagineFactor],
        settings: &[SettingAst],
        head: Span,
    ) -> Option<Behaviour> {
        let mut ok = true;
        // The policy and the prior: one each, on the same action.
        let mut policy: Option<(VarId, Dist, Vec<Read>)> = None;
        let mut prior: Option<(VarId, Dist, Vec<Read>, Span)> = None;
        let mut seen: Vec<(ImagineRole, Span)> = Vec::new();
        for f in factors {
            let StmtAst::Sample { target, dist, .. } = &f.stmt else {
                continue;
            };
            let word = match f.role {
                ImagineRole::Policy => "policy",
                ImagineRole::Prior => "prior",
            };
            if let Some((_, prev)) = seen.iter().find(|(r, _)| *r == f.role) {
                self.err(
                    Diagnostic::new(Code::BadImagineSetting, format!("two `{word}` statements"))
                        .label(f.role_span, "given again here")
                        .label(*prev, "first given here")
                        .help(format!("an `imagine` block has one `{word}`")),
                );
                ok = false;
                continue;
            }
            seen.push((f.role, f.role_span));
            let Some(v) = self.action(target) else {
                ok = false;
                continue;
            };
            let (block, cx) = match f.role {
                ImagineRole::Policy => (Block::Q, general(Some(Block::Q))),
                ImagineRole::Prior => (Block::P, general(Some(Block::P))),
            };
            let Some(d) = self.dist(v, block, dist, cx) else {
                ok = false;
                continue;
            };
            let reads = dist_reads(&d);
            if !self.no_data(&reads, dist.span, word) {
                ok = false;
                continue;
            }
            if reads
                .iter()
                .any(|r| r.var == v && r.time == TimeRef::Lag(0))
            {
                self.err(
                    Diagnostic::new(
                        Code::ImagineNoPolicy,
                        format!(
                            "the {word} of `{}[t]` reads `{}[t]` itself",
                            target.name.name, target.name.name
                        ),
                    )
                    .label(dist.span, "reads the action it draws")
                    .help("condition on the model state (`h[t]`, `s[t]`) or on earlier actions"),
                );
                ok = false;
                continue;
            }
            match f.role {
                ImagineRole::Policy => policy = Some((v, d, reads)),
                ImagineRole::Prior => prior = Some((v, d, reads, target.span)),
            }
        }
        let action = policy.as_ref().map(|p| p.0);
        let mut reward: Option<(Expr, Vec<Read>)> = None;
        let mut critic: Option<(Expr, NetId, Vec<Read>)> = None;
        let mut alpha = 1.0;
        let mut horizon = 15;
        let mut discount = 0.99;
        let mut lambda = 0.95;
        let mut cont: Option<Continuation> = None;
        let mut estimator: Option<(String, Span)> = None;
        let mut start = ImagineStart::Posterior;
        let mut done: Vec<(String, Span)> = Vec::new();
        for s in settings {
            let key = s.key.name.clone();
            if let Some((_, prev)) = done.iter().find(|(k, _)| *k == key) {
                self.err(
                    Diagnostic::new(Code::BadImagineSetting, format!("`{key}` is set twice"))
                        .label(s.span, "set again here")
                        .label(*prev, "first set here")
                        .help("keep one"),
                );
                ok = false;
                continue;
            }
            done.push((key.clone(), s.span));
            if let Some(sub) = &s.subject {
                self.bad_imagine(s, sub.span, "takes no term name", "write `key = value`");
                ok = false;
                continue;
            }
            if let Some(o) = s.opts.first() {
                self.bad_imagine(s, o.name.span, "takes no option", "write `key = value`");
                ok = false;
                continue;
            }
            match key.as_str() {
                "reward" => match self.expr(&s.value, general(None)) {
                    Some(e) if e.shape.numel() == 1 && !e.shape.is_matrix() => {
                        let reads = e.reads();
                        if self.no_data(&reads, s.value.span, "reward") {
                            reward = Some((e, reads));
                        } else {
                            ok = false;
                        }
                    }
                    Some(e) => {
                        let shape = e.shape.clone();
                        self.bad_imagine(s, s.value.span, &format!("the reward has size {shape}, not a scalar"), "the reward of one step is a number, e.g. the reward head's mean `rew(h[t], s[t])`");
                        ok = false;
                    }
                    None => ok = false,
                },
                "critic" => match self.critic(s, action) {
                    Some(c) => critic = Some(c),
                    None => ok = false,
                },
                "alpha" => match self.scalar_eval(&s.value) {
                    Some(a) if a > 0.0 && a.is_finite() => alpha = a,
                    Some(a) => {
                        self.bad_imagine(
                            s,
                            s.value.span,
                            &format!("α = {a} is not > 0"),
                            "the temperature α divides the reward: e.g. `alpha = 1.0`",
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "horizon" => match self.scalar_eval(&s.value) {
                    Some(h)
                        if h >= 1.0 && h.fract() == 0.0 && h <= crate::limits::MAX_COUNT as f64 =>
                    {
                        horizon = h as u32
                    }
                    Some(h) => {
                        self.bad_imagine(
                            s,
                            s.value.span,
                            &format!(
                                "{h} is not a whole number from 1 to {}",
                                crate::limits::MAX_COUNT
                            ),
                            "the number of imagined steps, e.g. `horizon = 15` (Dreamer)",
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "discount" | "lambda" => match self.scalar_eval(&s.value) {
                    Some(x) if (0.0..=1.0).contains(&x) => {
                        if key == "discount" {
                            discount = x;
                        } else {
                            lambda = x;
                        }
                    }
                    Some(x) => {
                        self.bad_imagine(
                            s,
                            s.value.span,
                            &format!("{x} is outside [0, 1]"),
                            if key == "discount" {
                                "the discount γ is in [0, 1], e.g. `discount = 0.99` (Dreamer)"
                            } else {
                                "λ of the λ-return is in [0, 1], e.g. `lambda = 0.95` (Dreamer)"
                            },
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "estimator" => match &s.value.kind {
                    ast::ExprKind::Name(id) if id.name == "straight_through" => {
                        estimator = Some((id.name.clone(), s.value.span))
                    }
                    ast::ExprKind::Name(id)
                        if id.name == "score_function" || id.name == "reinforce" =>
                    {
                        self.bad_imagine(s, s.value.span, "the score-function (REINFORCE) estimator is not implemented for imagined actions", "use `estimator = straight_through` (DreamerV3's: the one-hot sample forward, the gradient of its probabilities backward)");
                        ok = false;
                    }
                    _ => {
                        self.bad_imagine(
                            s,
                            s.value.span,
                            "not an estimator",
                            "a discrete action's gradient: `estimator = straight_through`",
                        );
                        ok = false;
                    }
                },
                "continue" => match self.continuation(s) {
                    Some(c) => cont = Some(c),
                    None => ok = false,
                },
                "start" => match &s.value.kind {
                    ast::ExprKind::Name(id) if id.name == "posterior" => {}
                    ast::ExprKind::Name(id) if id.name == "prior" => start = ImagineStart::Prior,
                    _ => {
                        self.bad_imagine(s, s.value.span, "not `posterior` or `prior`", "imagined rollouts start from the posterior states of the data (`start = posterior`, a learned world model) or, with known dynamics, from p's own initial states (`start = prior`)");
                        ok = false;
                    }
                },
                other => {
                    self.err(
                        Diagnostic::new(
                            Code::BadImagineSetting,
                            format!("unknown imagination setting `{other}`"),
                        )
                        .label(s.key.span, "unknown")
                        .help(format!("settings: {SETTINGS}")),
                    );
                    ok = false;
                }
            }
        }
        let has = |role| seen.iter().any(|(r, _)| *r == role);
        if !has(ImagineRole::Policy) {
            self.err(
                Diagnostic::new(Code::ImagineNoPolicy, "the `imagine` block has no policy")
                    .label(head, "no `policy` statement")
                    .help("declare the action `input a[t] : real[A]` and its policy: `policy a[t] ~ TanhNormal.split(actor(h[t], s[t]))`"),
            );
        }
        if !has(ImagineRole::Prior) {
            let a = action.map_or("a".to_string(), |v| self.var(v).name.clone());
            self.err(
                Diagnostic::new(Code::BadImagineSetting, "the `imagine` block has no action prior")
                    .label(head, "no `prior` statement")
                    .help(format!("give one, e.g. `prior {a}[t] ~ Flat` (an entropy bonus, as Dreamer and SAC), `Uniform(-1, 1)`, `Normal(0, 1)`, or a learned `Normal.split(habit(s[t]))`")),
            );
        }
        for (key, example) in [
            ("reward", "`reward = rew(h[t], s[t])`"),
            ("critic", "`critic = value(h[t], s[t])`"),
        ] {
            if !done.iter().any(|(k, _)| k == key) {
                self.err(
                    Diagnostic::new(
                        Code::BadImagineSetting,
                        format!("the `imagine` block has no `{key}`"),
                    )
                    .label(head, format!("no `{key}`"))
                    .help(format!("add {example}")),
                );
                ok = false;
            }
        }
        let (action, policy, policy_parents) = policy?;
        let (prior, prior_parents) = match prior? {
            (v, d, reads, span) if v == action => {
                if let Some(why) = super::rules::kl_infinite(&policy, &d) {
                    let name = self.var(action).name.clone();
                    self.err(
                        Diagnostic::new(Code::InfiniteKl, format!("KL(q ‖ p) for the action `{name}` is infinite: {why}"))
                            .label(span, format!("the prior is {}", d.family.name()))
                            .help("the policy must put no mass where the prior has none: use a policy with bounded support (TanhNormal) under a bounded prior, or widen the prior"),
                    );
                    return None;
                }
                (d, reads)
            }
            (v, _, _, span) => {
                let (a, b) = (self.var(action).name.clone(), self.var(v).name.clone());
                self.err(
                    Diagnostic::new(
                        Code::ImagineNoPolicy,
                        format!("the prior is on `{b}`, the policy on `{a}`"),
                    )
                    .label(span, "not the policy's action")
                    .help(format!(
                        "the action prior is a distribution of the same action: `prior {a}[t] ~ Flat`"
                    )),
                );
                return None;
            }
        };
        let ((reward, reward_parents), (critic, critic_net, critic_parents)) = (reward?, critic?);
        let discrete = matches!(self.var(action).ty, VarType::OneHot { .. });
        if let (false, Some((_, span))) = (discrete, &estimator) {
            let name = self.var(action).name.clone();
            self.err(
                Diagnostic::new(
                    Code::BadImagineSetting,
                    format!("`estimator` names a discrete action's gradient; `{name}` is real"),
                )
                .label(*span, "for a `onehot` action only")
                .help("a real action's policy is reparameterised: remove the `estimator` line"),
            );
            return None;
        }
        if !ok {
            return None;
        }
        Some(Behaviour {
            action,
            policy,
            policy_parents,
            prior,
            prior_parents,
            reward,
            reward_parents,
            alpha,
            critic,
            critic_net,
            critic_parents,
            horizon,
            discount,
            lambda,
            start,
            cont,
            straight_through: discrete,
        })
    }

    /// `continue = c`: a timed observed scalar whose general case in p is
    /// `Bernoulli(logits = …)` over the model state (`E088` otherwise).
    fn continuation(&mut self, s: &SettingAst) -> Option<Continuation> {
        let help =
            "name the observed continuation flag of the world model: `observed c[t] : binary`, \
                    `c[t] ~ Bernoulli(logits = cont(h[t], s[t]))` in p, and `continue = c` here";
        let var = match &s.value.kind {
            ast::ExprKind::Name(id) => match self.resolve(id) {
                Some(Sym::Var(v)) => Some(v),
                _ => None,
            },
            _ => None,
        };
        let Some(v) = var else {
            self.bad_imagine(s, s.value.span, "not the name of a variable", help);
            return None;
        };
        let var = self.var(v).clone();
        if var.role != Role::Observed || !var.timed || var.ty.size() != 1 {
            self.bad_imagine(
                s,
                s.value.span,
                &format!("`{}` is not a time-indexed observed scalar", var.name),
                help,
            );
            return None;
        }
        let factor = (self.model.factors.iter())
            .find(|f| f.block == Block::P && f.var == v && matches!(f.case, TimeCase::From(_)));
        let logits = match factor.map(|f| &f.body) {
            Some(FactorBody::Sample(Dist {
                family: crate::family::Family::Bernoulli,
                args: DistArgs::Logits(l),
            })) => l.clone(),
            _ => {
                self.bad_imagine(
                    s,
                    s.value.span,
                    &format!(
                        "`{}[t]` is not drawn from `Bernoulli(logits = …)` in p",
                        var.name
                    ),
                    help,
                );
                return None;
            }
        };
        let parents = logits.reads();
        if !self.no_data(&parents, s.value.span, "continuation head") {
            return None;
        }
        let prob = Expr {
            shape: logits.shape.clone(),
            kind: ExprKind::Unary {
                op: UnOp::Sigmoid,
                arg: Box::new(logits),
            },
        };
        Some(Continuation {
            var: v,
            prob,
            parents,
        })
    }

    /// The target of `policy`/`prior`: a time-indexed real `input` at `[t]` (`E085`).
    fn action(&mut self, t: &ast::Target) -> Option<VarId> {
        let sym = self.resolve(&t.name)?;
        let v = match sym {
            Sym::Var(v) => Some(v),
            _ => None,
        };
        let fits = v.is_some_and(|v| {
            let var = self.var(v);
            var.role == Role::Input
                && var.timed
                && matches!(
                    var.ty,
                    VarType::Real { .. } | VarType::OneHot { groups: 1, .. }
                )
        });
        if fits && t.index == TargetIndex::T {
            return v;
        }
        self.err(
            Diagnostic::new(
                Code::ImagineNoPolicy,
                format!("`{}` is not an action the policy can draw", t.name.name),
            )
            .label(t.span, "not a time-indexed real or one-hot `input` at `[t]`")
            .help("the action is data for the world model and a latent in imagination: declare `input a[t] : real[A]` (or `onehot[A]` for discrete actions) and write `policy a[t] ~ …`"),
        );
        None
    }

    /// `E086` when `reads` include an observed variable: imagined steps have no data.
    fn no_data(&mut self, reads: &[Read], span: Span, what: &str) -> bool {
        let Some(r) = reads
            .iter()
            .find(|r| self.var(r.var).role == Role::Observed)
        else {
            return true;
        };
        let name = self.var(r.var).name.clone();
        self.err(
            Diagnostic::new(Code::ImagineReadsData, format!("the {what} reads the observed `{name}`"))
                .label(span, format!("reads `{name}`"))
                .help("imagined steps have no observations: read the model state instead (`h[t]`, `s[t]`)"),
        );
        false
    }

    /// `critic = net(state…)`: a net call with output size 1 that reads no observed variable
    /// and not the action (`E087`).
    fn critic(
        &mut self,
        s: &SettingAst,
        action: Option<VarId>,
    ) -> Option<(Expr, NetId, Vec<Read>)> {
        let bad = |ck: &mut Ck, why: String| {
            ck.err(
                Diagnostic::new(Code::BadCritic, format!("the critic {why}"))
                    .label(s.value.span, "not a net over the model state")
                    .help("the critic is a value net with one output over the latent state, e.g. `net value = mlp(D + S -> H -> 1, elu)` and `critic = value(h[t], s[t])`"),
            );
            None
        };
        let net = match &s.value.kind {
            ast::ExprKind::Call { fun, .. } => match self.names.get(&fun.name) {
                Some((Sym::Net(n), _)) => Some(*n),
                _ => None,
            },
            _ => None,
        };
        let Some(n) = net else {
            return bad(self, "is not a call of a net".into());
        };
        let e = self.expr(&s.value, general(None))?;
        if e.shape.numel() != 1 || e.shape.is_matrix() {
            return bad(self, format!("has output size {}, not 1", e.shape));
        }
        let reads = e.reads();
        if let Some(r) = reads.iter().find(|r| {
            let role = self.var(r.var).role;
            role == Role::Observed || role == Role::Input || Some(r.var) == action
        }) {
            let v = self.var(r.var);
            return bad(
                self,
                format!(
                    "reads the {} `{}`; it values the model state only",
                    v.role.keyword(),
                    v.name
                ),
            );
        }
        Some((e, n, reads))
    }

    fn bad_imagine(&mut self, s: &SettingAst, span: Span, why: &str, help: &str) {
        self.err(
            Diagnostic::new(
                Code::BadImagineSetting,
                format!("invalid `{}`: {why}", s.key.name),
            )
            .label(span, why.to_string())
            .help(help.to_string()),
        );
    }
}
