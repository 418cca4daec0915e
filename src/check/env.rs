//! The checker's state: the symbol table, the IR being built, and the collected diagnostics.

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::ir::*;
use crate::parse::ast::Ident;
use crate::span::Span;
use std::collections::{HashMap, HashSet};

/// What a name refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sym {
    /// A `dim`; index into `Model::dims`.
    Dim(usize),
    /// A `const`; index into `Model::consts`.
    Const(usize),
    /// A `param`.
    Param(ParamId),
    /// A `net`.
    Net(NetId),
    /// A random variable (observed, latent, input or state).
    Var(VarId),
    /// An optimality variable; index into `Model::optimality`.
    Opt(usize),
}

impl Sym {
    /// The kind of declaration with its article ("a dim", "a net", …), for diagnostics.
    pub fn describe(self) -> &'static str {
        match self {
            Sym::Dim(_) => "a dim",
            Sym::Const(_) => "a const",
            Sym::Param(_) => "a param",
            Sym::Net(_) => "a net",
            Sym::Var(_) => "a variable",
            Sym::Opt(_) => "an optimality variable",
        }
    }
}

/// The checker's state for one model: the names, the IR built so far and the diagnostics.
/// Each check pass is a method on it (see [`crate::check::check`] for the order).
pub struct Ck {
    /// Every error and warning found so far.
    pub diags: Diagnostics,
    /// Every declared name, with what it refers to and where it was declared.
    pub names: HashMap<String, (Sym, Span)>,
    /// Symbols read at least once (for the unused-name warnings).
    pub used: HashSet<Sym>,
    /// The IR under construction.
    pub model: Model,
    /// Spans of the IR's items, pushed in step with `model`'s tables.
    pub spans: ModelSpans,
    /// Dims and scalar consts whose value is known (evaluated in source order).
    pub scalar_values: HashMap<String, f64>,
    /// Span of each dim's declaration, index-aligned with `Model::dims`.
    pub dim_spans: Vec<Span>,
    /// Span of each const's declaration, index-aligned with `Model::consts`.
    pub const_spans: Vec<Span>,
    /// (block, variable) pairs that have a factor statement, even one whose body had errors,
    /// so a faulty factor does not also produce "no factor" errors.
    pub attempted: HashSet<(Block, VarId)>,
    /// (block, variable) pairs with a factor statement whose body had errors (already
    /// reported): the time-coverage rules skip them, so the one fault is not also reported as
    /// a missing general case (`E034`).
    pub failed: HashSet<(Block, VarId)>,
    /// Declarations whose value, type or shape could not be determined (already reported):
    /// reads of them evaluate to nothing, so one fault does not cascade into size errors.
    pub poisoned: HashSet<Sym>,
    /// Consts whose value has been evaluated (in source order): reading one before its
    /// declaration is an error, not its placeholder (an empty value).
    pub evaluated: HashSet<Sym>,
}

impl Ck {
    /// An empty checker for the model `name` declared at `span`.
    pub fn new(name: &str, span: Span) -> Ck {
        Ck {
            diags: Diagnostics::default(),
            names: HashMap::new(),
            used: HashSet::new(),
            model: Model {
                name: name.to_string(),
                dims: vec![],
                consts: vec![],
                params: vec![],
                nets: vec![],
                vars: vec![],
                inits: vec![],
                factors: vec![],
                optimality: vec![],
                objective: Objective::default(),
                data: None,
                behaviour: None,
            },
            spans: ModelSpans {
                model: span,
                ..Default::default()
            },
            scalar_values: HashMap::new(),
            dim_spans: vec![],
            const_spans: vec![],
            attempted: HashSet::new(),
            failed: HashSet::new(),
            poisoned: HashSet::new(),
            evaluated: HashSet::new(),
        }
    }

    /// Record a diagnostic (error or warning).
    pub fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Register a declaration; a second declaration of the same name is `E011`.
    pub fn declare(&mut self, id: &Ident, sym: Sym) -> bool {
        if let Some((prev, prev_span)) = self.names.get(&id.name) {
            let d = Diagnostic::new(Code::Duplicate, format!("`{}` is declared twice", id.name))
                .label(id.span, "declared again here")
                .label(*prev_span, format!("first declared here as {}", prev.describe()))
                .help("rename one of them; names share one namespace (dims, consts, params, nets, variables)");
            self.err(d);
            return false;
        }
        self.names.insert(id.name.clone(), (sym, id.span));
        true
    }

    /// Resolve a name, marking it used; unknown names are `E010` with a suggestion.
    pub fn resolve(&mut self, id: &Ident) -> Option<Sym> {
        match self.names.get(&id.name) {
            Some((sym, _)) => {
                self.used.insert(*sym);
                Some(*sym)
            }
            None => {
                let d = Diagnostic::new(Code::UnknownName, format!("unknown name `{}`", id.name))
                    .label(id.span, "not declared")
                    .help(match self.suggest(&id.name) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "declare it with `dim`, `const`, `param`, `net`, or a variable role (`observed`, `latent`, `input`, `state`)".into(),
                    });
                self.err(d);
                None
            }
        }
    }

    /// The declared name closest to `name` (edit distance ≤ 2 and below the candidate's
    /// length), for "did you mean" help.
    pub fn suggest(&self, name: &str) -> Option<String> {
        self.names
            .keys()
            .map(|k| (edit_distance(k, name), k))
            .filter(|(d, k)| *d <= 2 && *d < k.len().max(2))
            .min()
            .map(|(_, k)| k.clone())
    }

    /// The declaration of variable `v`.
    pub fn var(&self, v: VarId) -> &Var {
        &self.model.vars[v]
    }
}

/// Levenshtein distance between `a` and `b`, counted in chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}
