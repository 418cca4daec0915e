//! The step-by-step derivation (`vic elbo --steps`), written once over a [`Style`].
//!
//! Each step is one move a reader of the seed texts would make by hand, with its reason:
//! introduce q; Jensen (the KL decomposition); factorise p; factorise q; substitute
//! deterministic states; group per variable; Markov simplification; closed forms;
//! cancellations; optimality; the final bound.

use super::elbo::{bound, reward_symbol, signed_terms, term_body};
use super::style::Style;
use crate::derive::{Elbo, Range, TermKind};
use crate::ir::*;

pub struct Step {
    pub title: String,
    pub why: String,
    /// Display lines, math in the style's dialect.
    pub math: Vec<String>,
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

pub fn steps(s: &dyn Style, m: &Model, elbo: &Elbo) -> Vec<Step> {
    let latents: Vec<&Var> = m.vars.iter().filter(|v| v.role == Role::Latent).collect();
    let zs: Vec<String> = latents.iter().map(|v| all_steps(v)).collect();
    let z = if zs.is_empty() {
        s.empty_set().to_string()
    } else {
        zs.iter().map(|x| s.var(x)).collect::<Vec<_>>().join(", ")
    };
    let ev = bound(s, &elbo.bound);
    let joint = {
        let mut all: Vec<String> = elbo.bound.evidence.iter().map(|e| s.var(e)).collect();
        all.extend(
            elbo.bound
                .optimality
                .iter()
                .map(|o| format!("{} = 1", s.var(o))),
        );
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
    let mut out = Vec::new();

    out.push(Step {
        title: "Introduce the variational posterior q".into(),
        why: "Marginalise the latents, then multiply and divide by q inside the integral; q is positive wherever p is (checked: no infinite KL, E072).".into(),
        math: vec![
            format!("{ev} = {}", s.log(&s.integral(&pj, &z))),
            format!("= {}", s.log(&s.expect_sub(&qz, &s.frac(&pj, &qz)))),
        ],
    });

    let mut jensen = vec![
        format!(
            "{ev} = {} + {} {} {}",
            s.elbo(),
            s.kl(
                &qz,
                &format!("p({z} {} {})", s.bar(), {
                    let mut ev: Vec<String> =
                        elbo.bound.evidence.iter().map(|e| s.var(e)).collect();
                    ev.extend(
                        elbo.bound
                            .optimality
                            .iter()
                            .map(|o| format!("{} = 1", s.var(o))),
                    );
                    ev.extend(given.iter().cloned());
                    ev.join(", ")
                })
            ),
            s.geq(),
            s.elbo()
        ),
        format!(
            "{} = {}",
            s.elbo(),
            s.expect_sub("q", &format!("{} {} {}", s.log(&pj), s.minus(), s.log(&qz)))
        ),
    ];
    if elbo.iwae > 1 {
        jensen.push(s.text(&format!(
            "With K = {} importance samples the bound log (1/K) Σ_k p/q is tighter (Burda et al. 2016); its terms are per-sample log-ratios.",
            elbo.iwae
        )));
    }
    out.push(Step {
        title: "Jensen's inequality (the KL decomposition)".into(),
        why: "log is concave; the gap is the KL from q to the exact posterior, which is ≥ 0 and zero exactly when q is the posterior.".into(),
        math: jensen,
    });

    let mut pm = vec![format!("{} =", s.log(&pj))];
    for f in m.factors.iter().filter(|f| f.block == Block::P) {
        match &f.body {
            FactorBody::Sample(_) => pm.push(format!(
                "+ {}",
                s.sum(Range::from_case(f.case), &s.log(&density(s, m, f)))
            )),
            FactorBody::Define(e) => pm.push(format!(
                "{} = {}",
                s.var(&m.show_target(f)),
                s.code(&m.show_expr(e))
            )),
        }
    }
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
        pm.push(format!("+ {}", s.sum(r, &s.log(&d))));
    }
    out.push(Step {
        title: "Factorise the joint by the p block".into(),
        why: "p is a directed model: the log joint is the sum of its factors' log densities, one sum over t per time case (base cases split the sum); deterministic states are functions, not factors.".into(),
        math: pm,
    });

    let mut qm = vec![format!("{} =", s.log(&qz))];
    for f in m.factors.iter().filter(|f| f.block == Block::Q) {
        match &f.body {
            FactorBody::Sample(_) => qm.push(format!(
                "+ {}",
                s.sum(Range::from_case(f.case), &s.log(&density(s, m, f)))
            )),
            FactorBody::Define(e) => qm.push(format!(
                "{} = {}",
                s.var(&m.show_target(f)),
                s.code(&m.show_expr(e))
            )),
        }
    }
    for c in &elbo.cancellations {
        qm.push(format!(
            "+ {}",
            s.sum(c.range, &s.log(&as_q(&s.factor(&c.p))))
        ));
    }
    out.push(Step {
        title: "Factorise q by the q block".into(),
        why: "q is a product of conditionals in sampling order; a latent (or time case) with no q factor is drawn from its p factor, so q uses p's conditional there.".into(),
        math: qm,
    });

    let states: Vec<String> = m
        .factors
        .iter()
        .filter_map(|f| match &f.body {
            FactorBody::Define(e) => Some(format!(
                "{} = {}",
                s.var(&m.show_target(f)),
                s.code(&m.show_expr(e))
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

    let mut grouped = vec![format!("{} =", s.elbo())];
    for v in m.vars.iter().filter(|v| v.role == Role::Observed) {
        let d = s.density("p", &all_steps(v), &[s.dots().to_string()]);
        grouped.push(format!("+ {}", s.expect_sub("q", &s.log(&d))));
    }
    for v in &latents {
        let d = s.density("p", &all_steps(v), &[s.dots().to_string()]);
        grouped.push(format!(
            "+ {}",
            s.expect_sub(
                "q",
                &format!("{} {} {}", s.log(&d), s.minus(), s.log(&as_q(&d)))
            )
        ));
    }
    for t in &elbo.terms {
        if let TermKind::Reward { name, .. } = &t.kind {
            let o = s.var(&if t.range == Range::Static {
                name.clone()
            } else {
                format!("{name}[1:T]")
            });
            grouped.push(format!(
                "+ {}",
                s.expect_sub("q", &s.log(&format!("p({o} = 1 {} {})", s.bar(), s.dots())))
            ));
        }
    }
    out.push(Step {
        title: "Group the terms per variable".into(),
        why: "Subtract log q from log p and collect each latent's prior and posterior factors into one log-ratio; observed factors stay log-likelihoods.".into(),
        math: grouped,
    });

    let mk: Vec<String> = elbo
        .terms
        .iter()
        .map(|t| {
            let note = if t.under.is_empty() {
                "(exact: no sampled parents)".to_string()
            } else {
                format!("(over q's samples of {})", t.under.join(", "))
            };
            format!("{}{}{}", term_body(s, elbo, t), s.sep(), s.text(&note))
        })
        .collect();
    out.push(Step {
        title: "Markov simplification".into(),
        why: "Each integrand depends only on its factors' parents; every other latent integrates out (its conditionals integrate to 1), so each term is an expectation over its q-sampled ancestors only.".into(),
        math: mk,
    });

    let sep = s.sep();
    let mut cf = Vec::new();
    for t in &elbo.terms {
        match &t.kind {
            TermKind::Kl { q, p, form } => cf.push(format!(
                "{} = {}{sep}{}",
                s.expect_sub(
                    &s.factor(q),
                    &format!(
                        "{} {} {}",
                        s.log(&s.factor(q)),
                        s.minus(),
                        s.log(&s.factor(p))
                    )
                ),
                s.kl(&s.factor(q), &s.factor(p)),
                s.kl_formula(*form)
            )),
            TermKind::Entropy { q, closed_form } => cf.push(format!(
                "{} = {}{sep}{}",
                s.kl(&s.factor(q), &s.text("Flat")),
                format_args!("{}{}", s.minus(), s.entropy(&s.factor(q))),
                s.text(if *closed_form {
                    "Normal: sum_i log(sigma_i) + 1/2 log(2 pi e)"
                } else {
                    "estimated as -log q at the sample"
                })
            )),
            TermKind::LogRatio { .. } => cf.push(format!(
                "{}{sep}{}",
                term_body(s, elbo, t),
                s.text(&format!("Monte Carlo: {}", t.why))
            )),
            _ => {}
        }
    }
    if cf.is_empty() {
        cf.push(s.text("no latent terms"));
    }
    out.push(Step {
        title: "Substitute closed-form KL divergences".into(),
        why: "Where q and p are a family pair with a known KL, the inner expectation over q(z | parents) is exact; the outer expectation over the parents stays Monte Carlo.".into(),
        math: cf,
    });

    let mut cm: Vec<String> = elbo
        .cancellations
        .iter()
        .map(|c| {
            let pf = s.factor(&c.p);
            format!(
                "{} = 0",
                s.sum(
                    c.range,
                    &s.expect_sub(
                        "q",
                        &format!("{} {} {}", s.log(&pf), s.minus(), s.log(&as_q(&pf)))
                    )
                )
            )
        })
        .collect();
    if cm.is_empty() {
        cm.push(s.text("none: every latent has a q factor at every step"));
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
                om.push(format!(
                    "{} = {}{sep}{r} = {}",
                    s.log(&format!("p({o} = 1 {bar} {r})")),
                    s.frac(&r, s.alpha()),
                    s.code(reward)
                ));
                om.push(match alpha {
                    Alpha::Fixed(a) => format!("{} = {a}", s.alpha()),
                    Alpha::Auto { target, .. } => format!(
                        "{}{sep}{}",
                        s.alpha(),
                        s.text(&format!(
                            "tuned so that the policy entropy tracks {target} (SAC)"
                        ))
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

    let mut fin = vec![format!("{} =", s.elbo())];
    for (neg, b) in signed_terms(s, elbo) {
        fin.push(format!("{} {b}", if neg { s.minus() } else { "+" }));
    }
    fin.push(format!("{} {}", s.leq(), bound(s, &elbo.bound)));
    out.push(Step {
        title: "The evidence lower bound".into(),
        why: "Collecting the terms; training maximises it. Objective modifiers (KL weights, free nats, balancing) change the training objective, which is then no longer a bound.".into(),
        math: fin,
    });
    out
}

/// Numbered steps as Unicode text.
pub fn text(m: &Model, elbo: &Elbo) -> String {
    let s = super::style::Unicode;
    let mut out = String::new();
    for (i, st) in steps(&s, m, elbo).iter().enumerate() {
        out.push_str(&format!("{}. {}\n   {}\n", i + 1, st.title, st.why));
        for l in &st.math {
            out.push_str(&format!("     {l}\n"));
        }
        out.push('\n');
    }
    out
}
