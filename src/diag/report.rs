//! The edge: a [`Diagnostic`] bound to its source becomes a miette report.

use super::Diagnostic;
use miette::{LabeledSpan, MietteError, MietteSpanContents, Severity, SourceSpan, SpanContents};
use std::fmt;
use std::sync::Arc;

/// A named source text with an index of its line starts, shared by every report of one
/// compilation. miette's own sources scan from the start of the text for every report, and
/// each report owned a copy of the text: a model with 20,000 warnings took O(n²) time and
/// memory to print them.
#[derive(Debug)]
pub struct Source {
    name: String,
    text: String,
    /// Byte offsets where lines start, as miette counts lines (`\n`, `\r\n` or a lone `\r`).
    line_starts: Vec<usize>,
}

impl Source {
    /// A named source text, indexed by line.
    pub fn new(name: &str, text: &str) -> Source {
        let b = text.as_bytes();
        let mut line_starts = vec![0];
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\r' if b.get(i + 1) == Some(&b'\n') => {
                    i += 2;
                    line_starts.push(i);
                }
                b'\r' | b'\n' => {
                    i += 1;
                    line_starts.push(i);
                }
                _ => i += 1,
            }
        }
        Source {
            name: name.to_string(),
            text: text.to_string(),
            line_starts,
        }
    }
    /// Its name (the file name).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The text.
    pub fn inner(&self) -> &String {
        &self.text
    }
}

impl miette::SourceCode for Source {
    /// miette's reading of `[u8]`, started a few lines before the span instead of at the
    /// start of the text; offsets and line numbers are moved back to the whole text.
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let at = span.offset().min(self.text.len());
        let line = self
            .line_starts
            .partition_point(|&s| s <= at)
            .saturating_sub(1);
        let base_line = line.saturating_sub(context_lines_before + 1);
        let base = self.line_starts[base_line];
        let local = SourceSpan::new((span.offset() - base).into(), span.len());
        let c = <[u8] as miette::SourceCode>::read_span(
            &self.text.as_bytes()[base..],
            &local,
            context_lines_before,
            context_lines_after,
        )?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            c.data(),
            SourceSpan::new((c.span().offset() + base).into(), c.span().len()),
            c.line() + base_line,
            c.column(),
            c.line_count() + base_line,
        )))
    }
}

/// A diagnostic together with the source it points into; implements [`miette::Diagnostic`].
#[derive(Clone)]
pub struct Report {
    /// The diagnostic.
    pub diag: Diagnostic,
    /// The source its spans point into.
    pub source: Arc<Source>,
}

impl Report {
    /// A diagnostic bound to a new source.
    pub fn new(diag: Diagnostic, name: &str, source: &str) -> Self {
        Report {
            diag,
            source: Arc::new(Source::new(name, source)),
        }
    }
    /// Bind a diagnostic to a source shared with other reports.
    pub fn bound(diag: Diagnostic, source: &Arc<Source>) -> Self {
        Report {
            diag,
            source: source.clone(),
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

/// Lines longer than this (in bytes) are shown as a window around their labels.
const MAX_SHOWN_LINE: usize = 240;
/// Bytes of context kept before a label on a shortened line.
const WINDOW_BEFORE: usize = 60;

/// The report as miette can draw it. miette formats label columns as widths, and the
/// standard formatter panics on a width above 65,535; so every source line longer than
/// [`MAX_SHOWN_LINE`] that a label touches is cut to a window around the first label on it
/// (`…` marks the cuts), and the labels are moved into the shortened text. Line numbers stay;
/// the source name says that lines were shortened, since columns then count in the window.
fn displayable(report: &Report) -> Option<Report> {
    let src = report.source.inner().as_str();
    let len = src.len();
    // (start, end) of the line holding byte `x`.
    let line_of = |x: usize| {
        let x = x.min(len);
        let start = src[..x].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let end = src[x..].find('\n').map(|i| x + i).unwrap_or(len);
        (start, end)
    };
    // For every long line a label touches: the kept window [keep_lo, keep_hi).
    let mut windows: Vec<(usize, usize, usize, usize)> = Vec::new(); // line start, end, keep
    for l in &report.diag.labels {
        for x in [l.span.lo.min(len), l.span.hi.min(len)] {
            let (start, end) = line_of(x);
            if end - start <= MAX_SHOWN_LINE || windows.iter().any(|w| w.0 == start) {
                continue;
            }
            let anchor = if l.span.lo.min(len) >= start {
                l.span.lo.min(len)
            } else {
                start
            };
            let mut lo = anchor.saturating_sub(WINDOW_BEFORE).max(start);
            while !src.is_char_boundary(lo) {
                lo -= 1;
            }
            let mut hi = (lo + MAX_SHOWN_LINE).min(end);
            while !src.is_char_boundary(hi) {
                hi -= 1;
            }
            windows.push((start, end, lo, hi));
        }
    }
    if windows.is_empty() {
        return None;
    }
    windows.sort();
    // Rebuild the text from verbatim pieces (original lo, hi, offset in the new text).
    let mut text = String::new();
    let mut pieces: Vec<(usize, usize, usize)> = Vec::new();
    let mut at = 0;
    for &(start, end, lo, hi) in &windows {
        pieces.push((at, start, text.len()));
        text.push_str(&src[at..start]);
        if lo > start {
            text.push('…');
        }
        pieces.push((lo, hi, text.len()));
        text.push_str(&src[lo..hi]);
        if hi < end {
            text.push('…');
        }
        at = end;
    }
    pieces.push((at, len, text.len()));
    text.push_str(&src[at..]);
    let piece = |x: usize| {
        pieces
            .iter()
            .find(|&&(a, b, _)| a <= x && x <= b)
            .map(|&(a, _, n)| n + (x - a))
    };
    // An offset inside a cut moves to the nearest kept edge of its window.
    let map = |x: usize| {
        let x = x.min(len);
        piece(x)
            .or_else(|| {
                let w = windows.iter().find(|w| w.0 <= x && x <= w.1)?;
                piece(if x < w.2 { w.2 } else { w.3 })
            })
            .unwrap_or(text.len())
    };
    let mut diag = report.diag.clone();
    for l in &mut diag.labels {
        l.span.lo = map(l.span.lo);
        l.span.hi = map(l.span.hi).max(l.span.lo);
    }
    let name = format!("{} (long lines shortened)", report.source.name());
    Some(Report::new(diag, &name, &text))
}

/// Render a diagnostic, with ANSI colours when `color` is set (terminals).
pub fn render(report: &Report, color: bool) -> String {
    let shown = displayable(report);
    let report = shown.as_ref().unwrap_or(report);
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

#[cfg(test)]
mod tests {
    use super::*;
    use miette::SourceCode;

    /// The indexed reading gives what miette's whole-text reading gives, for every span
    /// start and context, with `\n`, `\r\n` and lone `\r` line ends.
    #[test]
    fn indexed_source_reads_as_miette_does() {
        let text = "model m {\n  latent z : real\r\n\r\n  p {\r    z ~ Normal(0, 1)\n  }\n}";
        let source = Source::new("m.vmodel", text);
        for lo in 0..=text.len() {
            for len in [0, 1, 3] {
                for (before, after) in [(0, 0), (1, 1), (2, 3)] {
                    let span = SourceSpan::new(lo.into(), len.min(text.len() - lo));
                    let want = text.read_span(&span, before, after);
                    let got = source.read_span(&span, before, after);
                    match (want, got) {
                        (Ok(w), Ok(g)) => {
                            assert_eq!(w.data(), g.data(), "{lo} {len} {before} {after}");
                            assert_eq!(w.span(), g.span());
                            assert_eq!(w.line(), g.line(), "{lo} {len} {before} {after}");
                            assert_eq!(w.column(), g.column());
                            assert_eq!(w.line_count(), g.line_count());
                        }
                        (Err(_), Err(_)) => {}
                        (w, g) => panic!("{lo} {len}: {:?} vs {:?}", w.is_ok(), g.is_ok()),
                    }
                }
            }
        }
    }
}
