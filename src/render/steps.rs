//! The step-by-step derivation (`vic elbo --steps`), written once over a [`Style`].
//!
//! Each step is one move a reader of the seed texts would make by hand, with its reason:
//! introduce q; Jensen (the KL decomposition); factorise p; factorise q; substitute
//! deterministic states; group per variable; Markov simplification; closed forms;
//! cancellations; optimality; the final bound.

use super::elbo::{bound, reward_symbol, signed_terms, term_body, weight_term};
use super::style::Style;
use crate::derive::{Elbo, Range, TermKind};
use crate::ir::*;

/// One step of the derivation.
pub struct Step {
    /// Its title.
    pub title: String,
    /// Why it holds.
    pub why: String,
    /// Display lines, math in the style's dialect, aligned on the relation.
    pub math: Vec<Line>,
}

/// One display line: `lhs rel rhs`. `lhs` is empty on a continuation line; `rhs` starts with
/// the relation or operator (`= …`, `+ …`, `≤ …`) or is a free-standing formula or note.
pub struct Line {
    /// The left-hand side.
    pub lhs: String,
    /// The right-hand side.
    pub rhs: String,
}

fn line(lhs: impl Into<String>, rhs: impl Into<String>) -> Line {
    Line {
        lhs: lhs.into(),
        rhs: rhs.into(),
    }
}

fn cont(rhs: impl Into<String>) -> Line {
    line(String::new(), rhs)
}

/// `lhs = a + b − c …` as aligned lines: the first item on the first line, one item per line.
fn sum_lines(s: &dyn Style, lhs: String, items: Vec<(bool, String)>) -> Vec<Line> {
    if items.is_empty() {
        return vec![line(lhs, "= 0")];
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, (neg, b))| match (i, neg) {
            (0, false) => line(lhs.clone(), format!("= {b}")),
            (0, true) => line(lhs.clone(), format!("= {} {b}", s.minus())),
            (_, false) => cont(format!("+ {b}")),
            (_, true) => cont(format!("{} {b}", s.minus())),
        })
        .collect()
}

/// Lines as Unicode text: right-aligned left sides, so the relations line up.
pub fn text_lines(lines: &[Line]) -> Vec<String> {
    let w = lines
        .iter()
        .map(|l| l.lhs.chars().count())
        .max()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| {
            if w == 0 {
                l.rhs.clone()
            } else {
                format!("{} {}", super::pad_left(&l.lhs, w), l.rhs)
            }
        })
        .collect()
}

/// Lines for an `align*` environment (without the `\\\\` separators).
pub fn latex_lines(lines: &[Line]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            if l.lhs.is_empty() && (l.rhs.starts_with("+ ") || l.rhs.starts_with("- ")) {
                format!("&\\quad {}", l.rhs)
            } else if l.lhs.is_empty() {
                format!("&{}", l.rhs)
            } else {
                format!("{} &{}", l.lhs, l.rhs)
            }
        })
        .collect()
}

fn all_steps(v: &Var) -> String {
    if v.timed {
        format!("{}[1:T]", v.name)
    } else {
        v.name.clone()
    }
}

/// A factor as a density, as written (not specialised to a range).
fn density(s: &dyn Style, m: &Model, f: &Factor) -> String {
    let given: Vec<String> = f.parents.iter().map(|r| m.show_read(*r)).collect();
    s.density(f.block.letter(), &m.show_target(f), &given)
}

fn as_q(p_density: &str) -> String {
    p_density.replacen("p(", "q(", 1)
}

/// The numbered steps of the derivation.
pub fn steps(s: &dyn Style, m: &Model, elbo: &Elbo) -> Vec<Step> {
    let latents: Vec<&Var> = m.vars.iter().filter(|v| v.role == Role::Latent).collect();
    let zs: Vec<String> = latents.iter().map(|v| all_steps(v)).collect();
    let z = if zs.is_empty() {
        s.empty_set().to_string()
    } else {
        zs.iter().map(|x| s.var(x)).collect::<Vec<_>>().join(", ")
    };
    let ev = bound(s, &elbo.bound);
    let evidence: Vec<String> = {
        let mut all: Vec<String> = elbo.bound.evidence.iter().map(|e| s.var(e)).collect();
        all.extend(
            elbo.bound
                .optimality
                .iter()
                .map(|o| format!("{} = 1", s.var(o))),
        );
        all
    };
    let joint = {
        let mut all = evidence.clone();
        all.push(z.clone());
        all.join(", ")
    };
    let given: Vec<String> = elbo.bound.given.iter().map(|g| s.var(g)).collect();
    let cond = if given.is_empty() {
        String::new()
    } else {
        format!(" {} {}", s.bar(), given.join(", "))
    };
    let pj = format!("p({joint}{cond})");
    let qz = format!("q({z})");
    let sep = s.sep();
    let mut out = Vec::new();

    out.push(Step {
        title: "Introduce the variational posterior q".into(),
        why: "Marginalise the latents, then multiply and divide by q inside the integral; q is positive wherever p is (checked: no infinite KL, E072).".into(),
        math: vec![
            line(ev.clone(), format!("= {}", s.log(&s.integral(&pj, &z)))),
            cont(format!("= {}", s.log(&s.expect_sub(&qz, &s.frac(&pj, &qz))))),
        ],
    });

    let posterior = {
        let mut c = evidence.clone();
        c.extend(given.iter().cloned());
        format!("p({z} {} {})", s.bar(), c.join(", "))
    };
    let mut jensen = vec![
        line(
            ev.clone(),
            format!(
                "= {} + {} {} {}",
                s.elbo(),
                s.kl(&qz, &posterior),
                s.geq(),
                s.elbo()
            ),
        ),
        line(
            s.elbo(),
            format!(
                "= {}",
                s.expect_sub("q", &format!("{} {} {}", s.log(&pj), s.minus(), s.log(&qz)))
            ),
        ),
    ];
    if elbo.iwae > 1 {
        jensen.push(line(
            format!("{}_K", s.elbo()),
            format!(
                "= {}{sep}{}",
                s.iwae_objective(),
                s.text(&format!(
                    "(IWAE, K = {}: tighter, Burda et al. 2016)",
                    elbo.iwae
                ))
            ),
        ));
    }
    out.push(Step {
        title: "Jensen's inequality (the KL decomposition)".into(),
        why: "log is concave; the gap is the KL from q to the exact posterior, which is ≥ 0 and zero exactly when q is the posterior.".into(),
        math: jensen,
    });

    let mut pm: Vec<(bool, String)> = m
        .factors
        .iter()
        .filter(|f| f.block == Block::P && matches!(f.body, FactorBody::Sample(_)))
        .map(|f| {
            (
                false,
                s.sum(Range::from_case(f.case), &s.log(&density(s, m, f))),
            )
        })
        .collect();
    for o in &m.optimality {
        let r = if o.timed {
            Range::From { t: 1 }
        } else {
            Range::Static
        };
        let target = if o.timed {
            format!("{}[t]", o.name)
        } else {
            o.name.clone()
        };
        let target = format!("{} = 1", s.var(&target));
        let rs = s.var(&reward_symbol(elbo, &o.name, r));
        let d = format!("p({target} {} {rs})", s.bar());
        pm.push((false, s.sum(r, &s.log(&d))));
    }
    out.push(Step {
        title: "Factorise the joint by the p block".into(),
        why: "p is a directed model: the log joint is the sum of its factors' log densities, one sum over t per time case (base cases split the sum); deterministic states are functions, not factors.".into(),
        math: sum_lines(s, s.log(&pj), pm),
    });

    let mut qm: Vec<(bool, String)> = m
        .factors
        .iter()
        .filter(|f| f.block == Block::Q && matches!(f.body, FactorBody::Sample(_)))
        .map(|f| {
            (
                false,
                s.sum(Range::from_case(f.case), &s.log(&density(s, m, f))),
            )
        })
        .collect();
    for c in &elbo.cancellations {
        qm.push((false, s.sum(c.range, &s.log(&as_q(&s.factor(&c.p))))));
    }
    out.push(Step {
        title: "Factorise q by the q block".into(),
        why: "q is a product of conditionals in sampling order; a latent (or time case) with no q factor is drawn from its p factor, so q uses p's conditional there.".into(),
        math: sum_lines(s, s.log(&qz), qm),
    });

    let states: Vec<Line> = m
        .factors
        .iter()
        .filter_map(|f| match &f.body {
            FactorBody::Define(e) => Some(line(
                s.var(&m.show_target(f)),
                format!("= {}", s.code(&m.show_expr(e))),
            )),
            FactorBody::Sample(_) => None,
        })
        .collect();
    if !states.is_empty() {
        out.push(Step {
            title: "Substitute deterministic states".into(),
            why: "A state is a function of its parents (a Dirac factor): it is computed along the sampled trajectory, not integrated, and adds no term.".into(),
            math: states,
        });
    }

    let mut grouped = Vec::new();
    for v in m.vars.iter().filter(|v| v.role == Role::Observed) {
        let d = s.density("p", &all_steps(v), &[s.dots().to_string()]);
        grouped.push((false, s.expect_sub("q", &s.log(&d))));
    }
    for t in &elbo.terms {
        if let TermKind::Reward { name, .. } = &t.kind {
            let o = s.var(&if t.range == Range::Static {
                name.clone()
            } else {
                format!("{name}[1:T]")
            });
            grouped.push((
                false,
                s.expect_sub("q", &s.log(&format!("p({o} = 1 {} {})", s.bar(), s.dots()))),
            ));
        }
    }
    for v in &latents {
        let d = s.density("p", &all_steps(v), &[s.dots().to_string()]);
        grouped.push((
            false,
            s.expect_sub(
                "q",
                &format!("{} {} {}", s.log(&d), s.minus(), s.log(&as_q(&d))),
            ),
        ));
    }
    out.push(Step {
        title: "Group the terms per variable".into(),
        why: "Subtract log q from log p and collect each latent's prior and posterior factors into one log-ratio; observed factors stay log-likelihoods.".into(),
        math: sum_lines(s, s.elbo().to_string(), grouped),
    });

    let mk: Vec<Line> = elbo
        .terms
        .iter()
        .map(|t| {
            let note = if t.under.is_empty() {
                "(exact: no sampled parents)".to_string()
            } else {
                format!("(over q's samples of {})", t.under.join(", "))
            };
            cont(format!("{}{sep}{}", term_body(s, elbo, t), s.text(&note)))
        })
        .collect();
    out.push(Step {
        title: "Markov simplification".into(),
        why: "Each integrand depends only on its factors' parents; every other latent integrates out (its conditionals integrate to 1), so each term is an expectation over its q-sampled ancestors only. The time cases of p and q are intersected, so a base case of either splits the sum; at a base step, reads of init values (steps ≤ 0) are constants and drop out of the conditioning.".into(),
        math: mk,
    });

    let mut fw = Vec::new();
    for t in &elbo.terms {
        if let TermKind::Marginal {
            chain,
            states,
            init,
            trans,
            emissions,
            emission_from,
            q,
        } = &t.kind
        {
            if let [qi, qt] = q.as_slice() {
                // Enumerated over q's chain: q's forward marginals weigh each log-ratio.
                let (now, prev) = (
                    s.var(&format!("{chain}[t]")),
                    s.var(&format!("{chain}[t-1]")),
                );
                fw.push(line(
                    s.text(&format!("γ_1({chain}[1])")),
                    format!("= {}", s.factor(qi)),
                ));
                fw.push(line(
                    s.text(&format!("γ_t({chain}[t])")),
                    format!(
                        "= {}",
                        s.sum_over(
                            &prev,
                            &format!(
                                "{} {}",
                                s.text(&format!("γ_{{t-1}}({chain}[t-1])")),
                                s.factor(qt)
                            )
                        )
                    ),
                ));
                fw.push(line(
                    s.text("term"),
                    format!(
                        "= {}{sep}{}",
                        s.text(&format!(
                            "Σ_t Σ_{now} γ_t log p(emissions | {now}) + Σ γ_1 log p/q({chain}[1]) + Σ_{{t≥2}} Σ_{{{prev}, {now}}} γ_{{t-1}} q log p/q({now} | {prev})"
                        )),
                        s.text(&format!(
                            "(exact over q's chain: T K^2 = {} T operations per sequence)",
                            states * states
                        ))
                    ),
                ));
                continue;
            }
            // Step t ≥ 2 emits the general cases; step 1 every case but those from step 2.
            let ys: Vec<String> = emissions
                .iter()
                .zip(emission_from)
                .filter(|(_, f)| **f != 0)
                .map(|(e, _)| s.factor(e))
                .collect();
            let at1 = |e: &crate::derive::FactorView| {
                let mut e = e.clone();
                e.target = e.target.replace("[t]", "[1]");
                e.given = e.given.iter().map(|g| g.replace("[t]", "[1]")).collect();
                s.factor(&e)
            };
            let ys1: Vec<String> = emissions
                .iter()
                .zip(emission_from)
                .filter(|(_, f)| **f < 2)
                .map(|(e, _)| at1(e))
                .collect();
            let (now, prev) = (
                s.var(&format!("{chain}[t]")),
                s.var(&format!("{chain}[t-1]")),
            );
            fw.push(line(
                s.fwd_var("1", &s.var(&format!("{chain}[1]"))),
                format!("= {} {}", s.factor(init), ys1.join(" "))
                    .trim_end()
                    .to_string(),
            ));
            fw.push(line(
                s.fwd_var("t", &now),
                format!(
                    "= {} {}",
                    ys.join(" "),
                    s.sum_over(
                        &prev,
                        &format!("{} {}", s.fwd_var("t-1", &prev), s.factor(trans))
                    )
                ),
            ));
            let mut seqs: Vec<String> = emissions
                .iter()
                .map(|e| {
                    let name = e.target.split('[').next().unwrap_or(&e.target);
                    s.var(&format!("{name}[1:T]"))
                })
                .collect();
            seqs.dedup();
            let lhs = s.log(&format!("p({})", seqs.join(", ")));
            // A switching model: the sum is at q's draw of the switched latents.
            let lhs = if t.under.is_empty() {
                lhs
            } else {
                let given: Vec<String> = t
                    .under
                    .iter()
                    .map(|u| s.var(&format!("{u}[1:T]")))
                    .collect();
                format!("{lhs} {} {}", s.text("at q's draw of"), given.join(", "))
            };
            fw.push(line(
                lhs,
                format!(
                    "= {}{sep}{}",
                    s.log(&s.sum_over(
                        &s.var(&format!("{chain}[T]")),
                        &s.fwd_var("T", &s.var(&format!("{chain}[T]")))
                    )),
                    s.text(&format!(
                        "(in log space: T K^2 = {} T operations per sequence, exact)",
                        states * states
                    ))
                ),
            ));
        }
    }
    if !fw.is_empty() {
        out.push(Step {
            title: "Sum the discrete chain out (forward algorithm)".into(),
            why: "A one-hot chain annotated `via enumerate` with no q factor is not sampled: its sum over all K^T paths factorises along the chain, so the forward recursion computes it exactly in T·K² operations; the term is the exact log-likelihood of the data it emits, with no expectation and no KL. In a switching model the p factors of sampled latents that read the chain are emissions too, evaluated at q's reparameterised draw: the term is then 𝔼_q[log Σ_k p(k, y, x)], and what remains of each such latent's KL is H[q].".into(),
            math: fw,
        });
    }

    let mut cf = Vec::new();
    for t in &elbo.terms {
        match &t.kind {
            TermKind::Kl { q, p, form } => {
                let (qf, pf) = (s.factor(q), s.factor(p));
                cf.push(line(
                    s.kl(&qf, &pf),
                    format!(
                        "= {}",
                        s.expect_sub(&qf, &format!("{} {} {}", s.log(&qf), s.minus(), s.log(&pf)))
                    ),
                ));
                cf.push(cont(format!(
                    "= {}{sep}{}",
                    s.kl_formula(*form),
                    s.text(&format!("({})", t.why))
                )));
            }
            TermKind::Entropy { q, .. } => {
                let qf = s.factor(q);
                // A switched latent's entropy is what remains once its prior is summed inside
                // a chain's term; otherwise p is Flat.
                let switched = elbo.terms.iter().any(|c| {
                    matches!(c.kind, TermKind::Marginal { .. }) && c.under.contains(&t.owner)
                });
                if !switched {
                    cf.push(line(
                        s.kl(&qf, &s.text("Flat")),
                        format!("= {}{}", s.minus(), s.entropy(&qf)),
                    ));
                }
                if let crate::derive::Compute::Entropy(f) = t.compute {
                    // The closed form derive chose (the family table's entropy).
                    let (formula, note) = match f {
                        crate::family::EntropyForm::Normal => {
                            (s.normal_entropy().to_string(), "(Normal, D dimensions)")
                        }
                        _ => (s.text(f.formula()), "(closed form)"),
                    };
                    cf.push(line(
                        s.entropy(&qf),
                        format!("= {formula}{sep}{}", s.text(note)),
                    ));
                } else {
                    cf.push(line(
                        s.entropy(&qf),
                        format!(
                            "= {}{sep}{}",
                            s.expect_sub(&qf, &format!("{}{}", s.minus(), s.log(&qf))),
                            s.text("(Monte Carlo: −log q at q's sample)")
                        ),
                    ));
                }
            }
            TermKind::LogRatio { .. } => cf.push(cont(format!(
                "{}{sep}{}",
                term_body(s, elbo, t),
                s.text(&format!("(Monte Carlo: {})", t.why))
            ))),
            _ => {}
        }
    }
    if cf.is_empty() {
        cf.push(cont(s.text("no latent terms")));
    }
    out.push(Step {
        title: "Substitute closed-form KL divergences".into(),
        why: "Where q and p are a family pair with a known KL, the inner expectation over q(z | parents) is exact; the outer expectation over the parents stays Monte Carlo.".into(),
        math: cf,
    });

    let mut cm: Vec<Line> = elbo
        .cancellations
        .iter()
        .map(|c| {
            let pf = s.factor(&c.p);
            cont(format!(
                "{} = 0",
                s.sum(
                    c.range,
                    &s.expect_sub(
                        "q",
                        &format!("{} {} {}", s.log(&pf), s.minus(), s.log(&as_q(&pf))),
                    ),
                )
            ))
        })
        .collect();
    if cm.is_empty() {
        cm.push(cont(
            s.text("none: every latent has a q factor at every step"),
        ));
    }
    out.push(Step {
        title: "Cancel the factors q shares with p".into(),
        why: "A latent drawn from its own prior has log p − log q = 0 at every sample: those dynamics are tied to p (control as inference); only q's own choices are penalised.".into(),
        math: cm,
    });

    if !m.optimality.is_empty() {
        let mut om = Vec::new();
        for t in &elbo.terms {
            if let TermKind::Reward {
                name,
                reward,
                alpha,
                ..
            } = &t.kind
            {
                let r = s.var(&reward_symbol(elbo, name, t.range));
                let o = s.var(&if t.range == Range::Static {
                    name.clone()
                } else {
                    format!("{name}[t]")
                });
                let bar = s.bar();
                om.push(line(
                    s.log(&format!("p({o} = 1 {bar} {r})")),
                    format!("= {}", s.frac(&r, s.alpha())),
                ));
                om.push(line(r, format!("= {}", s.code(reward))));
                om.push(match alpha {
                    Alpha::Fixed(a) => line(s.alpha(), format!("= {}", super::elbo::num(*a))),
                    Alpha::Auto { target, init } => line(
                        s.alpha(),
                        s.text(&format!(
                            "tuned (SAC) so that the policy's entropy tracks {}, starting from {}",
                            super::elbo::num(*target),
                            super::elbo::num(*init)
                        )),
                    ),
                });
            }
        }
        out.push(Step {
            title: "Optimality likelihoods".into(),
            why: "The optimality variable's likelihood is exp(r/α) (Levine 2018), so its log-likelihood is the scaled reward.".into(),
            math: om,
        });
    }

    let fin = if elbo.iwae > 1 {
        let mut fin = vec![
            line(
                format!("{}_K", s.elbo()),
                format!("= {}", s.iwae_objective()),
            ),
            cont(format!("{} {}", s.leq(), bound(s, &elbo.bound))),
        ];
        let items = elbo.terms.iter().map(|t| weight_term(s, elbo, t)).collect();
        fin.extend(sum_lines(s, s.weight().to_string(), items));
        fin
    } else {
        let mut fin = sum_lines(s, s.elbo().to_string(), signed_terms(s, elbo));
        fin.push(cont(format!(
            "{} {}",
            super::elbo::relation(s, elbo),
            bound(s, &elbo.bound)
        )));
        fin
    };
    out.push(Step {
        title: "The evidence lower bound".into(),
        why: "Collecting the terms; training maximises it. Objective modifiers (KL weights, free nats, balancing) change the training objective, which is then no longer a bound.".into(),
        math: fin,
    });
    out
}

/// Wrap `text` at `width` columns, each line after the first indented by `indent`.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for word in text.split(' ') {
        let n = word.chars().count();
        if col > 0 && col + 1 + n > width {
            out.push('\n');
            out.push_str(indent);
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += n;
    }
    out
}

/// Numbered steps as Unicode text.
pub fn text(m: &Model, elbo: &Elbo) -> String {
    let s = super::style::Unicode;
    let all = steps(&s, m, elbo);
    let w = all.len().to_string().len() + 2;
    let pad = " ".repeat(w);
    let mut out = String::new();
    for (i, st) in all.iter().enumerate() {
        let num = format!("{}.", i + 1);
        out.push_str(&format!("{}{}\n", super::pad_right(&num, w), st.title));
        out.push_str(&format!("{pad}{}\n", wrap(&st.why, 88, &pad)));
        for l in text_lines(&st.math) {
            out.push_str(&format!("{pad}  {l}\n"));
        }
        out.push('\n');
    }
    out
}
