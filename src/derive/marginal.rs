//! Discrete chains summed out of `p` exactly (the forward algorithm).
//!
//! A time-indexed one-hot latent `k[t] : onehot[K] via enumerate` with no factor in `q` is not
//! sampled: its chain is marginalised by the log-space forward algorithm, T·K² per sequence,
//! and the term it gives is `log Σ_{k[1:T]} p(k[1]) Π_{t≥2} p(k[t] | k[t-1]) Π_t p(y[t] | k[t])`
//! for the observed factors that read it (its *emissions*). [`chain`] decides whether a latent
//! is such a chain, and if it is not, says why; the checker reports the reasons (`E079`) and
//! derive makes the term ([`crate::derive::TermKind::Marginal`], `Compute::Forward`).
//!
//! The shape the runtimes implement: `p { k[1] ~ Categorical(l₁); k[t] ~ Categorical(f(k[t-1])) }`
//! where `l₁` reads no variable and `f` reads only `k[t-1]` (and params/consts), and every
//! other factor that reads `k` (an *emission*) is a p factor that reads `k[t]` at its own step:
//! an observed variable's likelihood, or the prior of a reparameterised continuous latent with
//! a q factor (a *switching* model, `x[t] ~ Normal(A @ x[t-1] + B @ k[t], s)`), over every
//! step, from step 2 or at step 1. Its other reads are anything sampled or data. With switched
//! latents the term is `𝔼_q(x)[log Σ_k p(k, y, x)]` at q's reparameterised draw of x, and
//! derive gives each switched prior's q factor an entropy term (`−𝔼_q log q`) in place of its
//! KL. A chain whose `q` is itself a first-order chain of Categoricals reading data
//! (`q { k[1] ~ Categorical(g(y)); k[t] ~ Categorical(f(k[t-1], y)) }`, [`QChain`]) is
//! enumerated exactly instead: `𝔼_q[log p(k, y) − log q(k)]` summed over q's chain with q's
//! forward marginals, T·K² per sequence.

use crate::ir::*;

/// A discrete chain summed out of `p` by the forward algorithm.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    /// The latent.
    pub var: VarId,
    /// Its number of states `K`.
    pub classes: usize,
    /// `p(k[1])`: a Categorical whose logits read no variable.
    pub init: FactorId,
    /// `p(k[t] | k[t-1])` for t ≥ 2: a Categorical whose logits read only `k[t-1]`.
    pub trans: FactorId,
    /// The p factors reading `k[t]`, in factor order: observed variables' likelihoods and the
    /// priors of switched latents (over every step, from step 2, or at step 1; see [`range`]).
    pub emissions: Vec<FactorId>,
    /// The continuous latents whose p factors are among the emissions (a switching model):
    /// they are drawn from q, and the chain is summed out at q's draw.
    pub switched: Vec<VarId>,
    /// q's Markov chain over `k`, when it has one: the bound is then `𝔼_q[log p − log q]`
    /// summed exactly over q's chain with q's forward marginals (T·K²), not `log p(y)`.
    pub q: Option<QChain>,
}

/// A Markov chain in q over a chain's latent: `q(k[1] | data)` and `q(k[t] | k[t-1], data)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QChain {
    /// `q(k[1])`: a Categorical whose logits read data only.
    pub init: FactorId,
    /// `q(k[t] | k[t-1])` for t ≥ 2: a Categorical whose logits read `k[t-1]` and data only.
    pub trans: FactorId,
}

/// q's chain over `v` if it has q factors (`None` without), pushing every reason it is not a
/// first-order chain of Categoricals reading data into `why`.
fn q_chain(m: &Model, v: VarId, why: &mut Vec<Blocker>) -> Option<QChain> {
    let name = &m.vars[v].name;
    let (mut any, mut misshapen) = (false, false);
    let (mut init, mut trans) = (None, None);
    for (fi, f) in m.factors_of(v, Block::Q) {
        any = true;
        let data = |r: &Read| matches!(m.vars[r.var].role, Role::Observed | Role::Input);
        match f.case {
            TimeCase::At(1) if categorical_logits(f) => {
                if let Some(r) = f.parents.iter().find(|r| !data(r)) {
                    why.push((
                        format!("q({name}[1]) reads `{}`: q's chain may read data only (and params and consts)", m.show_read(*r)),
                        Some(fi),
                    ));
                }
                init = Some(fi);
            }
            TimeCase::From(2) if categorical_logits(f) => {
                let ok =
                    |r: &Read| (r.var == v && r.time == TimeRef::Lag(1)) || (r.var != v && data(r));
                if let Some(r) = f.parents.iter().find(|r| !ok(r)) {
                    why.push((
                        format!("q({name}[t] | …) reads `{}`: q's chain may read {name}[t-1] and data only", m.show_read(*r)),
                        Some(fi),
                    ));
                }
                trans = Some(fi);
            }
            _ => {
                misshapen = true;
                why.push((
                    format!("q of `{name}` must be `{name}[1] ~ Categorical(…)` and `{name}[t] ~ Categorical(… {name}[t-1] …)` (a first-order chain given by logits) to be enumerated exactly"),
                    Some(fi),
                ));
            }
        }
    }
    if !any {
        return None;
    }
    match (init, trans) {
        (Some(init), Some(trans)) => Some(QChain { init, trans }),
        _ if misshapen => None,
        _ => {
            why.push((
                format!("q of `{name}` needs both `{name}[1] ~ Categorical(…)` and `{name}[t] ~ Categorical(… {name}[t-1] …)`"),
                None,
            ));
            None
        }
    }
}

/// The steps an emission factor covers (its time case).
pub fn range(m: &Model, fi: FactorId) -> crate::derive::Range {
    crate::derive::Range::from_case(m.factors[fi].case)
}

/// Why a latent annotated `via enumerate` cannot be summed out: a message and the factor it
/// is about (for its span), if one.
pub type Blocker = (String, Option<FactorId>);

fn categorical_logits(f: &Factor) -> bool {
    matches!(&f.body, FactorBody::Sample(d)
        if d.family == Family::Categorical && matches!(d.args, DistArgs::Logits(_)))
}

/// `Ok(None)` when `v` is not a time-indexed latent annotated `via enumerate`; `Ok(Some)` when
/// it is a chain the forward algorithm sums out; `Err` with every reason otherwise.
pub fn chain(m: &Model, v: VarId) -> Result<Option<Chain>, Vec<Blocker>> {
    let var = &m.vars[v];
    if var.role != Role::Latent || !var.timed || var.estimator != Some(Estimator::Enumerate) {
        return Ok(None);
    }
    let mut why: Vec<Blocker> = Vec::new();
    let classes = match var.ty {
        VarType::OneHot { groups: 1, classes } => classes,
        _ => {
            why.push((
                format!(
                    "`{}` is {}; a chain summed out is a single one-hot `onehot[K]`",
                    var.name,
                    var.ty.keyword()
                ),
                None,
            ));
            0
        }
    };
    let q = q_chain(m, v, &mut why);
    let mut init = None;
    let mut trans = None;
    for (fi, f) in m.factors_of(v, Block::P) {
        match f.case {
            TimeCase::At(1) => {
                if !categorical_logits(f) {
                    why.push(("p(k[1]) must be a Categorical given by logits".into(), Some(fi)));
                } else if let Some(r) = f.parents.first() {
                    why.push((
                        format!(
                            "p({}[1]) reads `{}`: the initial logits may read params and consts only",
                            var.name, m.vars[r.var].name
                        ),
                        Some(fi),
                    ));
                }
                init = Some(fi);
            }
            TimeCase::From(2) => {
                if !categorical_logits(f) {
                    why.push((
                        "p(k[t] | k[t-1]) must be a Categorical given by logits".into(),
                        Some(fi),
                    ));
                }
                for r in &f.parents {
                    if r.var != v || r.time != TimeRef::Lag(1) {
                        why.push((
                            format!(
                                "the transition of `{}` reads `{}`: it may read only {}[t-1] (and params and consts)",
                                var.name,
                                m.show_read(*r),
                                var.name
                            ),
                            Some(fi),
                        ));
                    }
                }
                trans = Some(fi);
            }
            _ => why.push((
                format!(
                    "p of `{}` must be one base case {}[1] and one general case {}[t] (a first-order chain)",
                    var.name, var.name, var.name
                ),
                Some(fi),
            )),
        }
    }
    if init.is_none() || trans.is_none() {
        why.push((
            format!(
                "`{}` needs `{}[1] ~ Categorical(…)` and `{}[t] ~ Categorical(… {}[t-1] …)` in p",
                var.name, var.name, var.name, var.name
            ),
            None,
        ));
    }
    let mut emissions = Vec::new();
    let mut switched: Vec<VarId> = Vec::new();
    for (fi, f) in m.factors.iter().enumerate() {
        if f.var == v || !f.parents.iter().any(|r| r.var == v) {
            continue;
        }
        let reader = &m.vars[f.var];
        let case_ok = matches!(
            f.case,
            TimeCase::From(1) | TimeCase::From(2) | TimeCase::At(1)
        );
        let sample = matches!(f.body, FactorBody::Sample(_));
        let observed = reader.role == Role::Observed;
        // A switching model: a sampled continuous latent whose prior reads the chain.
        let latent = reader.role == Role::Latent
            && !reader.ty.is_discrete()
            && matches!(reader.estimator, None | Some(Estimator::Reparam))
            && m.factors_of(f.var, Block::Q).next().is_some();
        if f.block != Block::P || !reader.timed || !case_ok || !sample || !(observed || latent) {
            why.push((
                format!(
                    "`{}` reads `{}`: a chain summed out may be read only by the p factors of observed variables and of reparameterised continuous latents with a q factor (their likelihood or prior over every step, or from step 2, or at step 1)",
                    reader.name, var.name
                ),
                Some(fi),
            ));
            continue;
        }
        for r in &f.parents {
            let own_step = r.time == TimeRef::Lag(0)
                || (f.case == TimeCase::At(1) && r.time == TimeRef::Step(1));
            if r.var == v && !own_step {
                why.push((
                    format!(
                        "the factor of `{}` reads `{}`: a factor summed inside the chain may read {}[t] only (at its own step)",
                        reader.name,
                        m.show_read(*r),
                        var.name
                    ),
                    Some(fi),
                ));
            }
        }
        // A switched latent is drawn from q at every step its prior reads the chain.
        let covers = |q: TimeCase| match (f.case, q) {
            (TimeCase::From(a), TimeCase::From(b)) => b <= a,
            (TimeCase::At(1), TimeCase::From(1) | TimeCase::At(1)) => true,
            _ => false,
        };
        if latent && !m.factors_of(f.var, Block::Q).any(|(_, q)| covers(q.case)) {
            why.push((
                format!(
                    "q of `{}` does not cover every step of this factor: a latent whose prior reads `{}` is drawn from q at each of those steps",
                    reader.name, var.name
                ),
                Some(fi),
            ));
        }
        if latent && !switched.contains(&f.var) {
            switched.push(f.var);
        }
        emissions.push(fi);
    }
    // q may not read the chain (it has no q factor to draw from).
    for (fi, f) in m.factors.iter().enumerate() {
        if f.block == Block::Q && f.var != v && f.parents.iter().any(|r| r.var == v) {
            why.push((
                format!(
                    "q of `{}` reads `{}`: a chain summed out of p has no draw for q to read",
                    m.vars[f.var].name, var.name
                ),
                Some(fi),
            ));
        }
    }
    for (w, x) in m.vars.iter().enumerate() {
        if w != v
            && x.role == Role::Latent
            && !x.timed
            && x.ty.is_discrete()
            && x.estimator == Some(Estimator::Enumerate)
        {
            why.push((
                format!(
                    "`{}` is enumerated too: a chain is summed out only beside sampled latents",
                    x.name
                ),
                None,
            ));
        }
    }
    if q.is_some() && !switched.is_empty() {
        why.push((
            format!(
                "`{}` has a q chain and conditions a sampled latent: a switching model sums out a chain with no q factor",
                var.name
            ),
            None,
        ));
    }
    let o = &m.objective;
    if o.iwae > 1 || o.overshooting > 1 {
        why.push((
            "IWAE and latent overshooting are not combined with a chain summed out".into(),
            None,
        ));
    }
    if !m.optimality.is_empty() {
        why.push((
            "optimality variables are not combined with a chain summed out".into(),
            None,
        ));
    }
    match (why.is_empty(), init, trans) {
        (true, Some(init), Some(trans)) => Ok(Some(Chain {
            var: v,
            classes,
            init,
            trans,
            emissions,
            switched,
            q,
        })),
        _ => Err(why),
    }
}

/// Every chain of the model that is summed out (the latents whose [`chain`] is `Ok(Some)`).
pub fn chains(m: &Model) -> Vec<Chain> {
    (0..m.vars.len())
        .filter_map(|v| chain(m, v).ok().flatten())
        .collect()
}

/// Whether the bound is the exact evidence: every latent is a chain summed out here (with no
/// q chain) and
/// nothing else is integrated (no optimality variables), so the ELBO is `log p(y)` itself
/// (`vic eval` reports it as `log_evidence`, method `"forward"`).
pub fn exact(m: &Model) -> bool {
    let all = chains(m);
    let summed: Vec<VarId> = all.iter().map(|c| c.var).collect();
    !summed.is_empty()
        && all.iter().all(|c| c.q.is_none())
        && m.optimality.is_empty()
        && m.vars
            .iter()
            .enumerate()
            .all(|(v, x)| x.role != Role::Latent || summed.contains(&v))
}
