//! Behaviour learning in imagination: the model IR's [`Behaviour`] → the [`Imagination`]
//! objectives, term by term.
//!
//! From a posterior state of the data, p is rolled forward H steps with actions a_τ drawn
//! from the policy q(a_τ | state_τ), the world model's parameters frozen. The soft reward of a
//! step is r̃_τ = r_τ/α − KL(q(a_τ | ·) ‖ p(a_τ | ·)) (log p(O_τ = 1) = r_τ/α; for a Flat prior
//! the KL is −H[q]). The actor maximises the λ-return of the soft rewards,
//!
//! ```text
//! R^λ_τ = r̃_τ + γ ((1 − λ) V(s_{τ+1}) + λ R^λ_{τ+1}),   R^λ_{H+1} = V(s_{H+1}),
//! ```
//!
//! which is, exactly and term by term,
//!
//! ```text
//! R^λ_1 = Σ_{τ=1..H} γ^{τ−1} (r_τ/α − KL_τ)            the discounted control-as-inference bound
//!       + γ^H V(s_{H+1})                                the critic's bootstrap
//!       + (1 − λ) Σ_{τ=1..H−1} γ^τ λ^{τ−1} (V(s_{τ+1}) − G_{τ+1})   λ-correction
//! ```
//!
//! with G_τ = Σ_{k=τ..H} γ^{k−τ} r̃_k + γ^{H+1−τ} V(s_{H+1}) the λ = 1 return from τ (the
//! correction has zero mean when V is the soft value of the policy, and vanishes for λ = 1).
//! The critic regresses on the λ-return under stop-gradient: ½ Σ_τ (V(s_τ) − sg(R^λ_τ))².
//! The actor's terms train the policy (and a learned prior, through the KL); the critic's
//! parameters enter the actor's objective only as constants; the critic loss trains the critic.

use super::{closed_form, KlForm, Method};
use crate::family::EntropyForm;
use crate::ir::*;
use serde::Serialize;

/// A learned value a term's gradient updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trainable {
    /// Every parameter of a net.
    Net(NetId),
    /// A `param`.
    Param(ParamId),
}

/// Which of the two objectives a term belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Learner {
    /// The actor's objective (maximised): the imagined bound.
    Actor,
    /// The critic's loss (minimised).
    Critic,
}

/// What an imagined term is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImaginedKind {
    /// `r_τ / α` at each imagined step.
    Reward,
    /// `−KL(q(a_τ | ·) ‖ p(a_τ | ·))` in closed form.
    Kl {
        /// The closed form.
        form: KlForm,
    },
    /// `log p(a_τ | ·) − log q(a_τ | ·)` at the policy's sample (Monte Carlo).
    LogRatio,
    /// `H[q(a_τ | ·)]`: the prior is Flat, so `−KL(q ‖ Flat) = H[q]`.
    Entropy {
        /// `H[q]` in closed form for the policy's family; otherwise `−log q` at the sample.
        closed_form: bool,
    },
    /// `γ^H V(s_{H+1})`: the critic's value of the last imagined state.
    Bootstrap,
    /// `(1 − λ) γ^τ λ^{τ−1} (V(s_{τ+1}) − G_{τ+1})`: what turns the λ = 1 return into R^λ_1.
    LambdaCorrection,
    /// `½ (V(s_τ) − sg(R^λ_τ))²`: the critic's regression on the λ-return.
    CriticLoss,
}

impl ImaginedKind {
    /// A KL, log-ratio or entropy term: one of the forms of `−KL(q ‖ p)` on the action.
    pub fn is_kl_like(&self) -> bool {
        matches!(
            self,
            ImaginedKind::Kl { .. } | ImaginedKind::LogRatio | ImaginedKind::Entropy { .. }
        )
    }
    /// The kind as a table shows it.
    pub fn name(&self) -> &'static str {
        match self {
            ImaginedKind::Reward => "reward",
            ImaginedKind::Kl { .. } => "KL",
            ImaginedKind::LogRatio => "log-ratio",
            ImaginedKind::Entropy { .. } => "entropy",
            ImaginedKind::Bootstrap => "bootstrap",
            ImaginedKind::LambdaCorrection => "λ-correction",
            ImaginedKind::CriticLoss => "critic loss",
        }
    }
}

/// How an imagined term is computed, decided here once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImaginedCompute {
    /// `r / α` at the imagined state and action.
    Reward,
    /// `−KL(q ‖ p)` in this closed form.
    Kl(KlForm),
    /// `log p(a) − log q(a)` at q's sample.
    LogRatio,
    /// `H[q]` in this closed form.
    Entropy(EntropyForm),
    /// `−log q(a)` at q's sample.
    EntropyMc,
    /// The critic at the last imagined state.
    Bootstrap,
    /// The critic's values against the λ = 1 returns.
    LambdaCorrection,
    /// The squared error of the critic against the stop-gradient λ-return.
    CriticRegression,
}

/// One term of the imagined objectives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImaginedTerm {
    /// What the term is.
    #[serde(flatten)]
    pub kind: ImaginedKind,
    /// The actor's objective or the critic's loss.
    pub learner: Learner,
    /// The weight of the term at each step it covers, in order: γ^{τ−1} for τ = 1..H (reward,
    /// KL), `[γ^H]` (bootstrap), (1 − λ) γ^τ λ^{τ−1} for τ = 1..H−1 (λ-correction), 1 for
    /// τ = 1..H (critic loss).
    pub weights: Vec<f64>,
    /// The nets and params the term's gradient updates, by name.
    pub trains: Vec<String>,
    /// The same as ids.
    #[serde(skip)]
    pub train_ids: Vec<Trainable>,
    /// How it is computed.
    #[serde(skip)]
    pub compute: ImaginedCompute,
    /// Exact given the imagined trajectory, or Monte Carlo.
    pub method: Method,
    /// One line: why this form.
    pub why: String,
}

/// The derived behaviour objectives of a model with an `imagine` block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Imagination {
    /// The action's name.
    pub action: String,
    /// Where rollouts start.
    pub start: ImagineStart,
    /// H.
    pub horizon: u32,
    /// γ.
    pub discount: f64,
    /// λ.
    pub lambda: f64,
    /// The continuation head as a probability, `P(c[t] = 1 | h[t], s[t]) = sigmoid(…)`, when
    /// the model declares one: every γ of the objective is then γ·P(c_τ = 1 | state_τ).
    pub continuation: Option<String>,
    /// α.
    pub alpha: f64,
    /// The policy as a density, `q(a[t] | h[t], s[t])`.
    pub policy: String,
    /// The policy's distribution as written.
    pub policy_dist: String,
    /// The action prior as a density, `p(a[t])` or `p(a[t] | s[t])`.
    pub prior: String,
    /// The prior's distribution as written.
    pub prior_dist: String,
    /// Whether the prior has parameters of its own (Marino & Yue's learned habit).
    pub learned_prior: bool,
    /// The reward expression.
    pub reward: String,
    /// The critic call, `value(h[t], s[t])`.
    pub critic: String,
    /// The model state an imagined step carries: the world model's time-indexed latents and
    /// states, in declaration order.
    pub state: Vec<String>,
    /// The world model's nets and params, frozen while behaviour is learned.
    pub frozen: Vec<String>,
    /// The terms: the actor's (reward, KL-like, bootstrap, λ-correction), then the critic's.
    pub terms: Vec<ImaginedTerm>,
}

/// The nets and params `e` reads directly (not through variables).
fn trainables(e: &Expr, out: &mut Vec<Trainable>) {
    match &e.kind {
        ExprKind::Param(p) => out.push(Trainable::Param(*p)),
        ExprKind::Net { net, .. } | ExprKind::Gru { net, .. } | ExprKind::Rnn { net, .. } => {
            out.push(Trainable::Net(*net))
        }
        _ => {}
    }
    for c in e.children() {
        trainables(c, out);
    }
}

fn dist_trainables(d: &Dist) -> Vec<Trainable> {
    let mut out = Vec::new();
    let exprs: Vec<&Expr> = match &d.args {
        DistArgs::LocScale { loc, scale } => vec![loc, scale],
        DistArgs::Split { head, .. } => vec![head],
        DistArgs::Logits(l) => vec![l],
        DistArgs::Bounds { low, high } => vec![low, high],
        DistArgs::Params(ps) => ps.iter().collect(),
        DistArgs::None => vec![],
    };
    for e in exprs {
        trainables(e, &mut out);
    }
    out
}

fn names(m: &Model, ids: &[Trainable]) -> Vec<String> {
    ids.iter()
        .map(|t| match *t {
            Trainable::Net(n) => m.nets[n].name.clone(),
            Trainable::Param(p) => m.params[p].name.clone(),
        })
        .collect()
}

fn union(a: &[Trainable], b: &[Trainable]) -> Vec<Trainable> {
    let mut out: Vec<Trainable> = a.iter().chain(b).copied().collect();
    out.sort();
    out.dedup();
    out
}

fn density(m: &Model, block: &str, action: &str, parents: &[Read]) -> String {
    let given: Vec<String> = parents.iter().map(|r| m.show_read(*r)).collect();
    if given.is_empty() {
        format!("{block}({action}[t])")
    } else {
        format!("{block}({action}[t] | {})", given.join(", "))
    }
}

/// Derive the imagined objectives of a model's `imagine` block.
pub fn derive(m: &Model, b: &Behaviour) -> Imagination {
    let h = b.horizon;
    let (gamma, lambda) = (b.discount, b.lambda);
    let action = m.vars[b.action].name.clone();
    let policy_ids = {
        let mut v = dist_trainables(&b.policy);
        v.sort();
        v.dedup();
        v
    };
    let prior_ids = {
        let mut v = dist_trainables(&b.prior);
        v.sort();
        v.dedup();
        v
    };
    let critic_ids = {
        let mut v = Vec::new();
        trainables(&b.critic, &mut v);
        v.sort();
        v.dedup();
        v
    };
    let discounted: Vec<f64> = (0..h).map(|k| gamma.powi(k as i32)).collect();
    let reparam = b.policy.family.spec().reparam.is_some();
    let through = if b.straight_through {
        "the gradient reaches the policy through its straight-through one-hot actions (the sample forward, the softmax's gradient backward) and the frozen dynamics"
    } else if reparam {
        "the gradient reaches the policy through its reparameterised actions and the frozen dynamics"
    } else {
        "the policy's samples are not reparameterised: its gradient needs a score-function estimator"
    };
    let (qf, pf) = (b.policy.family, b.prior.family);
    let (kind, compute, method, why) = match (pf.spec().improper, closed_form(qf, pf)) {
        (true, _) => {
            let form = qf.spec().entropy;
            (
                ImaginedKind::Entropy { closed_form: form.is_some() },
                form.map_or(ImaginedCompute::EntropyMc, ImaginedCompute::Entropy),
                if form.is_some() { Method::Analytic } else { Method::MonteCarlo },
                match form {
                    Some(_) => format!("p is Flat: −KL(q ‖ Flat) = H[q]; {} entropy in closed form", qf.name()),
                    None => format!("p is Flat: −KL(q ‖ Flat) = H[q]; H[{}] by Monte Carlo (−log q at the sample)", qf.name()),
                },
            )
        }
        (false, Some(form)) => (
            ImaginedKind::Kl { form },
            ImaginedCompute::Kl(form),
            Method::Analytic,
            format!("{} ‖ {} has a closed form", qf.name(), pf.name()),
        ),
        (false, None) => (
            ImaginedKind::LogRatio,
            ImaginedCompute::LogRatio,
            Method::MonteCarlo,
            format!(
                "{} ‖ {} has no closed form: log p − log q at the policy's sample",
                qf.name(),
                pf.name()
            ),
        ),
    };
    let kl_ids = union(&policy_ids, &prior_ids);
    let mut terms = vec![
        ImaginedTerm {
            kind: ImaginedKind::Reward,
            learner: Learner::Actor,
            weights: discounted.clone(),
            trains: names(m, &policy_ids),
            train_ids: policy_ids.clone(),
            compute: ImaginedCompute::Reward,
            method: Method::MonteCarlo,
            why: format!("log p(O_τ = 1 | ·) = r_τ / α along the imagined trajectory; {through}"),
        },
        ImaginedTerm {
            kind,
            learner: Learner::Actor,
            weights: discounted.clone(),
            trains: names(m, &kl_ids),
            train_ids: kl_ids,
            compute,
            method,
            why,
        },
        ImaginedTerm {
            kind: ImaginedKind::Bootstrap,
            learner: Learner::Actor,
            weights: vec![gamma.powi(h as i32)],
            trains: names(m, &policy_ids),
            train_ids: policy_ids.clone(),
            compute: ImaginedCompute::Bootstrap,
            method: Method::MonteCarlo,
            why: "the critic values the state after the horizon; its parameters are constants here"
                .into(),
        },
    ];
    if lambda < 1.0 && h > 1 {
        terms.push(ImaginedTerm {
            kind: ImaginedKind::LambdaCorrection,
            learner: Learner::Actor,
            weights: (1..h)
                .map(|k| (1.0 - lambda) * gamma.powi(k as i32) * lambda.powi(k as i32 - 1))
                .collect(),
            trains: names(m, &policy_ids),
            train_ids: policy_ids.clone(),
            compute: ImaginedCompute::LambdaCorrection,
            method: Method::MonteCarlo,
            why: "makes the sum the λ-return R^λ_1; zero in expectation when V is the policy's soft value".into(),
        });
    }
    terms.push(ImaginedTerm {
        kind: ImaginedKind::CriticLoss,
        learner: Learner::Critic,
        weights: vec![1.0; h as usize],
        trains: names(m, &critic_ids),
        train_ids: critic_ids.clone(),
        compute: ImaginedCompute::CriticRegression,
        method: Method::MonteCarlo,
        why: "regression on the λ-return, a stop-gradient target: only the critic learns from it"
            .into(),
    });
    let learned: Vec<Trainable> = union(&union(&policy_ids, &prior_ids), &critic_ids);
    let mut frozen: Vec<String> = Vec::new();
    for (i, n) in m.nets.iter().enumerate() {
        if !learned.contains(&Trainable::Net(i)) {
            frozen.push(n.name.clone());
        }
    }
    for (i, p) in m.params.iter().enumerate() {
        if !learned.contains(&Trainable::Param(i)) {
            frozen.push(p.name.clone());
        }
    }
    let state = m
        .vars
        .iter()
        .filter(|v| v.timed && matches!(v.role, Role::Latent | Role::State))
        .map(|v| v.name.clone())
        .collect();
    Imagination {
        action: action.clone(),
        start: b.start,
        horizon: h,
        discount: gamma,
        lambda,
        continuation: b.cont.as_ref().map(|c| {
            let v = &m.vars[c.var].name;
            let given: Vec<String> = c.parents.iter().map(|r| m.show_read(*r)).collect();
            format!(
                "P({v}[t] = 1 | {}) = {}",
                given.join(", "),
                m.show_expr(&c.prob)
            )
        }),
        alpha: b.alpha,
        policy: density(m, "q", &action, &b.policy_parents),
        policy_dist: m.show_dist(&b.policy),
        prior: density(m, "p", &action, &b.prior_parents),
        prior_dist: m.show_dist(&b.prior),
        learned_prior: !prior_ids.is_empty(),
        reward: m.show_expr(&b.reward),
        critic: m.show_expr(&b.critic),
        state,
        frozen,
        terms,
    }
}
