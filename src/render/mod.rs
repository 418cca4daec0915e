//! Stage 4, render: ELBO IR → text, LaTeX, JSON; model IR → Graphviz DOT.
//!
//! Input: a [`crate::derive::Elbo`] and its [`crate::ir::Model`]. Output: strings.
//! Invariants: the text and LaTeX forms come from the same functions over a [`style::Style`],
//! so they show the same terms in the same order; JSON carries a `version` field.
//! Pure: no IO.

pub mod dot;
pub mod elbo;
pub mod imagine;
pub mod json;
pub mod label;
pub mod latex;
pub mod steps;
pub mod style;

use crate::derive::Elbo;
use crate::ir::Model;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// An output format of `vic elbo`.
pub enum Format {
    /// Aligned Unicode text with a table of terms.
    Text,
    /// A standalone LaTeX document.
    Latex,
    /// JSON (`docs/elbo-json.md`).
    Json,
}

/// Render an ELBO (and optionally its derivation) in a format.
pub fn render(m: &Model, elbo: &Elbo, format: Format, with_steps: bool) -> String {
    match format {
        Format::Text => {
            let mut s = String::new();
            if with_steps {
                s.push_str(&steps::text(m, elbo));
            }
            s.push_str(&elbo::text(elbo));
            s.push_str(&evidence_line(m));
            if let Some(im) = &elbo.imagination {
                if with_steps {
                    s.push_str(&imagine::steps_text(m, im, 1));
                }
                s.push_str(&imagine::text(m, im));
            }
            s
        }
        Format::Latex => latex::document(m, elbo, with_steps),
        Format::Json => json::document(m, elbo, with_steps),
    }
}

/// One line on whether `vic eval` can compute the evidence exactly ([`crate::evidence`]).
fn evidence_line(m: &Model) -> String {
    if crate::derive::marginal::exact(m) {
        return "\nevidence  exact: every latent is a chain summed out by the forward algorithm, so the bound is log p itself (`vic eval`: method \"forward\")\n".into();
    }
    match crate::evidence::structure(m) {
        Ok(method) => format!(
            "\nevidence  exact: p is linear-Gaussian, `vic eval` computes log p by the {}\n",
            match method {
                crate::evidence::Method::Kalman => "Kalman filter",
                crate::evidence::Method::Gaussian => "Gaussian marginal",
            }
        ),
        // IWAE is not combined with a chain summed out or enumerated over q's chain.
        Err(why) if !crate::derive::marginal::chains(m).is_empty() => format!(
            "\nevidence  not exact: {why}; `vic eval` reports the bound (IWAE is not combined with a discrete chain)\n"
        ),
        Err(why) => format!("\nevidence  not exact: {why}; `vic eval --iwae K` estimates it\n"),
    }
}

/// `s` padded with spaces on the right to `w` characters. Not `format!("{:<w$}")`: the
/// standard formatter panics on a width above 65,535, and names are as long as a user writes.
pub(crate) fn pad_right(s: &str, w: usize) -> String {
    let mut out = s.to_string();
    out.push_str(&" ".repeat(w.saturating_sub(s.chars().count())));
    out
}

/// `s` padded with spaces on the left to `w` characters (see [`pad_right`]).
pub(crate) fn pad_left(s: &str, w: usize) -> String {
    let mut out = " ".repeat(w.saturating_sub(s.chars().count()));
    out.push_str(s);
    out
}
