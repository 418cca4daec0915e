//! Stage 1, parse: source text → [`ast::ModelAst`] with spans on every node.
//!
//! Input: a `.vmodel` source string. Output: the AST, or syntax diagnostics (`E001`–`E003`).
//! Invariants: pest's `Pair` never leaves this module; nesting deeper than [`MAX_DEPTH`] is
//! rejected before pest runs, so no input can overflow the stack here or in later stages.

pub mod ast;
mod build;
mod depth;
pub mod env;

use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use pest::Parser;

/// Brackets nested deeper than this are an error (`E002`).
pub const MAX_DEPTH: usize = 64;

/// The pest parser generated from `grammar/vmodel.pest`, and its `Rule`s (one per grammar
/// rule, named as there).
#[allow(missing_docs)]
mod grammar {
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/vmodel.pest"]
    pub struct VmodelParser;
}
use grammar::{Rule, VmodelParser};

/// Parse a whole `.vmodel` source.
pub fn parse(src: &str) -> Result<ast::ModelAst, Vec<Diagnostic>> {
    if let Some(d) = depth::check_depth(src, MAX_DEPTH) {
        return Err(vec![d]);
    }
    let mut pairs = VmodelParser::parse(Rule::file, src).map_err(|e| vec![syntax_error(e, src)])?;
    let file = pairs.next().expect("the file rule always yields one pair");
    build::model(file).map_err(|d| vec![d])
}

/// A span of one character at `p` (empty at the end of the source), on char boundaries.
fn char_span(src: &str, p: usize) -> Span {
    let p = p.min(src.len());
    match src[p..].chars().next() {
        Some(c) => Span::new(p, p + c.len_utf8()),
        None => Span::new(p, p),
    }
}

fn syntax_error(e: pest::error::Error<Rule>, src: &str) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let span = match e.location {
        InputLocation::Pos(p) => char_span(src, p),
        InputLocation::Span((a, b)) => Span::new(a.min(src.len()), b.min(src.len())),
    };
    let expected = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort_unstable();
            names.dedup();
            names
        }
        ErrorVariant::CustomError { .. } => vec![],
    };
    let what = if expected.is_empty() {
        "unexpected input".to_string()
    } else {
        format!("expected {}", join_or(&expected))
    };
    Diagnostic::new(Code::Syntax, format!("syntax error: {what}"))
        .label(span, what)
        .help(
            "see docs/language.md for the grammar; every statement sits inside `model NAME { … }`",
        )
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Human names for the rules a user can be told were expected.
fn rule_name(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::model => "`model`",
        Rule::ident => "a name",
        Rule::expr | Rule::term | Rule::unary | Rule::postfix => "an expression",
        Rule::number | Rule::uint_lit | Rule::int_lit => "a number",
        Rule::ty | Rule::ty_name => "a type (`real`, `unit`, `binary`, `onehot`, `action`)",
        Rule::role => "a declaration",
        Rule::dim_decl => "`dim`",
        Rule::const_decl => "`const`",
        Rule::param_decl => "`param`",
        Rule::var_decl => "a variable declaration",
        Rule::net_decl => "`net`",
        Rule::init_decl => "`init`",
        Rule::optimality_decl => "`optimality`",
        Rule::data_decl => "`data`",
        Rule::block | Rule::block_kind => "a `p` or `q` block",
        Rule::objective => "`objective`",
        Rule::imagine_factor | Rule::factor_role => "`policy a[t] ~ …` or `prior a[t] ~ …`",
        Rule::sample_stmt | Rule::assign_stmt | Rule::target => {
            "a statement `x[t] ~ …` or `h[t] = …`"
        }
        Rule::dist => "a distribution",
        Rule::index | Rule::shifted | Rule::time_var => "a time index",
        Rule::target_index => "`t` or a step number",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::string => "a quoted path",
        Rule::setting => "an objective setting",
        Rule::kwarg => "`name = value`",
        Rule::net_spec => "a net (`mlp(…)`, `gru(…)`, `rnn(…)`)",
        Rule::EOI => "end of file",
        _ => return None,
    })
}
