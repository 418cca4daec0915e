//! Parameters and the networks built from them (MLP, GRU).

pub mod gru;
pub mod mlp;
pub mod params;
