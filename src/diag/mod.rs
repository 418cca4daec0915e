//! Diagnostics as data. Every stage reports faults as [`Diagnostic`] values (a code, a
//! message, labelled spans, a help line); only the edge ([`Report`], the CLI) turns them into
//! miette reports bound to a source text. The compiler core never prints.

mod codes;
mod report;

pub use codes::Code;
pub use report::{render, render_plain, Report, Source};

use crate::span::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
/// A span of the source with a short text.
pub struct Label {
    /// Where.
    pub span: Span,
    /// What is there (may be empty).
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// One finding of the compiler: a code, a message, labelled spans and a help line.
pub struct Diagnostic {
    /// Its stable code.
    pub code: Code,
    /// One sentence.
    pub message: String,
    /// The first label is the primary one.
    pub labels: Vec<Label>,
    /// How to fix it.
    pub help: String,
}

impl Diagnostic {
    /// A diagnostic without labels or help.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            labels: Vec::new(),
            help: String::new(),
        }
    }
    /// Adds a labelled span (the first is the primary one).
    pub fn label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }
    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = help.into();
        self
    }
    /// Whether it is an error (not a warning).
    pub fn is_error(&self) -> bool {
        !self.code.is_warning()
    }
    /// The span of the first label.
    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

/// A collection that stages push into; checks collect all faults instead of stopping.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds a diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }
    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }
    /// Sort by position, errors before warnings at the same position, and drop exact repeats.
    pub fn sorted(mut self) -> Vec<Diagnostic> {
        self.0.sort_by_key(|d| {
            (
                d.primary_span().map(|s| s.lo).unwrap_or(usize::MAX),
                d.code.is_warning(),
                d.code,
            )
        });
        self.0.dedup();
        self.0
    }
}
