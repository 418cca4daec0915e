//! Short, readable, unique names for the terms of an ELBO: `log p(o)`, `KL s (t = 1)`,
//! `KL s (t ≥ 2)`, `H a`, `reward O`. The one home of these names: the progress bar, the
//! keys of `terms` in `metrics.jsonl`, the legends of `elbo.svg` and the final report all use
//! [`term_labels`], so a name read in one place is found in the others.
//!
//! Ranges are written as `vic elbo` writes them: a term over every step has no suffix, a
//! term at one step says `t = k`, a term from step k on says `t ≥ k`.

use crate::derive::{Elbo, Range, Term, TermKind};

/// One label per term of `elbo`, in the terms' order; no two are equal.
pub fn term_labels(elbo: &Elbo) -> Vec<String> {
    let mut labels: Vec<String> = elbo.terms.iter().map(label).collect();
    // Two terms of the same kind, owner and range (not produced by vic's derivation today):
    // keep them apart by their number in the `vic elbo` table.
    for i in 0..labels.len() {
        if labels.iter().filter(|l| **l == labels[i]).count() > 1 {
            let dup = labels[i].clone();
            for (j, l) in labels.iter_mut().enumerate() {
                if *l == dup {
                    l.push_str(&format!(" #{}", j + 1));
                }
            }
        }
    }
    labels
}

/// The label of one term, without the disambiguation of [`term_labels`].
fn label(t: &Term) -> String {
    let base = match &t.kind {
        TermKind::LogLikelihood { .. } => format!("log p({})", t.owner),
        TermKind::Kl { .. } => format!("KL {}", t.owner),
        TermKind::LogRatio { .. } => format!("log p/q {}", t.owner),
        TermKind::Entropy { .. } => format!("H {}", t.owner),
        TermKind::Reward { .. } => format!("reward {}", t.owner),
        TermKind::Marginal { q, .. } if !q.is_empty() => {
            format!("𝔼_q log p/q ({} enumerated over q's chain)", t.owner)
        }
        TermKind::Marginal { emissions, .. } => {
            let mut ys: Vec<&str> = Vec::new();
            for e in emissions {
                let y = e.target.split('[').next().unwrap_or(&e.target);
                if !ys.contains(&y) {
                    ys.push(y);
                }
            }
            format!("log p({}) ({} summed out)", ys.join(", "), t.owner)
        }
    };
    match t.range {
        Range::Static | Range::From { t: 1 } => base,
        Range::At { t } => format!("{base} (t = {t})"),
        Range::From { t } => format!("{base} (t ≥ {t})"),
    }
}

#[cfg(test)]
mod tests {
    use super::term_labels;

    fn labels(src: &str) -> Vec<String> {
        let m = crate::compile(src, "t.vmodel").expect("compiles");
        term_labels(&m.elbo())
    }

    /// The state-space model's two KL rows are told apart by their ranges, as `vic elbo`
    /// writes them (`t = 1` and `t = 2..T`).
    #[test]
    fn ssm_terms_are_named_by_kind_owner_and_range() {
        let src = std::fs::read_to_string("models/ssm.vmodel").expect("models/ssm.vmodel");
        assert_eq!(labels(&src), ["log p(o)", "KL s (t = 1)", "KL s (t ≥ 2)"]);
    }

    #[test]
    fn a_static_model_has_no_ranges_in_its_labels() {
        let src = r#"
model toy {
  observed x : real
  latent   z : real
  param m : real = 0.3
  p { z ~ Normal(0, 1)
      x ~ Normal(z, 1) }
  q { z ~ Normal(m, 1) }
}"#;
        assert_eq!(labels(src), ["log p(x)", "KL z"]);
    }

    #[test]
    fn control_terms_are_reward_and_entropy() {
        let src = std::fs::read_to_string("models/sac.vmodel").expect("models/sac.vmodel");
        assert_eq!(labels(&src), ["reward O", "H a"]);
    }
}
