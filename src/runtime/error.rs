//! Error type of the runtime.

use std::path::PathBuf;

/// Everything that can go wrong in the runtime without being a bug.
#[derive(Debug, thiserror::Error)]
pub enum RtError {
    #[error("missing parameter `{0}`")]
    MissingParam(String),
    #[error("parameter `{0}` already exists")]
    DuplicateParam(String),
    #[error("parameter `{name}` has shape {found:?}, expected {expected:?}")]
    ParamShape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("shape error: {0}")]
    Shape(String),
    #[error("KL divergence is infinite: {0}")]
    InfiniteKl(String),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
}
