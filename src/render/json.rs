//! JSON output, schema documented in `docs/elbo-json.md`. Bump [`VERSION`] on any change
//! that removes or renames a field.

use super::elbo::term_body;
use super::steps::{latex_lines, steps, text_lines};
use super::style::{Latex, Unicode};
use crate::derive::Elbo;
use crate::ir::Model;
use serde::Serialize;

/// The version of the JSON schema (`docs/elbo-json.md`).
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonTerm<'a> {
    #[serde(flatten)]
    term: &'a crate::derive::Term,
    sign: i8,
    text: String,
    latex: String,
}

#[derive(Serialize)]
struct JsonStep {
    title: String,
    why: String,
    text: Vec<String>,
    latex: Vec<String>,
}

#[derive(Serialize)]
struct JsonImagination<'a> {
    #[serde(flatten)]
    imagination: &'a crate::derive::imagine::Imagination,
    text: Vec<String>,
    latex: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<JsonStep>>,
}

#[derive(Serialize)]
struct Doc<'a> {
    version: u32,
    model: &'a str,
    mode: crate::derive::Mode,
    bound: &'a crate::derive::Bound,
    bound_text: String,
    iwae: u32,
    overshooting: u32,
    terms: Vec<JsonTerm<'a>>,
    cancellations: &'a [crate::derive::Cancellation],
    latents: &'a [crate::derive::LatentEstimator],
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<JsonStep>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    imagination: Option<JsonImagination<'a>>,
}

/// The ELBO (and optionally the derivation) as a JSON document.
pub fn document(m: &Model, elbo: &Elbo, with_steps: bool) -> String {
    let steps = with_steps.then(|| {
        let t = steps(&Unicode, m, elbo);
        let l = steps(&Latex, m, elbo);
        t.into_iter()
            .zip(l)
            .map(|(a, b)| JsonStep {
                title: a.title,
                why: a.why,
                text: text_lines(&a.math),
                latex: latex_lines(&b.math),
            })
            .collect()
    });
    let doc = Doc {
        version: VERSION,
        model: &elbo.model,
        mode: elbo.mode,
        bound: &elbo.bound,
        bound_text: super::elbo::bound(&Unicode, &elbo.bound),
        iwae: elbo.iwae,
        overshooting: elbo.overshooting,
        terms: elbo
            .terms
            .iter()
            .map(|t| JsonTerm {
                term: t,
                sign: t.kind.sign(),
                text: term_body(&Unicode, elbo, t),
                latex: term_body(&Latex, elbo, t),
            })
            .collect(),
        cancellations: &elbo.cancellations,
        latents: &elbo.estimators,
        steps,
        imagination: elbo.imagination.as_ref().map(|im| {
            use super::imagine::{equation, steps as im_steps, Dialect};
            let (u, l) = (Dialect { tex: false }, Dialect { tex: true });
            JsonImagination {
                imagination: im,
                text: text_lines(&equation(u, m, im)),
                latex: latex_lines(&equation(l, m, im)),
                steps: with_steps.then(|| {
                    im_steps(u, m, im)
                        .into_iter()
                        .zip(im_steps(l, m, im))
                        .map(|(a, b)| JsonStep {
                            title: a.title,
                            why: a.why,
                            text: text_lines(&a.math),
                            latex: latex_lines(&b.math),
                        })
                        .collect()
                }),
            }
        }),
    };
    // Plain data with string keys; a failure is a bug in a serialiser (never print nothing).
    serde_json::to_string_pretty(&doc).expect("the ELBO serialises to JSON") + "\n"
}
