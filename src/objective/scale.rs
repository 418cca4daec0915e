//! `scale <term> = s`: multiplies the named variable's terms in the training objective (every
//! kind of term). Parsed in `check::objective`; applied as a factor on the term's loss.

use super::{num, ModifierSpec, Modifiers};
use crate::check::env::Ck;
use crate::check::env::Sym;
use crate::diag::{Code, Diagnostic};
use crate::forms::Compute;
use crate::ir::Role;
use crate::ir::{Objective, VarOrOpt};
use crate::parse::ast::SettingAst;

/// This modifier's row of [`super::MODIFIERS`].
pub const SPEC: ModifierSpec = ModifierSpec {
    key: "scale",
    parse,
    applies,
    acts_on: "every term",
    is_set: |o| !o.scales.is_empty(),
    attach,
    display,
    shape: |m, _, s| s.factor *= m.scale as f32,
};

/// Every term kind is scaled.
fn applies(_: Compute) -> bool {
    true
}

fn attach(obj: &Objective, owner: VarOrOpt, m: &mut Modifiers) {
    m.scale = of(obj, owner);
}

/// The scale of `owner`'s terms (1 when none is set).
pub fn of(obj: &Objective, owner: VarOrOpt) -> f64 {
    obj.scales
        .iter()
        .find(|(o, _)| *o == owner)
        .map(|(_, s)| *s)
        .unwrap_or(1.0)
}

fn display(m: &Modifiers) -> Option<String> {
    (m.scale != 1.0).then(|| format!("× {}", num(m.scale)))
}

/// Parse and check the `scale` setting into the model's objective (diagnostics on `ck`).
fn parse(ck: &mut Ck, s: &SettingAst) {
    let Some(sub) = &s.subject else {
        ck.bad_setting(
            s,
            "no term named",
            "write `scale <variable> = <number>`, e.g. `scale o = 0.5`",
        );
        return;
    };
    let Some(sym) = ck.resolve(sub) else { return };
    let owner = match sym {
        Sym::Var(v) if matches!(ck.model.vars[v].role, Role::Observed | Role::Latent) => {
            VarOrOpt::Var(v)
        }
        Sym::Opt(o) => VarOrOpt::Opt(o),
        other => {
            ck.err(Diagnostic::new(Code::BadSetting, format!("`{}` is {} and has no ELBO term to scale", sub.name, match other { Sym::Var(v) => ck.model.vars[v].role.keyword(), o => o.describe() }))
                    .label(sub.span, "no term")
                    .help("scale an observed variable's likelihood, a latent's KL, or an optimality variable's reward"));
            return;
        }
    };
    let Some(w) = ck.scalar_eval(&s.value) else {
        return;
    };
    if w < 0.0 {
        ck.bad_setting(s, "a scale is ≥ 0", "e.g. `scale o = 0.5`");
        return;
    }
    ck.model.objective.scales.push((owner, w));
}
