//! A standalone, compilable LaTeX document: the ELBO in `align*`, and optionally the steps.

use super::elbo::{bound, signed_terms, weight_term};
use super::steps::{latex_lines, steps};
use super::style::{tex_escape, Latex, Style};
use crate::derive::Elbo;
use crate::ir::Model;
use std::fmt::Write;

pub fn document(m: &Model, elbo: &Elbo, with_steps: bool) -> String {
    let s = Latex;
    let mut out = String::new();
    let _ = writeln!(out, "\\documentclass{{article}}");
    let _ = writeln!(out, "\\usepackage{{amsmath,amssymb}}");
    let _ = writeln!(out, "\\usepackage[margin=2cm,landscape]{{geometry}}");
    let _ = writeln!(out, "\\allowdisplaybreaks");
    let _ = writeln!(out, "\\begin{{document}}");
    let _ = writeln!(
        out,
        "\\section*{{The ELBO of \\texttt{{{}}}}}",
        tex_escape(&m.name)
    );
    out.push_str(&equation(&s, elbo));
    if with_steps {
        let _ = writeln!(out, "\\section*{{Derivation}}");
        let _ = writeln!(out, "\\begin{{enumerate}}");
        for st in steps(&s, m, elbo) {
            let _ = writeln!(
                out,
                "\\item \\textbf{{{}}}. {}",
                tex_escape(&st.title),
                tex_escape(&st.why)
            );
            let _ = writeln!(out, "\\begin{{align*}}");
            let lines = latex_lines(&st.math);
            let n = lines.len();
            for (i, l) in lines.iter().enumerate() {
                let _ = writeln!(out, "{l}{}", if i + 1 < n { " \\\\" } else { "" });
            }
            let _ = writeln!(out, "\\end{{align*}}");
        }
        let _ = writeln!(out, "\\end{{enumerate}}");
    }
    let _ = writeln!(out, "\\end{{document}}");
    out
}

/// The ELBO as an `align*` block.
pub fn equation(s: &dyn Style, elbo: &Elbo) -> String {
    let mut out = String::from("\\begin{align*}\n");
    if elbo.iwae > 1 {
        // The importance-weighted bound: the log of an average of K importance weights.
        let _ = writeln!(
            out,
            "{}_{{\\mathrm{{IWAE}}, K = {}}} &= {} \\\\",
            s.elbo(),
            elbo.iwae,
            s.iwae_objective()
        );
        let _ = writeln!(out, "&{} {} \\\\", s.leq(), bound(s, &elbo.bound));
        let n = elbo.terms.len();
        for (i, t) in elbo.terms.iter().enumerate() {
            let (neg, body) = weight_term(s, elbo, t);
            let sign = match (neg, i) {
                (true, _) => "- ",
                (false, 0) => "",
                (false, _) => "+ ",
            };
            let end = if i + 1 < n { " \\\\" } else { "" };
            if i == 0 {
                let _ = writeln!(out, "{} &= {sign}{body}{end}", s.weight());
            } else {
                let _ = writeln!(out, "&\\quad {sign}{body}{end}");
            }
        }
        out.push_str("\\end{align*}\n");
        let _ = writeln!(
            out,
            "\\noindent Here $w$ is the log importance weight of one joint sample of the latents from $q$, and $w_k$ is $w$ at the $k$-th of $K$ independent samples."
        );
        return out;
    }
    let terms = signed_terms(s, elbo);
    for (i, (neg, body)) in terms.iter().enumerate() {
        let sign = if *neg {
            "- "
        } else if i == 0 {
            ""
        } else {
            "+ "
        };
        if i == 0 {
            let _ = writeln!(out, "{} &= {sign}{body} \\\\", s.elbo());
        } else {
            let _ = writeln!(out, "&\\quad {sign}{body} \\\\");
        }
    }
    if terms.is_empty() {
        let _ = writeln!(out, "{} &= 0 \\\\", s.elbo());
    }
    let _ = writeln!(out, "&{} {}", s.leq(), bound(s, &elbo.bound));
    out.push_str("\\end{align*}\n");
    out
}
