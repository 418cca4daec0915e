//! The ELBO as an equation (any [`Style`]) and, for text, a table of terms and estimators.

use super::style::Style;
use crate::derive::{Bound, Elbo, Method, Range, Term, TermKind};
use crate::ir::Alpha;
use std::fmt::Write;

/// The reward symbol of an optimality variable: `r[t]` when there is one, `r_O[t]` otherwise.
pub fn reward_symbol(elbo: &Elbo, name: &str, range: Range) -> String {
    let single = elbo
        .terms
        .iter()
        .filter(|t| matches!(t.kind, TermKind::Reward { .. }))
        .count()
        == 1;
    let base = if single {
        "r".to_string()
    } else {
        format!("r_{name}")
    };
    match range {
        Range::Static => base,
        Range::At { t } => format!("{base}[{t}]"),
        Range::From { .. } => format!("{base}[t]"),
    }
}

/// One term without its sign, as it appears in the sum.
pub fn term_body(s: &dyn Style, elbo: &Elbo, t: &Term) -> String {
    let inner = match &t.kind {
        TermKind::LogLikelihood { p } => s.expect(&t.under, &s.log(&s.factor(p))),
        TermKind::Kl { q, p, .. } => s.expect(&t.under, &s.kl(&s.factor(q), &s.factor(p))),
        TermKind::LogRatio { q, p } => s.expect(
            &t.under,
            &format!(
                "{} {} {}",
                s.log(&s.factor(p)),
                s.minus(),
                s.log(&s.factor(q))
            ),
        ),
        TermKind::Entropy { q, .. } => s.expect(&t.under, &s.entropy(&s.factor(q))),
        TermKind::Reward { name, .. } => {
            let r = s.var(&reward_symbol(elbo, name, t.range));
            s.expect(&t.under, &s.frac(&r, s.alpha()))
        }
        TermKind::Marginal { .. } => return marginal_body(s, t),
    };
    s.sum(t.range, &inner)
}

/// A chain summed out: `log Σ_{k[1:T]} p(k[1]) Π_{t≥2} p(k[t] | k[t-1]) Π_t p(y[t] | k[t])`.
pub fn marginal_body(s: &dyn Style, t: &Term) -> String {
    let TermKind::Marginal {
        chain,
        init,
        trans,
        emissions,
        emission_from,
        q,
        ..
    } = &t.kind
    else {
        return String::new();
    };
    // Grouped by the step their product starts at: a base case at step 1 (no product), every
    // step, from step 2 (a switched latent's transition).
    let mut groups: Vec<(u32, String)> = Vec::new();
    for first in [0, 1, 2] {
        let em: Vec<String> = emissions
            .iter()
            .zip(emission_from)
            .filter(|(_, f)| **f == first)
            .map(|(e, _)| s.factor(e))
            .collect();
        match em.len() {
            0 => {}
            1 => groups.push((first, em[0].clone())),
            _ => groups.push((first, s.paren(&em.join(" ")))),
        }
    }
    if let [qi, qt] = q.as_slice() {
        // Enumerated over q's chain: 𝔼_q[log p(k, y) − log q(k)].
        let em: Vec<String> = groups
            .iter()
            .map(|(f, e)| match f {
                0 => e.clone(),
                f => s.sum(Range::From { t: *f }, &s.log(e)),
            })
            .collect();
        let body = format!(
            "{} + {} + {} {} {} {} {}",
            s.log(&s.factor(init)),
            s.sum(Range::From { t: 2 }, &s.log(&s.factor(trans))),
            em.join(" + "),
            s.minus(),
            s.log(&s.factor(qi)),
            s.minus(),
            s.sum(Range::From { t: 2 }, &s.log(&s.factor(qt)))
        );
        return s.expect(std::slice::from_ref(chain), &body);
    }
    let body = s.marginal(chain, &s.factor(init), &s.factor(trans), &groups);
    s.expect(&t.under, &body)
}

/// One term's contribution to the log importance weight of a joint sample (its integrand,
/// summed over its steps), as `(is_minus, body)`. This is what IWAE averages inside the log.
pub fn weight_term(s: &dyn Style, elbo: &Elbo, t: &Term) -> (bool, String) {
    let ratio = |q, p| {
        format!(
            "{} {} {}",
            s.log(&s.factor(p)),
            s.minus(),
            s.log(&s.factor(q))
        )
    };
    let sum_paren = |body: String| match t.range {
        Range::From { .. } => s.sum(t.range, &s.paren(&body)),
        _ => body,
    };
    match &t.kind {
        TermKind::LogLikelihood { p } => (false, s.sum(t.range, &s.log(&s.factor(p)))),
        TermKind::Kl { q, p, .. } | TermKind::LogRatio { q, p } => (false, sum_paren(ratio(q, p))),
        TermKind::Entropy { q, .. } => (true, s.sum(t.range, &s.log(&s.factor(q)))),
        TermKind::Reward { name, .. } => {
            let r = s.var(&reward_symbol(elbo, name, t.range));
            (false, s.sum(t.range, &s.frac(&r, s.alpha())))
        }
        TermKind::Marginal { .. } => (false, marginal_body(s, t)),
    }
}

/// `log p(evidence | given)`: what the ELBO bounds.
pub fn bound(s: &dyn Style, b: &Bound) -> String {
    let mut ev: Vec<String> = b.evidence.iter().map(|e| s.var(e)).collect();
    ev.extend(b.optimality.iter().map(|o| format!("{} = 1", s.var(o))));
    if b.given.is_empty() {
        s.log(&format!("p({})", ev.join(", ")))
    } else {
        let g: Vec<String> = b.given.iter().map(|x| s.var(x)).collect();
        s.log(&format!(
            "p({} {} {})",
            ev.join(", "),
            s.bar(),
            g.join(", ")
        ))
    }
}

/// Whether the bound holds with equality: a discrete chain is summed out and every other term
/// is an exact log-likelihood with no sampled parent (nothing is sampled, nothing is bounded).
pub fn is_exact(elbo: &Elbo) -> bool {
    elbo.iwae <= 1
        && elbo
            .terms
            .iter()
            .any(|t| matches!(t.kind, TermKind::Marginal { .. }))
        && elbo.terms.iter().all(|t| match t.kind {
            TermKind::Marginal { ref q, .. } => q.is_empty(),
            TermKind::LogLikelihood { .. } => t.under.is_empty(),
            _ => false,
        })
        && elbo.cancellations.is_empty()
}

/// The relation of the ELBO to the evidence: `=` where [`is_exact`], else `≤` (in `s`'s dialect).
pub fn relation<'a>(s: &'a dyn Style, elbo: &Elbo) -> &'a str {
    if is_exact(elbo) {
        "="
    } else {
        s.leq()
    }
}

/// Signed terms: `(is_minus, body)`.
pub fn signed_terms(s: &dyn Style, elbo: &Elbo) -> Vec<(bool, String)> {
    elbo.terms
        .iter()
        .map(|t| (t.kind.sign() < 0, term_body(s, elbo, t)))
        .collect()
}

/// The aligned Unicode equation.
pub fn equation_text(s: &dyn Style, elbo: &Elbo) -> String {
    let mut out = String::new();
    if elbo.iwae > 1 {
        // The importance-weighted bound is not a sum of expectations: write the log weight.
        let lhs = format!("ELBO (IWAE, K = {})", elbo.iwae);
        let _ = writeln!(out, "{lhs} = {}", s.iwae_objective());
        let _ = writeln!(out, "  ≤ {}", bound(s, &elbo.bound));
        let head = format!("  where {} ", s.weight());
        let pad = " ".repeat(head.chars().count());
        for (i, t) in elbo.terms.iter().enumerate() {
            let (neg, body) = weight_term(s, elbo, t);
            let sign = match (neg, i) {
                (true, _) => "− ",
                (false, 0) => "",
                (false, _) => "+ ",
            };
            if i == 0 {
                let _ = writeln!(out, "{head}= {sign}{body}");
            } else {
                let _ = writeln!(out, "{pad}{sign}{body}");
            }
        }
        let _ = writeln!(
            out,
            "  is the log importance weight of one joint sample of the latents from q,\n  and w_k is w at the k-th of K independent samples"
        );
        return out;
    }
    let lhs = if elbo.iwae > 1 {
        format!("ELBO (IWAE, K = {})", elbo.iwae)
    } else {
        "ELBO".to_string()
    };
    let pad = " ".repeat(lhs.chars().count() + 1);
    for (i, (neg, body)) in signed_terms(s, elbo).iter().enumerate() {
        let sign = if *neg {
            "− "
        } else if i == 0 {
            ""
        } else {
            "+ "
        };
        if i == 0 {
            let _ = writeln!(out, "{lhs} = {sign}{body}");
        } else {
            let _ = writeln!(out, "{pad}{sign}{body}");
        }
    }
    if elbo.terms.is_empty() {
        let _ = writeln!(out, "{lhs} = 0");
    }
    let _ = writeln!(out, "  {} {}", relation(s, elbo), bound(s, &elbo.bound));
    out
}

fn range_text(r: Range) -> String {
    match r {
        Range::Static => "static".into(),
        Range::At { t } => format!("t = {t}"),
        Range::From { t } => format!("t = {t}..T"),
    }
}

/// A short decimal: at most 6 significant digits, no float noise.
pub fn num(x: f64) -> String {
    let s = format!("{:.6}", x);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn modifiers_text(t: &Term) -> String {
    crate::objective::display(&t.modifiers)
}

/// `vic elbo` text: the equation, the terms table, the estimators, the cancellations.
pub fn text(elbo: &Elbo) -> String {
    let s = super::style::Unicode;
    let mut out = equation_text(&s, elbo);
    for t in &elbo.terms {
        if let TermKind::Reward {
            name,
            reward,
            alpha,
            ..
        } = &t.kind
        {
            let a = match alpha {
                Alpha::Fixed(a) => format!("α = {}", num(*a)),
                Alpha::Auto { target, init } => format!(
                    "α tuned to target entropy {} (from {})",
                    num(*target),
                    num(*init)
                ),
            };
            let _ = writeln!(
                out,
                "  where {} = {reward},  {a}",
                reward_symbol(elbo, name, t.range)
            );
        }
    }
    let _ = writeln!(out, "\nterms");
    let w_kind = elbo
        .terms
        .iter()
        .map(|t| t.kind.name().len())
        .max()
        .unwrap_or(0);
    let w_owner = elbo
        .terms
        .iter()
        .map(|t| t.owner.chars().count())
        .max()
        .unwrap_or(0);
    let w_range = elbo
        .terms
        .iter()
        .map(|t| range_text(t.range).len())
        .max()
        .unwrap_or(0);
    for (i, t) in elbo.terms.iter().enumerate() {
        let method = match t.method {
            Method::Analytic => "analytic",
            Method::MonteCarlo => "Monte Carlo",
        };
        let mods = modifiers_text(t);
        let _ = writeln!(
            out,
            "  {:>2}  {}  {}  {}  {:<11}  {}{}",
            i + 1,
            super::pad_right(t.kind.name(), w_kind),
            super::pad_right(&t.owner, w_owner),
            super::pad_right(&range_text(t.range), w_range),
            method,
            t.why,
            if mods.is_empty() {
                String::new()
            } else {
                format!("  [{mods}]")
            },
        );
    }
    if !elbo.estimators.is_empty() {
        let _ = writeln!(out, "\nlatents");
        let w = elbo
            .estimators
            .iter()
            .map(|e| e.var.chars().count())
            .max()
            .unwrap_or(0);
        for e in &elbo.estimators {
            let _ = writeln!(
                out,
                "  {}  {} from {}, {}: {}",
                super::pad_right(&e.var, w),
                e.family,
                e.sampled_from,
                e.estimator,
                e.why
            );
        }
    }
    if !elbo.cancellations.is_empty() {
        let _ = writeln!(out, "\ncancelled (sampled from p, log p − log q = 0)");
        let w_var = elbo
            .cancellations
            .iter()
            .map(|c| c.var.chars().count())
            .max()
            .unwrap_or(0);
        let w_range = elbo
            .cancellations
            .iter()
            .map(|c| range_text(c.range).len())
            .max()
            .unwrap_or(0);
        for c in &elbo.cancellations {
            let _ = writeln!(
                out,
                "  {}  {}  {}",
                super::pad_right(&c.var, w_var),
                super::pad_right(&range_text(c.range), w_range),
                s_factor(&c.p)
            );
        }
    }
    if elbo.overshooting > 1 {
        let d = elbo.overshooting;
        let _ = writeln!(out, "\nlatent overshooting up to distance {d} (PlaNet): the training objective also subtracts\n  (1/{d})·Σ_{{d=2..{d}}} Σ_t KL( sg(q(s[t] | …)) ‖ p_d(s[t]) ), p_d the d-step open-loop prior from q's sample at t−d");
    }
    out
}

fn s_factor(f: &crate::derive::FactorView) -> String {
    super::style::Unicode.factor(f)
}
