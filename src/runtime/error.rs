//! Error type of the runtime.

use std::path::PathBuf;

/// Everything that can go wrong in the runtime without being a bug.
#[derive(Debug, thiserror::Error)]
pub enum RtError {
    #[error("missing parameter `{0}`")]
    /// A parameter the program reads is not in the store.
    MissingParam(String),
    #[error("parameter `{0}` already exists")]
    /// Two parameters with one name.
    DuplicateParam(String),
    #[error("parameter `{name}` has shape {found:?}, expected {expected:?}")]
    /// A parameter with another shape than declared.
    ParamShape {
        /// The parameter.
        name: String,
        /// Its shape in the store.
        found: Vec<usize>,
        /// The shape the model declares.
        expected: Vec<usize>,
    },
    #[error("shape error: {0}")]
    /// Operands of incompatible shapes.
    Shape(String),
    #[error("{0}")]
    /// A fault in vic (an invariant that does not hold), on a model the checker accepted.
    Fault(String),
    #[error("KL divergence is infinite: {0}")]
    /// A KL divergence that is infinite (disjoint supports).
    InfiniteKl(String),
    #[error("i/o error on {path}: {source}")]
    /// A file that cannot be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    #[error("bad checkpoint {path}: {msg}")]
    /// A checkpoint that cannot be read or is not one vic wrote.
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}
