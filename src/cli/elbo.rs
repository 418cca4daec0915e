//! `vic elbo FILE [--format text|latex|json] [--steps]` and `vic graph FILE`.

use super::io::load_model;
use crate::exit::OK;
use std::path::Path;
use vic::render::Format;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    Text,
    Latex,
    Json,
}

/// `vic elbo`: the derived ELBO in a format.
pub fn run(path: &Path, format: FormatArg, steps: bool, color: bool) -> u8 {
    let model = match load_model(path, color) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let format = match format {
        FormatArg::Text => Format::Text,
        FormatArg::Latex => Format::Latex,
        FormatArg::Json => Format::Json,
    };
    print!("{}", model.render_elbo(format, steps));
    OK
}

/// `vic graph`: the model as Graphviz DOT.
pub fn graph(path: &Path, color: bool) -> u8 {
    match load_model(path, color) {
        Ok(m) => {
            print!("{}", m.graph());
            OK
        }
        Err(code) => code,
    }
}
