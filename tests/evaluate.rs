//! Evaluation on the two runtimes: a trainer that trains on the fused runtime evaluates on it
//! too (a forward-only pass of a fused program for the evaluation's batch shape), and its
//! report is the reference interpreter's on the same parameters, data and seed — every draw's
//! ELBO, the mean ELBO and every term's mean — for every shipped model, and for the IWAE bound
//! (which falls back to the reference interpreter where the capability table refuses the
//! re-derived program).

mod common;

use common::shipped::{shipped_models, trainer};
use vic::train::{EngineChoice, EvalReport, Trainer};

/// Steps trained before evaluating (so the parameters are not the initial ones).
const STEPS: usize = 3;
/// Draws per sequence (control problems: rollout batches, each a forward pass from the same
/// noise stream, so the second batch checks that both runtimes consume it alike).
const SAMPLES: usize = 2;
/// The ELBO, every term's mean and every draw's ELBO: relative (of values ≥ 1 in size; absolute
/// below). One forward pass from the same parameters and noise differs by float rounding only
/// (different summation orders: the fused kernels' loops and products against dfdx's).
/// Measured worst on the shipped models: 1.6e-6 (PlaNet's IWAE-5; 1.4e-6 SAC's ELBO), as the
/// training comparison's 3e-6 per step (`tests/runtimes.rs`); 1e-4 leaves room for longer sums
/// of bigger evaluation batches and still fails on any difference in noise, masking,
/// weighting or a term's sign (each moves values by far more).
const TOL: f64 = 1e-4;

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1.0)
}

/// `eval` on the trainer's own runtime (which must be the fused one) and on the reference
/// interpreter, same parameters and seed.
fn both(
    file: &str,
    tr: &mut Trainer,
    eval: impl Fn(&Trainer) -> EvalReport,
) -> (EvalReport, EvalReport) {
    let f = eval(tr);
    assert_eq!(f.runtime, "fused", "{file}: evaluated on {}", f.runtime);
    let engine = tr.cfg.engine;
    tr.cfg.engine = EngineChoice::Reference;
    let r = eval(tr);
    tr.cfg.engine = engine;
    assert_eq!(r.runtime, "reference", "{file}");
    (f, r)
}

/// The two reports agree: draws, the ELBO and every term's mean; returns the worst relative
/// difference.
fn agree(what: &str, f: &EvalReport, r: &EvalReport) -> f64 {
    assert_eq!(f.n, r.n, "{what}: draws");
    assert_eq!(f.draw_seq, r.draw_seq, "{what}: sequences of the draws");
    assert_eq!(f.terms.len(), r.terms.len(), "{what}: terms");
    let mut pairs = vec![("ELBO".to_string(), f.elbo, r.elbo)];
    for (a, b) in f.terms.iter().zip(&r.terms) {
        assert_eq!(a.label, b.label, "{what}");
        pairs.push((format!("term {} ({})", a.term, a.label), a.mean, b.mean));
    }
    for (i, (a, b)) in f.draws.iter().zip(&r.draws).enumerate() {
        pairs.push((format!("draw {i}'s ELBO"), *a, *b));
    }
    let mut worst = 0.0f64;
    for (q, x, y) in pairs {
        assert!(x.is_finite() && y.is_finite(), "{what}: {q}: {x} vs {y}");
        let e = rel(x, y);
        worst = worst.max(e);
        assert!(
            e <= TOL,
            "{what}: {q}: fused {x} vs reference {y} (relative {e:.2e} > {TOL:.0e})"
        );
    }
    worst
}

/// Every shipped model: trained a few steps on the fused runtime, its evaluation runs there
/// and agrees with the reference interpreter's.
#[test]
fn every_shipped_model_evaluates_alike_on_both_runtimes() {
    for file in shipped_models() {
        let mut tr = trainer(&file, EngineChoice::Auto);
        for _ in 0..STEPS {
            tr.step().unwrap_or_else(|e| panic!("{file}: step: {e}"));
        }
        assert!(tr.engine().starts_with("fused"), "{file}: {}", tr.engine());
        assert_eq!(tr.eval_runtime(None).expect("runtime"), "fused", "{file}");
        let (f, r) = both(&file, &mut tr, |t| {
            t.evaluate(None, SAMPLES, 11)
                .unwrap_or_else(|e| panic!("{file}: evaluate: {e}"))
        });
        let worst = agree(&file, &f, &r);
        // Evaluation changed nothing: a second one (from its cached program) is the first.
        let again = tr.evaluate(None, SAMPLES, 11).expect("evaluate again");
        assert_eq!(again.draws, f.draws, "{file}: a second evaluation differs");
        // Windows of the batch's rows (5 sequences of 8 steps, or 40 rows of a static
        // model, and a last partial window) draw what one pass draws.
        tr.cfg.eval_rows = 40;
        let windows = tr.evaluate(None, SAMPLES, 11).expect("evaluate in windows");
        tr.cfg.eval_rows = 0;
        assert_eq!(windows.runtime, "fused", "{file}");
        let worst = worst.max(agree(&format!("{file} (in windows)"), &windows, &r));
        eprintln!(
            "{file}: {} draws, worst relative difference {worst:.2e}",
            f.n
        );
    }
}

/// The IWAE-5 bound of every shipped model whose IWAE program lowers: evaluated on the
/// fused runtime where the capability table accepts the re-derived program, and the reference
/// interpreter's; on the reference interpreter where it does not (exactly these models: the
/// list shrinks as the fused runtime grows).
#[test]
fn iwae_evaluates_alike_on_both_runtimes() {
    const IWAE_NOT_FUSED: &[&str] = &["cvae_imitation.vmodel"];
    let mut fused = Vec::new();
    let mut not_fused = Vec::new();
    for file in shipped_models() {
        let mut tr = trainer(&file, EngineChoice::Auto);
        // A model whose IWAE copy does not lower (exact enumeration) has no IWAE bound.
        let Ok(runtime) = tr.eval_runtime(Some(5)) else {
            continue;
        };
        for _ in 0..STEPS {
            tr.step().unwrap_or_else(|e| panic!("{file}: step: {e}"));
        }
        let iwae = |t: &Trainer| {
            t.evaluate_iwae(5, None, SAMPLES, 13)
                .unwrap_or_else(|e| panic!("{file}: evaluate_iwae: {e}"))
        };
        if runtime == "reference" {
            // The trainer trains fused; its IWAE bound falls back to the reference path.
            assert!(tr.engine().starts_with("fused"), "{file}: {}", tr.engine());
            let r = iwae(&tr);
            assert_eq!(r.runtime, "reference", "{file}");
            assert!(r.elbo.is_finite(), "{file}: IWAE-5 {}", r.elbo);
            not_fused.push(file);
            continue;
        }
        let (f, r) = both(&file, &mut tr, iwae);
        let worst = agree(&format!("{file} (IWAE-5)"), &f, &r);
        eprintln!(
            "{file}: IWAE-5 {} draws, worst relative difference {worst:.2e}",
            f.n
        );
        fused.push(file);
    }
    for file in ["vae_digits.vmodel", "lgssm_filter.vmodel"] {
        assert!(fused.iter().any(|f| f == file), "{file}: {fused:?}");
    }
    assert_eq!(
        not_fused, IWAE_NOT_FUSED,
        "models whose IWAE bound the fused runtime does not run"
    );
}
