//! vic: a compiler for variational inference in sequential latent-variable models.
//!
//! A `.vmodel` source declares variables and the factorisations of a generative model `p`
//! and a posterior `q`; vic checks it, derives the ELBO, and trains it. The compiler core is
//! pure (no IO): errors are data ([`diag::Diagnostic`]) turned into reports at the edge.
//!
//! ```
//! let src = r#"
//! model toy {
//!   observed x : real
//!   latent   z : real
//!   param m : real = 0.3
//!   p { z ~ Normal(0, 1)
//!       x ~ Normal(z, 1) }
//!   q { z ~ Normal(m, 1) }
//! }"#;
//! let model = vic::compile(src, "toy.vmodel").expect("a valid model");
//! assert_eq!(model.checked.model.vars.len(), 2);
//! ```

pub mod check;
pub mod data;
pub mod derive;
pub mod diag;
pub mod evidence;
pub mod family;
pub mod fused;
pub mod ir;
pub mod limits;
pub mod lower;
pub mod objective;
pub mod parse;
pub mod render;
pub mod runtime;
pub mod sim;
pub mod span;
pub mod train;

use diag::{Diagnostic, Report};

/// A compiled model: the checked IR with its spans and warnings, and its source.
#[derive(Clone, Debug)]
pub struct Model {
    pub name: String,
    pub source: String,
    pub checked: check::Checked,
}

impl Model {
    pub fn ir(&self) -> &ir::Model {
        &self.checked.model
    }
    /// The derived ELBO.
    pub fn elbo(&self) -> derive::Elbo {
        derive::derive(&self.checked.model)
    }
    /// The ELBO rendered as text, LaTeX or JSON, optionally with the step-by-step derivation.
    pub fn render_elbo(&self, format: render::Format, with_steps: bool) -> String {
        render::render(&self.checked.model, &self.elbo(), format, with_steps)
    }
    /// The graphical model as Graphviz DOT.
    pub fn graph(&self) -> String {
        render::dot::graph(&self.checked.model)
    }
    /// Warnings as reports bound to the source.
    pub fn warnings(&self) -> Vec<Report> {
        let source = std::sync::Arc::new(diag::Source::new(&self.name, &self.source));
        self.checked
            .warnings
            .iter()
            .map(|d| Report::bound(d.clone(), &source))
            .collect()
    }
}

/// The diagnostics of a failed compilation, bound to their source.
#[derive(Clone, Debug)]
pub struct Failure {
    pub reports: Vec<Report>,
}

impl Failure {
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.reports.iter().map(|r| &r.diag)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for r in &self.reports {
            writeln!(f, "{}", diag::render_plain(r))?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Parse and check a source text (pure: no IO). `name` labels diagnostics.
pub fn compile(source: &str, name: &str) -> Result<Model, Failure> {
    let bind = |ds: Vec<Diagnostic>| {
        let shared = std::sync::Arc::new(diag::Source::new(name, source));
        Failure {
            reports: ds.into_iter().map(|d| Report::bound(d, &shared)).collect(),
        }
    };
    let ast = parse::parse(source).map_err(bind)?;
    let checked = check::check(&ast).map_err(bind)?;
    Ok(Model {
        name: name.to_string(),
        source: source.to_string(),
        checked,
    })
}
