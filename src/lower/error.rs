//! [`LowerError`]: why a checked model cannot become a [`super::Program`] — a feature the
//! tensor backend does not run (`vic::E200`), as diagnostics (with spans when the checker's
//! spans were given).

use crate::diag::Diagnostic;

/// The diagnostics of a model that cannot be lowered; indexes and iterates as a slice of
/// them.
#[derive(Clone, Debug)]
pub struct LowerError {
    /// One per refused feature, in the model's order.
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msgs: Vec<String> = self
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.code.as_str(), d.message))
            .collect();
        f.write_str(&msgs.join("; "))
    }
}

impl std::error::Error for LowerError {}

impl std::ops::Deref for LowerError {
    type Target = [Diagnostic];
    fn deref(&self) -> &[Diagnostic] {
        &self.diagnostics
    }
}

impl IntoIterator for LowerError {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.diagnostics.into_iter()
    }
}

impl From<Vec<Diagnostic>> for LowerError {
    fn from(diagnostics: Vec<Diagnostic>) -> LowerError {
        LowerError { diagnostics }
    }
}
