//! The posterior predictive on the two runtimes: a trainer that trains on the fused runtime
//! draws `vic sample --posterior`'s reconstructions there, and they are the reference
//! interpreter's draws from the same parameters, data and seed — every observed variable and
//! every latent of every shipped model with data (exact enumeration, and a chain summed out —
//! drawn from its posterior by forward filtering, backward sampling — draw on the reference
//! runtime, and say so).

mod common;

use common::shipped::{shipped_models, trainer};
use vic::runtime::rng;
use vic::train::{data_batch, EngineChoice};

/// Steps trained before drawing (so the parameters are not the initial ones).
const STEPS: usize = 3;
/// Draws per sequence.
const DRAWS: usize = 2;
/// Relative (absolute below 1). The same parameters and noise give draws that differ by
/// float rounding only (summation order of the products); a Bernoulli or categorical draw
/// compares its uniform against a probability, so rounding could flip one in ~1e-6 of the
/// elements — none did on the shipped models; a difference in noise order, data layout or a
/// factor moves values by far more than 1e-4.
const TOL: f64 = 1e-4;

#[test]
fn the_posterior_predictive_is_the_same_on_both_runtimes() {
    let mut checked = Vec::new();
    for file in shipped_models() {
        let mut tr = trainer(&file, EngineChoice::Auto);
        if tr.program.model.is_control() {
            continue;
        }
        for _ in 0..STEPS {
            tr.step().expect("trains");
        }
        let d = tr.train.clone().expect("data");
        let seqs = d.n.min(5);
        let idx: Vec<usize> = (0..DRAWS).flat_map(|_| 0..seqs).collect();
        let batch = data_batch(&tr.program, &d, &idx, 1);
        let runtime = tr.predictive_runtime();
        let chains = vic::derive::marginal::chains(&tr.program.model);
        if tr.program.enumerated().is_some() || !chains.is_empty() {
            assert_eq!(runtime, "reference", "{file}");
            continue;
        }
        assert_eq!(runtime, "fused", "{file}");
        let f = tr
            .posterior_predictive(&batch, &mut rng::seeded(11))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        tr.cfg.engine = EngineChoice::Reference;
        assert_eq!(tr.predictive_runtime(), "reference");
        let r = tr
            .posterior_predictive(&batch, &mut rng::seeded(11))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let m = &tr.program.model;
        let mut names: Vec<&str> = r.keys().map(|v| m.vars[*v].name.as_str()).collect();
        names.sort();
        assert_eq!(f.len(), r.len(), "{file}: variables drawn {names:?}");
        let mut worst = 0.0f64;
        for (v, rv) in &r {
            let fv = f
                .get(v)
                .unwrap_or_else(|| panic!("{file}: no `{}`", m.vars[*v].name));
            assert_eq!(fv.len(), rv.len(), "{file}: `{}`", m.vars[*v].name);
            for (i, (a, b)) in fv.iter().zip(rv).enumerate() {
                let (a, b) = (f64::from(*a), f64::from(*b));
                let d = (a - b).abs() / a.abs().max(b.abs()).max(1.0);
                assert!(
                    d <= TOL,
                    "{file}: `{}`[{i}] fused {a} vs reference {b}",
                    m.vars[*v].name
                );
                worst = worst.max(d);
            }
        }
        eprintln!("{file}: {} variables, worst {worst:.1e}", r.len());
        checked.push(file);
    }
    // Every shipped model with data and no enumerated latent draws fused.
    assert!(checked.len() >= 10, "{checked:?}");
}
