//! Stage 2, check: AST → model IR ([`crate::ir::Model`]) plus side-table spans.
//!
//! Input: a parsed [`crate::parse::ast::ModelAst`]. Output: a [`Checked`] model and its
//! warnings, or every error found (checks collect all faults instead of stopping at the first).
//! Invariants: the IR this returns satisfies everything listed in `crate::ir`'s module doc —
//! in particular no shape mismatch can reach a tensor op. Pure: no IO.

mod consts;
mod decls;
pub mod env;
mod expr;
mod factors;
mod imagine;
mod known;
mod objective;
mod rules;

use crate::diag::Diagnostic;
use crate::ir::{Model, ModelSpans};
use crate::parse::ast::ModelAst;

/// A model that passed the checker.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The model IR; satisfies every invariant in `crate::ir`'s module doc.
    pub model: Model,
    /// Source spans of the IR's items, index-aligned with `model`'s tables.
    pub spans: ModelSpans,
    /// Warnings only (errors make [`check`] return `Err`), sorted by position.
    pub warnings: Vec<Diagnostic>,
}

/// Check a parsed model. `Err` holds every diagnostic (errors and warnings), sorted by position.
pub fn check(ast: &ModelAst) -> Result<Checked, Vec<Diagnostic>> {
    let mut ck = env::Ck::new(&ast.name.name, ast.span);
    ck.register(&ast.items);
    ck.constants(&ast.items);
    ck.declarations(&ast.items);
    ck.inits(&ast.items);
    ck.blocks(&ast.items);
    ck.optimality(&ast.items);
    ck.objective(&ast.items);
    ck.imagine(&ast.items);
    // Whole-model rules only make sense on a structurally complete IR.
    let structural_errors = ck.diags.has_errors();
    ck.roles();
    if !structural_errors {
        ck.time_coverage();
        ck.cycles();
        ck.supports();
        ck.chains();
    }
    ck.evidence();
    if !ck.diags.has_errors() {
        ck.known_dynamics();
    }
    ck.size();
    // Unused-name warnings are noise while errors hide reads.
    if !ck.diags.has_errors() {
        ck.unused();
        ck.unused_modifiers();
    }
    let has_errors = ck.diags.has_errors();
    let diags = ck.diags.sorted();
    if has_errors {
        Err(diags)
    } else {
        Ok(Checked {
            model: ck.model,
            spans: ck.spans,
            warnings: diags,
        })
    }
}
