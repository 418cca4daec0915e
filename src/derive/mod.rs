//! Stage 3, derive: model IR → ELBO IR ([`Elbo`]), a typed list of terms.
//!
//! Input: a checked [`Model`]. Output: the terms of the evidence lower bound, the bound it
//! lower-bounds, the estimator of each latent with its reason, the cancellations, and the
//! facts the step-by-step derivation in `render::steps` is written from.
//! Invariants:
//! - every `(q, p)` pair on one latent and time range gives exactly one KL-like term, in the
//!   direction KL(q ‖ p); every observed factor gives one log-likelihood term; every optimality
//!   variable gives one reward term; deterministic states give no term;
//! - a latent time range without a `q` factor is sampled from `p` and produces a
//!   [`Cancellation`], never a term;
//! - the time ranges of a latent's terms and cancellations partition its time axis;
//! - terms come in display order: observed log-likelihoods, rewards, then KL-like terms.
//!
//! Pure: no IO.

mod estimator;
pub mod imagine;
mod kl;
pub mod marginal;

pub use crate::objective::Modifiers;
pub use estimator::{choose_estimator, LatentEstimator};
pub use kl::{closed_form, KlForm};

pub use crate::forms::Compute;

use crate::ir::*;
use serde::Serialize;

/// Which time steps a term covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Range {
    /// A static variable's term: no time axis.
    Static,
    /// One base step.
    At {
        /// The step, 1-based.
        t: u32,
    },
    /// Every step from `t` to the end of the sequence (the general case `[t]`).
    From {
        /// The first step covered, 1-based.
        t: u32,
    },
}

impl Range {
    /// The range a factor's time case covers: `At(k)` → `At { t: k }`, `From(k)` →
    /// `From { t: k }`.
    pub fn from_case(c: TimeCase) -> Range {
        match c {
            TimeCase::Static => Range::Static,
            TimeCase::At(k) => Range::At { t: k },
            TimeCase::From(k) => Range::From { t: k },
        }
    }
    /// The intersection of two factor cases, if not empty.
    pub fn meet(a: TimeCase, b: TimeCase) -> Option<Range> {
        match (a, b) {
            (TimeCase::Static, TimeCase::Static) => Some(Range::Static),
            (TimeCase::At(x), TimeCase::At(y)) => (x == y).then_some(Range::At { t: x }),
            (TimeCase::At(x), TimeCase::From(k)) | (TimeCase::From(k), TimeCase::At(x)) => {
                (x >= k).then_some(Range::At { t: x })
            }
            (TimeCase::From(x), TimeCase::From(y)) => Some(Range::From { t: x.max(y) }),
            _ => None,
        }
    }
    /// Whether step `t` is in the range (`Static` covers every step).
    pub fn covers(self, t: u32) -> bool {
        match self {
            Range::Static => true,
            Range::At { t: k } => k == t,
            Range::From { t: k } => t >= k,
        }
    }
}

/// A factor as it appears in a term: its target and conditioning set, specialised to the
/// term's range (reads of `init` values at a base step are dropped: they are constants).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FactorView {
    /// The factor in `Model::factors`.
    pub factor: FactorId,
    /// Its block's letter: `"p"` or `"q"`.
    pub block: &'static str,
    /// The variable at the range: `z`, `z[1]` (a base step) or `z[t]` (the general case).
    pub target: String,
    /// The reads it conditions on, deduplicated, as displayed (`z[t-1]`, `a[1]`, `x`).
    pub given: Vec<String>,
}

/// What a term is, with the factors it is built from (for display and JSON; how it is
/// computed is [`Term::compute`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TermKind {
    /// 𝔼_q[log p(x | …)] of an observed factor.
    LogLikelihood {
        /// The observed variable's p factor.
        p: FactorView,
    },
    /// KL(q ‖ p) in closed form.
    Kl {
        /// The latent's q factor.
        q: FactorView,
        /// The latent's p factor (its prior over the range).
        p: FactorView,
        /// Which closed form (the pair of families).
        form: KlForm,
    },
    /// 𝔼_q[log p(z | …) − log q(z | …)], estimated by Monte Carlo.
    LogRatio {
        /// The latent's q factor (the sample is drawn from it).
        q: FactorView,
        /// The latent's p factor.
        p: FactorView,
    },
    /// `H[q(z | …)]`: the prior is Flat, so `KL(q ‖ Flat) = −H[q]` (up to the improper constant).
    Entropy {
        /// The latent's q factor.
        q: FactorView,
        /// `H[q]` has a closed form for q's family; otherwise it is `−log q(z)` at q's sample.
        closed_form: bool,
    },
    /// `log Σ_{k[1:T]} p(k[1]) Π_{t≥2} p(k[t] | k[t-1]) Π_t p(y[t] | k[t])`: a discrete chain
    /// summed out of p exactly (the forward algorithm), with the observed factors it emits.
    Marginal {
        /// The chain's latent.
        chain: String,
        /// Its number of states.
        states: usize,
        /// `p(k[1])`.
        init: FactorView,
        /// `p(k[t] | k[t-1])`.
        trans: FactorView,
        /// The p factors that read `k[t]` (summed inside the recursion): observed likelihoods
        /// and switched latents' priors.
        emissions: Vec<FactorView>,
        /// Per emission, the first step of its product: 1 (every step), 2 (a general case
        /// from step 2), or 0 (a base case at step 1 only).
        #[serde(skip)]
        emission_from: Vec<u32>,
        /// q's chain when it has one (`q(k[1])`, `q(k[t] | k[t-1])`): the term is then
        /// `𝔼_q[log p(k, y) − log q(k)]`, enumerated exactly over q's chain.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        q: Vec<FactorView>,
    },
    /// 𝔼_q[r / α] = log p(O = 1 | r).
    Reward {
        /// Index into `Model::optimality`.
        opt: usize,
        /// The optimality variable's name.
        name: String,
        /// The reward expression, as displayed.
        reward: String,
        /// The temperature: fixed, or auto-tuned towards a target entropy.
        #[serde(serialize_with = "ser_alpha")]
        alpha: Alpha,
    },
}

impl TermKind {
    /// +1 when the term adds to the ELBO as displayed, −1 when it is subtracted (KL).
    pub fn sign(&self) -> i8 {
        match self {
            TermKind::Kl { .. } => -1,
            _ => 1,
        }
    }
    /// The kind as a table shows it.
    pub fn name(&self) -> &'static str {
        match self {
            TermKind::LogLikelihood { .. } => "log-likelihood",
            TermKind::Kl { .. } => "KL",
            TermKind::LogRatio { .. } => "log-ratio",
            TermKind::Entropy { .. } => "entropy",
            TermKind::Reward { .. } => "reward",
            TermKind::Marginal { .. } => "marginal",
        }
    }
    /// A KL, log-ratio or entropy term: one of the forms of `−KL(q ‖ p)` on a latent.
    pub fn is_kl_like(&self) -> bool {
        matches!(
            self,
            TermKind::Kl { .. } | TermKind::LogRatio { .. } | TermKind::Entropy { .. }
        )
    }
}

/// `{"kind": "fixed", "value": α}` or `{"kind": "auto", "target": …, "init": …}`. (serde cannot
/// write the IR's internally tagged `Fixed(f64)` newtype variant.)
fn ser_alpha<S: serde::Serializer>(a: &Alpha, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    match *a {
        Alpha::Fixed(v) => {
            m.serialize_entry("kind", "fixed")?;
            m.serialize_entry("value", &v)?;
        }
        Alpha::Auto { target, init } => {
            m.serialize_entry("kind", "auto")?;
            m.serialize_entry("target", &target)?;
            m.serialize_entry("init", &init)?;
        }
    }
    m.end()
}

/// Whether a term is exact given its sampled ancestors or a Monte Carlo estimate (shown by
/// `vic elbo`; [`Compute`] is what evaluation dispatches on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Computed exactly given the sampled ancestors.
    Analytic,
    /// One (or K) Monte Carlo samples of the integrand.
    MonteCarlo,
}

/// One term of the ELBO over one time range of its owner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Term {
    /// What the term is and the factors it reads.
    pub kind: TermKind,
    /// The variable (or optimality variable) the term belongs to, for display.
    pub owner: String,
    /// The owner as an id: what `lower` and `fused` read.
    #[serde(skip)]
    pub owner_id: VarOrOpt,
    /// How the term is computed, decided here once.
    #[serde(skip)]
    pub compute: Compute,
    /// The time steps the term covers.
    pub range: Range,
    /// The q-sampled latents the term's expectation is over (after substituting states).
    pub under: Vec<String>,
    /// Exact or Monte Carlo (for display).
    pub method: Method,
    /// One line: why this method.
    pub why: String,
    /// The objective modifiers attached to the term (only where each applies; see
    /// `objective::attach`).
    pub modifiers: Modifiers,
}

/// A latent range that q does not model: it is sampled from p and its log-ratio is zero.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cancellation {
    /// The latent's name.
    pub var: String,
    /// The steps q leaves out.
    pub range: Range,
    /// The p factor the latent is sampled from over the range.
    pub p: FactorView,
}

/// Where the model's evidence comes from: observed data, optimality variables, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// All latents inferred from data.
    Fit,
    /// No data: optimality variables carry the evidence.
    Control,
    /// Data and optimality.
    Both,
}

/// The derived objective of a model: its terms in display order, the latent ranges sampled
/// from p, each latent's estimator, and the bound. Built by [`derive()`]; `lower` reads it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Elbo {
    /// The model's name.
    pub model: String,
    /// Where the evidence comes from.
    pub mode: Mode,
    /// The terms: observed log-likelihoods, rewards, then KL-like terms.
    pub terms: Vec<Term>,
    /// Latent ranges with no q factor (sampled from p; no term).
    pub cancellations: Vec<Cancellation>,
    /// One per latent, in declaration order: its gradient estimator and why.
    pub estimators: Vec<LatentEstimator>,
    /// What the ELBO bounds: `log p(o[1:T] | a[1:T-1])`, `log p(O[1:T] = 1)`, …
    pub bound: Bound,
    /// Importance samples; > 1 makes the bound the IWAE bound.
    pub iwae: u32,
    /// Latent overshooting distance (1 = none); from `objective { overshooting = … }`.
    pub overshooting: u32,
    /// The behaviour objectives of an `imagine` block, beside the world model's ELBO.
    pub imagination: Option<imagine::Imagination>,
}

/// Derive the ELBO of a checked model.
pub fn derive(m: &Model) -> Elbo {
    let mut terms = Vec::new();
    let mut cancellations = Vec::new();
    let estimators: Vec<LatentEstimator> = (0..m.vars.len())
        .filter(|&v| m.vars[v].role == Role::Latent)
        .map(|v| choose_estimator(m, v))
        .collect();
    let iwae = m.objective.iwae > 1;
    let chains = marginal::chains(m);
    let emitted: Vec<FactorId> = chains.iter().flat_map(|c| c.emissions.clone()).collect();
    for (v, var) in m.vars.iter().enumerate() {
        if let Some(c) = chains.iter().find(|c| c.var == v) {
            let range = Range::From { t: 1 };
            terms.push(Term {
                kind: TermKind::Marginal {
                    chain: var.name.clone(),
                    states: c.classes,
                    init: view(m, c.init, Range::At { t: 1 }),
                    trans: view(m, c.trans, Range::From { t: 2 }),
                    emissions: c
                        .emissions
                        .iter()
                        .map(|&fi| view(m, fi, marginal::range(m, fi)))
                        .collect(),
                    emission_from: c
                        .emissions
                        .iter()
                        .map(|&fi| match marginal::range(m, fi) {
                            Range::From { t } => t,
                            _ => 0,
                        })
                        .collect(),
                    q: c
                        .q
                        .map(|q| {
                            vec![
                                view(m, q.init, Range::At { t: 1 }),
                                view(m, q.trans, Range::From { t: 2 }),
                            ]
                        })
                        .unwrap_or_default(),
                },
                owner: var.name.clone(),
                owner_id: VarOrOpt::Var(v),
                compute: Compute::Forward,
                range,
                // A switching model: the sum is at q's draw of what the emissions read.
                under: under(m, &c.emissions, range)
                    .into_iter()
                    .filter(|n| *n != var.name)
                    .collect(),
                method: Method::Analytic,
                why: match c.q {
                    None => format!(
                        "no q factor and `via enumerate`: summed out of p exactly by the forward algorithm (T·K² = T·{} per sequence)",
                        c.classes * c.classes
                    ),
                    Some(_) => format!(
                        "q is a Markov chain and `via enumerate`: 𝔼_q[log p − log q] summed exactly over q's chain by its forward marginals (T·K² = T·{} per sequence)",
                        c.classes * c.classes
                    ),
                },
                modifiers: crate::objective::attach(&m.objective, VarOrOpt::Var(v), Compute::Forward),
            });
            continue;
        }
        match var.role {
            Role::Observed => {
                for (fi, f) in m.factors_of(v, Block::P) {
                    if emitted.contains(&fi) {
                        continue;
                    }
                    let range = Range::from_case(f.case);
                    terms.push(Term {
                        kind: TermKind::LogLikelihood {
                            p: view(m, fi, range),
                        },
                        owner: var.name.clone(),
                        owner_id: VarOrOpt::Var(v),
                        compute: Compute::LogLikelihood,
                        range,
                        under: under(m, &[fi], range),
                        method: Method::MonteCarlo,
                        why: "expectation over q's samples of its latent parents".into(),
                        modifiers: crate::objective::attach(
                            &m.objective,
                            VarOrOpt::Var(v),
                            Compute::LogLikelihood,
                        ),
                    });
                }
            }
            Role::Latent => {
                for (pi, pf) in m.factors_of(v, Block::P) {
                    let FactorBody::Sample(pd) = &pf.body else {
                        continue;
                    };
                    // Pair with every q case that overlaps; what q does not cover cancels.
                    let mut covered: Vec<Range> = Vec::new();
                    for (qi, qf) in m.factors_of(v, Block::Q) {
                        let Some(range) = Range::meet(pf.case, qf.case) else {
                            continue;
                        };
                        let FactorBody::Sample(qd) = &qf.body else {
                            continue;
                        };
                        covered.push(range);
                        let (qv, pv) = (view(m, qi, range), view(m, pi, range));
                        let summed = emitted.contains(&pi);
                        let (kind, compute, why) = match (pd.family.spec().improper || summed, closed_form(qd.family, pd.family)) {
                            (true, _) if summed => {
                                let form = qd.family.spec().entropy;
                                (
                                    TermKind::Entropy { q: qv, closed_form: form.is_some() },
                                    form.map_or(Compute::EntropyMc, Compute::Entropy),
                                    format!(
                                        "p({}) reads a chain summed out: it is inside the forward algorithm's term, and what remains of −KL is H[q]{}",
                                        pv.target,
                                        if form.is_some() { " in closed form" } else { " by Monte Carlo (−log q at the sample)" }
                                    ),
                                )
                            }
                            (true, _) => {
                                // IWAE needs per-sample log weights: −log q at the sample.
                                let form = qd.family.spec().entropy.filter(|_| !iwae);
                                (
                                    TermKind::Entropy { q: qv, closed_form: form.is_some() },
                                    form.map_or(Compute::EntropyMc, Compute::Entropy),
                                    match form {
                                        Some(_) => format!("p is Flat: KL(q ‖ Flat) = −H[q]; {} entropy in closed form", qd.family.name()),
                                        None => format!("p is Flat: KL(q ‖ Flat) = −H[q]; H[{}] by Monte Carlo (−log q at the sample)", qd.family.name()),
                                    },
                                )
                            }
                            (false, Some(form)) if !iwae => (
                                TermKind::Kl { q: qv, p: pv, form },
                                Compute::Kl(form),
                                format!("{} ‖ {} has a closed form", qd.family.name(), pd.family.name()),
                            ),
                            (false, Some(_)) => (
                                TermKind::LogRatio { q: qv, p: pv },
                                Compute::LogRatio,
                                format!("IWAE with K = {} needs per-sample log weights, so the closed form is not used", m.objective.iwae),
                            ),
                            (false, None) => (
                                TermKind::LogRatio { q: qv, p: pv },
                                Compute::LogRatio,
                                format!("{} ‖ {} has no closed form: log p − log q at q's sample", qd.family.name(), pd.family.name()),
                            ),
                        };
                        let method = match compute {
                            Compute::Kl(_) | Compute::Entropy(_) => Method::Analytic,
                            _ => Method::MonteCarlo,
                        };
                        // A Monte Carlo log-ratio or entropy is also an expectation over
                        // the latent's own sample.
                        let read = [qi, pi];
                        let mut over = under(m, if summed { &read[..1] } else { &read[..] }, range);
                        if method == Method::MonteCarlo && !over.contains(&var.name) {
                            over.push(var.name.clone());
                        }
                        terms.push(Term {
                            kind,
                            owner: var.name.clone(),
                            owner_id: VarOrOpt::Var(v),
                            compute,
                            range,
                            under: over,
                            method,
                            why,
                            modifiers: crate::objective::attach(
                                &m.objective,
                                VarOrOpt::Var(v),
                                compute,
                            ),
                        });
                    }
                    for range in uncovered(pf.case, &covered) {
                        cancellations.push(Cancellation {
                            var: var.name.clone(),
                            range,
                            p: view(m, pi, range),
                        });
                    }
                }
            }
            Role::Input | Role::State => {}
        }
    }
    for (oi, o) in m.optimality.iter().enumerate() {
        let range = if o.timed {
            Range::From { t: 1 }
        } else {
            Range::Static
        };
        let mut lat = Vec::new();
        for r in &o.parents {
            collect_latents(m, r.var, &mut lat, 0);
        }
        terms.push(Term {
            kind: TermKind::Reward {
                opt: oi,
                name: o.name.clone(),
                reward: m.show_expr(&o.reward),
                alpha: o.alpha,
            },
            owner: o.name.clone(),
            owner_id: VarOrOpt::Opt(oi),
            compute: Compute::Reward,
            range,
            under: lat.iter().map(|&v| m.vars[v].name.clone()).collect(),
            method: Method::MonteCarlo,
            why: "log p(O = 1 | r) = r / α, averaged over sampled trajectories".into(),
            modifiers: crate::objective::attach(&m.objective, VarOrOpt::Opt(oi), Compute::Reward),
        });
    }
    // Canonical order: the evidence first (observed log-likelihoods, then rewards), then the
    // latents' KL-like terms; declaration order within each group.
    terms.sort_by_key(|t| match t.kind {
        TermKind::Marginal { .. } | TermKind::LogLikelihood { .. } => 0,
        TermKind::Reward { .. } => 1,
        _ => 2,
    });
    let mode = match (
        m.vars.iter().any(|v| v.role == Role::Observed),
        !m.optimality.is_empty(),
    ) {
        (true, false) => Mode::Fit,
        (false, _) => Mode::Control,
        (true, true) => Mode::Both,
    };
    Elbo {
        model: m.name.clone(),
        mode,
        terms,
        cancellations,
        estimators,
        bound: bound(m),
        iwae: m.objective.iwae,
        overshooting: m.objective.overshooting,
        imagination: m.behaviour.as_ref().map(|b| imagine::derive(m, b)),
    }
}

/// The parts of a p case not covered by q's ranges.
fn uncovered(case: TimeCase, covered: &[Range]) -> Vec<Range> {
    match case {
        TimeCase::Static => {
            if covered.is_empty() {
                vec![Range::Static]
            } else {
                vec![]
            }
        }
        TimeCase::At(k) => {
            if covered.iter().any(|r| r.covers(k)) {
                vec![]
            } else {
                vec![Range::At { t: k }]
            }
        }
        TimeCase::From(k) => {
            // Within [k, ∞) q's overlapping ranges are base steps and at most one `From { j }`.
            let base = |t: u32| covered.contains(&Range::At { t });
            let from = covered.iter().find_map(|r| match r {
                Range::From { t } => Some(*t),
                _ => None,
            });
            let last_base = covered
                .iter()
                .filter_map(|r| {
                    if let Range::At { t } = r {
                        Some(*t)
                    } else {
                        None
                    }
                })
                .max();
            // Steps before q's general case (or up to its last base case) that q skips.
            let end = from.unwrap_or_else(|| last_base.map(|l| l + 1).unwrap_or(k));
            let mut out: Vec<Range> = (k..end)
                .filter(|t| !base(*t))
                .map(|t| Range::At { t })
                .collect();
            if from.is_none() {
                out.push(Range::From { t: end.max(k) });
            }
            out
        }
    }
}

/// Specialise a factor to a range: in a base step, lags become absolute steps and reads of
/// `init` values (steps ≤ 0) are dropped.
pub fn view(m: &Model, fi: FactorId, range: Range) -> FactorView {
    let f = &m.factors[fi];
    let name = &m.vars[f.var].name;
    let target = match range {
        Range::Static => name.clone(),
        Range::At { t } => format!("{name}[{t}]"),
        Range::From { .. } => format!("{name}[t]"),
    };
    let mut given = Vec::new();
    for r in &f.parents {
        let time = match (r.time, range) {
            (TimeRef::Lag(k), Range::At { t }) => TimeRef::Step(i64::from(t) - i64::from(k)),
            (TimeRef::Lead(k), Range::At { t }) => TimeRef::Step(i64::from(t) + i64::from(k)),
            (x, _) => x,
        };
        if matches!(time, TimeRef::Step(s) if s <= 0) {
            continue;
        }
        let s = m.show_read(Read { var: r.var, time });
        if !given.contains(&s) {
            given.push(s);
        }
    }
    FactorView {
        factor: fi,
        block: f.block.letter(),
        target,
        given,
    }
}

/// The latents the factors read, directly or through deterministic states.
/// Reads at a base step that land on `init` values (steps ≤ 0) are constants, not samples.
fn under(m: &Model, factors: &[FactorId], range: Range) -> Vec<String> {
    let mut lat = Vec::new();
    for &fi in factors {
        for r in &m.factors[fi].parents {
            let at_init = match (r.time, range) {
                (TimeRef::Lag(k), Range::At { t }) => i64::from(t) - i64::from(k) <= 0,
                (TimeRef::Step(s), _) => s <= 0,
                _ => false,
            };
            if !at_init {
                collect_latents(m, r.var, &mut lat, 0);
            }
        }
    }
    lat.iter().map(|&v| m.vars[v].name.clone()).collect()
}

fn collect_latents(m: &Model, v: VarId, out: &mut Vec<VarId>, depth: usize) {
    if depth > m.vars.len() {
        return;
    }
    match m.vars[v].role {
        Role::Latent if !out.contains(&v) => out.push(v),
        Role::Latent => {}
        Role::State => {
            for f in m.factors.iter().filter(|f| f.var == v) {
                for r in &f.parents {
                    if r.var != v {
                        collect_latents(m, r.var, out, depth + 1);
                    }
                }
            }
        }
        _ => {}
    }
}

/// `log p(evidence, optimality = 1 | given)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bound {
    /// Observed variables, as displayed (`o[1:T]` for a timed one).
    pub evidence: Vec<String>,
    /// Optimality variables, each `= 1`.
    pub optimality: Vec<String>,
    /// Input variables conditioned on, up to the last step any factor reads (`a[1:T-1]`).
    pub given: Vec<String>,
}

/// The quantity the ELBO bounds.
fn bound(m: &Model) -> Bound {
    let seq = |v: &Var, lag: u32| -> String {
        if !v.timed {
            v.name.clone()
        } else if lag == 0 {
            format!("{}[1:T]", v.name)
        } else {
            format!("{}[1:T-{lag}]", v.name)
        }
    };
    let evidence: Vec<String> = m
        .vars
        .iter()
        .filter(|v| v.role == Role::Observed)
        .map(|v| seq(v, 0))
        .collect();
    let optimality = m
        .optimality
        .iter()
        .map(|o| {
            if o.timed {
                format!("{}[1:T]", o.name)
            } else {
                o.name.clone()
            }
        })
        .collect();
    let inputs: Vec<String> = m
        .vars
        .iter()
        .enumerate()
        .filter(|(_, v)| v.role == Role::Input)
        .map(|(i, v)| {
            // The smallest lag any factor reads the input at decides the last step that matters.
            let lag = m
                .factors
                .iter()
                .flat_map(|f| f.parents.iter())
                .filter(|r| r.var == i)
                .map(|r| match r.time {
                    TimeRef::Lag(k) => k,
                    _ => 0,
                })
                .min()
                .unwrap_or(0);
            seq(v, lag)
        })
        .collect();
    Bound {
        evidence,
        optimality,
        given: inputs,
    }
}
