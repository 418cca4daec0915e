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
//! // The terms of the ELBO by their readable names.
//! assert_eq!(vic::term_labels(&model.elbo()), ["log p(x)", "KL z"]);
//! ```
//!
//! Training, with a [`RunPlan`] resolved from what a user asks for and an [`Observer`] that
//! sees every step (here a control problem, which needs no data):
//!
//! ```
//! use vic::{Observer, RunFlags, RunOptions, RunPlan, StepStats, Trainer};
//!
//! struct Elbos(Vec<f64>);
//! impl Observer for Elbos {
//!     fn stepped(&mut self, s: &StepStats) {
//!         self.0.push(s.elbo);
//!     }
//! }
//!
//! let src = std::fs::read_to_string("models/lqr.vmodel").unwrap();
//! let model = vic::compile(&src, "lqr.vmodel").unwrap();
//! let flags = RunFlags { steps: Some(3), batch: Some(8), horizon: Some(5), ..RunFlags::default() };
//! let plan = RunPlan::resolve(&flags, model.ir(), None).unwrap();
//! let program = vic::Program::new(model.ir(), &model.elbo()).unwrap();
//! let mut trainer = Trainer::new(program, None, plan.config.clone()).unwrap();
//! let options = RunOptions {
//!     total: plan.total,
//!     checkpoint: None,
//!     checkpoint_every: 0,
//!     eval_every: 0,
//!     final_samples: 1,
//!     resume: None,
//! };
//! let mut seen = Elbos(Vec::new());
//! let outcome = trainer.run(&options, &mut seen).unwrap();
//! assert_eq!(seen.0.len(), 3);
//! assert_eq!(outcome.last_step, 3);
//! ```
#![warn(missing_docs)]
// The library is pure: output is the command line's (src/cli); tests may print.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

/// Environments, replay and returns for `vic agent` (issue 9, in progress).
pub mod agent;
pub mod check;
pub mod data;
pub mod derive;
pub mod diag;
pub mod evidence;
pub mod family;
pub mod forms;
pub mod fused;
pub mod ir;
pub mod limits;
pub mod lower;
pub mod objective;
pub mod parse;
pub mod plot;
pub mod reference;
pub mod render;
pub mod runtime;
pub mod sim;
pub mod span;
pub mod train;

use diag::{Diagnostic, Report};

pub use data::{DataError, Dataset};
pub use derive::Elbo;
pub use diag::Code;
pub use lower::{LowerError, Program};
pub use render::label::term_labels;
pub use render::Format;
pub use train::{
    CheckpointInfo, EvalReport, NamedParam, Observer, PlanError, RunEnd, RunError, RunFlags,
    RunOptions, RunOutcome, RunPlan, StepStats, TrainConfig, TrainError, Trainer,
};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// A compiled model: the checked IR with its spans and warnings, and its source.
#[derive(Clone, Debug)]
pub struct Model {
    /// The name diagnostics use (the file name given to [`compile`]).
    pub name: String,
    /// The source text.
    pub source: String,
    /// The checked IR, its spans and warnings.
    pub checked: check::Checked,
}

impl Model {
    /// The checked IR.
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
    /// Whether a runtime trains this model: what no backend runs (exact enumeration under
    /// free nats, overshooting without a Normal chain, …) as E200 reports with their spans.
    /// `vic check` asks, so a model it accepts trains; `vic elbo` does not (the derivation
    /// of such a model is still well defined).
    pub fn trainable(&self) -> Result<(), Failure> {
        let source = std::sync::Arc::new(diag::Source::new(&self.name, &self.source));
        lower::Program::new_spanned(&self.checked.model, &self.elbo(), &self.checked.spans)
            .map(|_| ())
            .map_err(|e| Failure {
                reports: (e.diagnostics.into_iter())
                    .map(|d| Report::bound(d, &source))
                    .collect(),
            })
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
    /// Every diagnostic, bound to the source.
    pub reports: Vec<Report>,
}

impl Failure {
    /// The diagnostics without their source.
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

/// Parse and check a source text (pure: no IO). `name` labels diagnostics. Sizes taken from
/// the environment (`dim O = env(obs, 3)`) get their defaults.
pub fn compile(source: &str, name: &str) -> Result<Model, Failure> {
    compile_for(source, name, None)
}

/// [`compile`] for a model run in an environment of shape `env`: its `env(obs|act, …)`
/// sizes, `action[…]` types and doubled policies are fixed for it (`parse::env`).
pub fn compile_for(
    source: &str,
    name: &str,
    env: Option<&parse::env::EnvShape>,
) -> Result<Model, Failure> {
    let bind = |ds: Vec<Diagnostic>| {
        let shared = std::sync::Arc::new(diag::Source::new(name, source));
        Failure {
            reports: ds.into_iter().map(|d| Report::bound(d, &shared)).collect(),
        }
    };
    let mut ast = parse::parse(source).map_err(bind)?;
    parse::env::specialise(&mut ast, env).map_err(bind)?;
    let checked = check::check(&ast).map_err(bind)?;
    Ok(Model {
        name: name.to_string(),
        source: source.to_string(),
        checked,
    })
}
