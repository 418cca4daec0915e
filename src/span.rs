//! Byte spans into a `.vmodel` source. Spans are attached to the AST and kept in side
//! tables beside the IR (never inside IR equality), so IR snapshots stay stable.

/// A half-open byte range `[lo, hi)` into the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First byte.
    pub lo: usize,
    /// One past the last byte.
    pub hi: usize,
}

impl Span {
    /// The bytes `lo..hi`.
    pub fn new(lo: usize, hi: usize) -> Self {
        Span { lo, hi: hi.max(lo) }
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.hi - self.lo
    }
    /// Whether it covers no byte.
    pub fn is_empty(&self) -> bool {
        self.hi == self.lo
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.lo.min(other.lo), self.hi.max(other.hi))
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.lo, s.len()).into()
    }
}
