//! The execution plan: which variables run on the sequential chain (sampled latents and
//! deterministic states, in topological order within a step) and which factor produces each
//! at each step. Everything else (likelihoods, priors given sampled parents, KLs, rewards)
//! runs once over all time steps, batched.

use crate::ir::*;

/// How a chain variable is produced at some step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Producer {
    /// The factor (a sampling statement or a definition) that draws or computes the variable.
    pub factor: FactorId,
    /// The block the factor is in: `Q` for a posterior draw or a q-side definition, `P` for a
    /// prior draw (a case q leaves out) or a p-side definition.
    pub block: Block,
}

/// A variable on the sequential chain (a sampled latent or a deterministic state) and the
/// factors that produce it, by time case.
#[derive(Clone, Debug)]
pub struct ChainVar {
    /// The chain variable.
    pub var: VarId,
    /// Producers by case; the one covering step `t` is found by [`ChainVar::at`].
    pub producers: Vec<(TimeCase, Producer)>,
}

impl ChainVar {
    /// The producer at step `t` (a base case beats the general case).
    pub fn at(&self, t: u32) -> Option<Producer> {
        let exact = self
            .producers
            .iter()
            .find(|(c, _)| *c == TimeCase::At(t) || *c == TimeCase::Static);
        exact
            .or_else(|| self.producers.iter().find(|(c, _)| c.covers(t)))
            .map(|(_, p)| *p)
    }
}

/// Chain variables in sampling order, split into static and time-indexed ones: `nodes`
/// ordered so that every same-step parent (read at lag 0, or at the same base step) comes
/// first. The checker proved these graphs acyclic.
fn ordered(
    m: &Model,
    nodes: &[VarId],
    producers: impl Fn(VarId) -> Vec<(TimeCase, Producer)>,
) -> (Vec<ChainVar>, Vec<ChainVar>) {
    let deps = |v: VarId| -> Vec<VarId> {
        let mut d = Vec::new();
        for (_, prod) in producers(v) {
            let f = &m.factors[prod.factor];
            for r in &f.parents {
                let same = match (r.time, f.case) {
                    (TimeRef::Lag(0) | TimeRef::Static, _) => true,
                    (TimeRef::Step(s), TimeCase::At(k)) => s == i64::from(k),
                    _ => false,
                };
                if same && r.var != v && nodes.contains(&r.var) && !d.contains(&r.var) {
                    d.push(r.var);
                }
            }
        }
        d
    };
    let mut order = Vec::new();
    let mut done = vec![false; m.vars.len()];
    let mut progress = true;
    while progress {
        progress = false;
        for &v in nodes {
            if !done[v] && deps(v).iter().all(|d| done[*d]) {
                done[v] = true;
                order.push(v);
                progress = true;
            }
        }
    }
    let mk = |v: VarId| ChainVar {
        var: v,
        producers: producers(v),
    };
    (
        order
            .iter()
            .filter(|&&v| !m.vars[v].timed)
            .map(|&v| mk(v))
            .collect(),
        order
            .iter()
            .filter(|&&v| m.vars[v].timed)
            .map(|&v| mk(v))
            .collect(),
    )
}

/// The order in which `vic sample` draws from p: every latent, state and observed variable
/// from its p factor (q-only states are skipped).
pub fn prior_order(m: &Model) -> (Vec<ChainVar>, Vec<ChainVar>) {
    let nodes: Vec<VarId> = (0..m.vars.len())
        .filter(|&v| {
            matches!(m.vars[v].role, Role::Latent | Role::State | Role::Observed)
                && m.factors_of(v, Block::P).next().is_some()
        })
        .collect();
    ordered(m, &nodes, |v| {
        m.factors_of(v, Block::P)
            .map(|(fi, f)| {
                (
                    f.case,
                    Producer {
                        factor: fi,
                        block: Block::P,
                    },
                )
            })
            .collect()
    })
}

/// The sequential part of a program: the chain variables, static then timed, each in
/// topological order, and how far back reads go.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Static chain variables, in sampling order.
    pub statics: Vec<ChainVar>,
    /// Time-indexed chain variables, in sampling order within one step.
    pub timed: Vec<ChainVar>,
    /// The largest lag any read uses (init values cover steps `1 − max_lag ..= 0`).
    pub max_lag: u32,
}

/// Producers of a chain variable: for a latent, its q factors where they exist and its p
/// factors for the cases q leaves out (tied); for a state, its definitions.
fn producers(m: &Model, v: VarId) -> Vec<(TimeCase, Producer)> {
    let mut out: Vec<(TimeCase, Producer)> = Vec::new();
    let q: Vec<(TimeCase, Producer)> = m
        .factors_of(v, Block::Q)
        .map(|(fi, f)| {
            (
                f.case,
                Producer {
                    factor: fi,
                    block: Block::Q,
                },
            )
        })
        .collect();
    let p: Vec<(TimeCase, Producer)> = m
        .factors_of(v, Block::P)
        .map(|(fi, f)| {
            (
                f.case,
                Producer {
                    factor: fi,
                    block: Block::P,
                },
            )
        })
        .collect();
    out.extend(q.iter().copied());
    for (case, prod) in p {
        // A p case is used where no q case covers it: base steps exactly, the general case
        // only when q has no general case (then it applies after q's last base case).
        let covered = match case {
            TimeCase::Static => !q.is_empty(),
            TimeCase::At(k) => q.iter().any(|(c, _)| c.covers(k)),
            TimeCase::From(_) => q.iter().any(|(c, _)| matches!(c, TimeCase::From(_))),
        };
        if !covered {
            let case = match case {
                TimeCase::From(k) => {
                    let after = q
                        .iter()
                        .filter_map(|(c, _)| {
                            if let TimeCase::At(j) = c {
                                Some(*j + 1)
                            } else {
                                None
                            }
                        })
                        .max()
                        .unwrap_or(k);
                    TimeCase::From(after.max(k))
                }
                c => c,
            };
            out.push((case, prod));
        }
    }
    out
}

impl Plan {
    /// The plan of a checked model (whose dependency graph within a step is acyclic; the checker
    /// proved it).
    pub fn new(m: &Model) -> Plan {
        // A discrete chain summed out by the forward algorithm is never sampled.
        let summed: Vec<VarId> = crate::derive::marginal::chains(m)
            .iter()
            .map(|c| c.var)
            .collect();
        let chain: Vec<VarId> = (0..m.vars.len())
            .filter(|&v| matches!(m.vars[v].role, Role::Latent | Role::State))
            .filter(|v| !summed.contains(v))
            .collect();
        let (statics, timed) = ordered(m, &chain, |v| producers(m, v));
        Plan {
            statics,
            timed,
            max_lag: m.max_lag(),
        }
    }
}

/// p's time-indexed chain in sampling order with only its general cases, relabelled to
/// cover every window step (window step 1 is always copied from the posterior): the open
/// loop of latent overshooting and one-step predictions, on both runtimes; observed
/// variables too when `observed`.
pub fn open_loop_order(m: &Model, observed: bool) -> Vec<ChainVar> {
    let (_, timed) = prior_order(m);
    timed
        .into_iter()
        .filter(|cv| observed || m.vars[cv.var].role != Role::Observed)
        .map(|cv| ChainVar {
            var: cv.var,
            producers: cv
                .producers
                .iter()
                .filter(|(c, _)| matches!(c, TimeCase::From(_)))
                .map(|(_, p)| (TimeCase::From(1), *p))
                .collect(),
        })
        .collect()
}
