//! The edge: a [`Diagnostic`] bound to its source becomes a miette report.

use super::Diagnostic;
use miette::{LabeledSpan, NamedSource, Severity};
use std::fmt;
use std::sync::Arc;

/// A diagnostic together with the source it points into; implements [`miette::Diagnostic`].
#[derive(Clone)]
pub struct Report {
    pub diag: Diagnostic,
    pub source: Arc<NamedSource<String>>,
}

impl Report {
    pub fn new(diag: Diagnostic, name: &str, source: &str) -> Self {
        Report {
            diag,
            source: Arc::new(NamedSource::new(name, source.to_string())),
        }
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.diag, f)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diag.code.as_str()))
    }
    fn severity(&self) -> Option<Severity> {
        Some(if self.diag.is_error() {
            Severity::Error
        } else {
            Severity::Warning
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        if self.diag.help.is_empty() {
            None
        } else {
            Some(Box::new(&self.diag.help))
        }
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        if self.diag.labels.is_empty() {
            None
        } else {
            Some(&*self.source)
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.diag.labels.is_empty() {
            return None;
        }
        let len = self.source.inner().len();
        Some(Box::new(self.diag.labels.iter().enumerate().map(
            move |(i, l)| {
                let lo = l.span.lo.min(len);
                let hi = l.span.hi.min(len);
                let text = if l.text.is_empty() {
                    None
                } else {
                    Some(l.text.clone())
                };
                if i == 0 {
                    LabeledSpan::new_primary_with_span(text, (lo, hi - lo))
                } else {
                    LabeledSpan::new_with_span(text, (lo, hi - lo))
                }
            },
        )))
    }
}

/// Render a diagnostic as plain text (no colours, no Unicode box art), as the snapshot tests
/// and non-terminal output use it.
pub fn render_plain(report: &Report) -> String {
    render(report, false)
}

/// Render a diagnostic, with ANSI colours when `color` is set (terminals).
pub fn render(report: &Report, color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    // Rendering into a String cannot fail.
    let _ = handler.render_report(&mut out, report);
    out
}
