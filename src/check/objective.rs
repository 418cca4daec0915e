//! The `objective { … }` block: one block, each setting once, and the settings that are not
//! term modifiers (IWAE, overshooting, the horizon/batch of control problems). The modifiers
//! (KL weight and annealing, free nats, KL balancing, per-term scales) parse and check
//! themselves in `crate::objective`, one file each; `W005` warns when one acts on no term.

use super::env::Ck;
use crate::diag::{Code, Diagnostic};
use crate::parse::ast::{Item, SettingAst};
use crate::span::Span;

const SETTINGS: &str =
    "kl_weight, free_nats, kl_balance, iwae, overshooting, scale <term>, horizon, batch";

impl Ck {
    /// Check the `objective { … }` block (at most one) and store its settings in
    /// `Model::objective`.
    pub fn objective(&mut self, items: &[Item]) {
        let mut first: Option<Span> = None;
        for item in items {
            let Item::Objective { settings, span } = item else {
                continue;
            };
            if let Some(f) = first {
                self.err(
                    Diagnostic::new(Code::MultipleModelParts, "a second `objective` block")
                        .label(Span::new(span.lo, span.lo + 9), "declared again here")
                        .label(Span::new(f.lo, f.lo + 9), "first block")
                        .help("put every setting in one `objective` block"),
                );
                continue;
            }
            first = Some(*span);
            self.spans.objective = Some(*span);
            let mut seen: Vec<(String, Span)> = Vec::new();
            for s in settings {
                let key = match &s.subject {
                    Some(sub) => format!("{} {}", s.key.name, sub.name),
                    None => s.key.name.clone(),
                };
                if let Some((_, prev)) = seen.iter().find(|(k, _)| *k == key) {
                    self.err(
                        Diagnostic::new(Code::DuplicateSetting, format!("`{key}` is set twice"))
                            .label(s.span, "set again here")
                            .label(*prev, "first set here")
                            .help("keep one"),
                    );
                    continue;
                }
                seen.push((key, s.span));
                self.setting(s);
            }
        }
    }

    /// `W005`: a modifier the objective block sets that acts on no term of this model (free
    /// nats and KL balancing shape closed-form KL terms only; see `crate::objective`).
    pub fn unused_modifiers(&mut self) {
        let Some(span) = self.spans.objective else {
            return;
        };
        let elbo = crate::derive::derive(&self.model);
        let computes: Vec<_> = elbo.terms.iter().map(|t| t.compute).collect();
        for spec in crate::objective::unused(&self.model.objective, &computes) {
            let key = spec.key;
            self.err(
                Diagnostic::new(
                    Code::ModifierUnused,
                    format!("`{key}` acts on no term of this model"),
                )
                .label(Span::new(span.lo, span.lo + 9), format!("sets `{key}`"))
                .help(format!(
                    "`{key}` acts on {}; this model has none (a family pair without a closed-form KL, a Flat prior or IWAE makes a Monte Carlo log-ratio or an entropy): remove it",
                    spec.acts_on
                )),
            );
        }
    }

    pub(crate) fn bad_setting(&mut self, s: &SettingAst, why: &str, help: &str) {
        self.err(
            Diagnostic::new(Code::BadSetting, format!("invalid `{}`: {why}", s.key.name))
                .label(s.value.span, why.to_string())
                .help(help.to_string()),
        );
    }

    fn count(&mut self, s: &SettingAst, help: &str) -> Option<u32> {
        let v = self.scalar_eval(&s.value)?;
        let max = crate::limits::MAX_COUNT as f64;
        if v >= 1.0 && v.fract() == 0.0 && v <= max {
            Some(v as u32)
        } else if v > max {
            self.bad_setting(s, &format!("{v} is larger than {max}"), help);
            None
        } else {
            self.bad_setting(s, &format!("{v} is not a whole number ≥ 1"), help);
            None
        }
    }

    fn setting(&mut self, s: &SettingAst) {
        let key = s.key.name.as_str();
        if s.subject.is_some() && key != "scale" {
            self.bad_setting(
                s,
                "only `scale` names a term",
                "write `scale <variable> = <number>` for a per-term scale",
            );
            return;
        }
        if !s.opts.is_empty() && key != "free_nats" {
            let o = &s.opts[0];
            self.err(
                Diagnostic::new(
                    Code::BadSetting,
                    format!("`{key}` takes no option `{}`", o.name.name),
                )
                .label(o.name.span, "unexpected")
                .help("only `free_nats` takes an option (`placement = …`)"),
            );
            return;
        }
        // The objective modifiers parse and check themselves (`crate::objective`).
        if let Some(m) = crate::objective::MODIFIERS.iter().find(|m| m.key == key) {
            (m.parse)(self, s);
            return;
        }
        match key {
            "iwae" => {
                if let Some(k) = self.count(s, "the number of importance samples, e.g. `iwae = 5`")
                {
                    self.model.objective.iwae = k;
                }
            }
            "overshooting" => {
                if let Some(k) = self.count(
                    s,
                    "the overshooting distance in steps (1 = none), e.g. `overshooting = 3`",
                ) {
                    self.model.objective.overshooting = k;
                }
            }
            "horizon" => {
                if let Some(k) = self.count(
                    s,
                    "the rollout length of a control problem, e.g. `horizon = 50`",
                ) {
                    self.model.objective.horizon = Some(k);
                }
            }
            "batch" => {
                if let Some(k) = self.count(s, "the number of rollouts per step, e.g. `batch = 64`")
                {
                    self.model.objective.batch = Some(k);
                }
            }
            other => {
                let help = match SETTINGS
                    .split(", ")
                    .map(|k| (crate::check::env::edit_distance(k, other), k))
                    .min()
                {
                    Some((d, k)) if d <= 3 => {
                        format!("did you mean `{k}`? settings: {SETTINGS}")
                    }
                    _ => format!("settings: {SETTINGS}"),
                };
                self.err(
                    Diagnostic::new(
                        Code::UnknownSetting,
                        format!("unknown objective setting `{other}`"),
                    )
                    .label(s.key.span, "unknown")
                    .help(help),
                );
            }
        }
    }
}
