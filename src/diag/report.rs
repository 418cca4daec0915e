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
        let src = self.source.inner().as_str();
        Some(Box::new(self.diag.labels.iter().enumerate().map(
            move |(i, l)| {
                let lo = l.span.lo.min(len);
                let hi = significant_end(src, lo, l.span.hi.min(len));
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

/// The end of `src[lo..hi]` without trailing whitespace and comments, which the grammar's
/// implicit whitespace can leave inside a node's span; a span with nothing else is kept.
fn significant_end(src: &str, lo: usize, hi: usize) -> usize {
    let b = src.as_bytes();
    let (mut i, mut end) = (lo, lo);
    while i < hi {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < hi && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < hi && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                i += 1;
                while i < hi && b[i] != b'"' && b[i] != b'\n' {
                    i += 1;
                }
                i = (i + 1).min(hi);
                end = i;
            }
            _ => {
                i += 1;
                end = i;
            }
        }
    }
    if end == lo {
        hi
    } else {
        end
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
