//! The `objective { … }` block: KL weight and annealing, free nats, KL balancing, IWAE,
//! overshooting, per-term scales, and the horizon/batch of control problems.

use super::env::{Ck, Sym};
use crate::diag::{Code, Diagnostic};
use crate::ir::*;
use crate::parse::ast::{Arg, ExprKind, Item, SettingAst};
use crate::span::Span;

const SETTINGS: &str =
    "kl_weight, free_nats, kl_balance, iwae, overshooting, scale <term>, horizon, batch";

impl Ck {
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

    /// `W004`: a modifier the objective block sets that acts on no term of this model (free
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

    fn bad_setting(&mut self, s: &SettingAst, why: &str, help: &str) {
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
        match key {
            "kl_weight" => {
                if let ExprKind::Call { fun, args } = &s.value.kind {
                    if fun.name == "anneal" {
                        let mut pos = vec![];
                        let mut steps = None;
                        for a in args {
                            match a {
                                Arg::Pos(e) => pos.push(self.scalar_eval(e)),
                                Arg::Kw(k) if k.name.name == "steps" => {
                                    steps = self.scalar_eval(&k.value)
                                }
                                Arg::Kw(k) => {
                                    self.bad_setting(
                                        s,
                                        &format!("unknown argument `{}`", k.name.name),
                                        "write `anneal(from, to, steps = N)`",
                                    );
                                    return;
                                }
                            }
                        }
                        match (pos.as_slice(), steps) {
                            ([Some(a), Some(b)], Some(n)) if *a >= 0.0 && *b >= 0.0 && n >= 1.0 && n.fract() == 0.0 => {
                                self.model.objective.kl_weight = KlWeight::Anneal { from: *a, to: *b, steps: n as u64 };
                            }
                            _ => self.bad_setting(s, "anneal needs from ≥ 0, to ≥ 0 and a whole `steps = N ≥ 1`", "write `kl_weight = anneal(0, 1, steps = 5000)`: linear from 0 to 1 over 5000 steps"),
                        }
                        return;
                    }
                }
                if let Some(w) = self.scalar_eval(&s.value) {
                    if w >= 0.0 {
                        self.model.objective.kl_weight = KlWeight::Fixed(w);
                    } else {
                        self.bad_setting(
                            s,
                            "a KL weight is ≥ 0",
                            "write a number ≥ 0 or `anneal(from, to, steps = N)`",
                        );
                    }
                }
            }
            "free_nats" => {
                let Some(n) = self.scalar_eval(&s.value) else {
                    return;
                };
                if n < 0.0 {
                    self.bad_setting(
                        s,
                        "free nats are ≥ 0",
                        "e.g. `free_nats = 3.0` (PlaNet) or `1.0` (Dreamer)",
                    );
                    return;
                }
                // The clamp runs in f32: a larger bound is infinite there (and panicked).
                if n > f64::from(f32::MAX) {
                    self.bad_setting(
                        s,
                        &format!("{n:e} is beyond the largest f32 ({:e})", f32::MAX),
                        "e.g. `free_nats = 3.0` (PlaNet) or `1.0` (Dreamer)",
                    );
                    return;
                }
                let mut placement = FreeNatsPlacement::AfterMean;
                for o in &s.opts {
                    let val = match &o.value.kind {
                        ExprKind::Name(id) => FreeNatsPlacement::parse(&id.name),
                        _ => None,
                    };
                    match (o.name.name.as_str(), val) {
                        ("placement", Some(p)) => placement = p,
                        _ => {
                            self.err(Diagnostic::new(Code::BadSetting, "invalid free-nats placement")
                                .label(o.name.span.to(o.value.span), "expected `placement = per_element | after_mean | per_step`")
                                .help("per_element clamps each latent dimension, after_mean clamps the batch-and-time mean (Dreamer), per_step clamps each step's KL (PlaNet)"));
                            return;
                        }
                    }
                }
                self.model.objective.free_nats = Some(FreeNats { nats: n, placement });
            }
            "kl_balance" => {
                let Some(b) = self.scalar_eval(&s.value) else {
                    return;
                };
                if (0.0..=1.0).contains(&b) {
                    self.model.objective.kl_balance = Some(b);
                } else {
                    self.bad_setting(s, &format!("{b} is outside [0, 1]"), "the balance is the weight of the prior side, e.g. `kl_balance = 0.8` (DreamerV2)");
                }
            }
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
            "scale" => {
                let Some(sub) = &s.subject else {
                    self.bad_setting(
                        s,
                        "no term named",
                        "write `scale <variable> = <number>`, e.g. `scale o = 0.5`",
                    );
                    return;
                };
                let Some(sym) = self.resolve(sub) else { return };
                let owner = match sym {
                    Sym::Var(v)
                        if matches!(self.model.vars[v].role, Role::Observed | Role::Latent) =>
                    {
                        VarOrOpt::Var(v)
                    }
                    Sym::Opt(o) => VarOrOpt::Opt(o),
                    other => {
                        self.err(Diagnostic::new(Code::BadSetting, format!("`{}` is {} and has no ELBO term to scale", sub.name, match other { Sym::Var(v) => self.model.vars[v].role.keyword(), o => o.describe() }))
                            .label(sub.span, "no term")
                            .help("scale an observed variable's likelihood, a latent's KL, or an optimality variable's reward"));
                        return;
                    }
                };
                let Some(w) = self.scalar_eval(&s.value) else {
                    return;
                };
                if w < 0.0 {
                    self.bad_setting(s, "a scale is ≥ 0", "e.g. `scale o = 0.5`");
                    return;
                }
                self.model.objective.scales.push((owner, w));
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
