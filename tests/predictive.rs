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
    let mut one_step_models = Vec::new();
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
        // The reconstructions, then (where the model has them) the one-step predictions
        // from the stream where the reconstructions left it, as `vic sample` draws them.
        let one_step = tr.program.one_step_blocker().is_none();
        let one_step_fused = tr.one_step_runtime() == "fused";
        let draw = |tr: &vic::train::Trainer| {
            let mut r = rng::seeded(11);
            let mut x = tr
                .posterior_predictive(&batch, &mut r)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            if one_step {
                let nv = tr.program.model.vars.len();
                let o = tr
                    .one_step_predictive(&batch, &mut r)
                    .unwrap_or_else(|e| panic!("{file}: one step: {e}"));
                x.extend(o.into_iter().map(|(v, h)| (v + nv, h)));
            }
            x
        };
        let f = draw(&tr);
        tr.cfg.engine = EngineChoice::Reference;
        assert_eq!(tr.predictive_runtime(), "reference");
        let r = draw(&tr);
        if one_step {
            one_step_models.push((file.clone(), one_step_fused));
        }
        let m = &tr.program.model;
        let name = |v: usize| match m.vars.get(v) {
            Some(x) => x.name.clone(),
            None => format!("{}_onestep", m.vars[v - m.vars.len()].name),
        };
        let mut names: Vec<String> = r.keys().map(|v| name(*v)).collect();
        names.sort();
        assert_eq!(f.len(), r.len(), "{file}: variables drawn {names:?}");
        let mut worst = 0.0f64;
        for (v, rv) in &r {
            let fv = f
                .get(v)
                .unwrap_or_else(|| panic!("{file}: no `{}`", name(*v)));
            assert_eq!(fv.len(), rv.len(), "{file}: `{}`", name(*v));
            for (i, (a, b)) in fv.iter().zip(rv).enumerate() {
                let (a, b) = (f64::from(*a), f64::from(*b));
                // Step 1 of a one-step prediction has no posterior before it: NaN on both.
                if a.is_nan() && b.is_nan() {
                    continue;
                }
                let d = (a - b).abs() / a.abs().max(b.abs()).max(1.0);
                assert!(
                    d <= TOL,
                    "{file}: `{}`[{i}] fused {a} vs reference {b}",
                    name(*v)
                );
                worst = worst.max(d);
            }
        }
        eprintln!("{file}: {} variables, worst {worst:.1e}", r.len());
        checked.push(file);
    }
    // Every shipped model with data and no enumerated latent draws fused, and the one-step
    // predictions of the sequential ones (but `dmm`'s, whose q reads a net over time).
    assert!(checked.len() >= 10, "{checked:?}");
    let fused: Vec<_> = one_step_models.iter().filter(|(_, f)| *f).collect();
    assert!(fused.len() >= 6, "{one_step_models:?}");
}

/// `vic sample`'s draws from p — the prior predictive (`condition = 0`, every shipped model,
/// control problems from their inits) and, on models with data, q on the first 3 steps then
/// p open loop — are the same on both runtimes.
#[test]
fn draws_from_p_are_the_same_on_both_runtimes() {
    let mut fused = 0;
    for file in shipped_models() {
        let mut tr = trainer(&file, EngineChoice::Auto);
        for _ in 0..STEPS {
            tr.step().expect("trains");
        }
        let n = 5;
        let batch = match tr.train.clone() {
            Some(d) => {
                let idx: Vec<usize> = (0..n).map(|i| i % d.n).collect();
                data_batch(&tr.program, &d, &idx, 1)
            }
            None => vic::train::control_batch(&tr.program, n, common::shipped::STEPS_T),
        };
        // A chain summed out of p has no q to follow the data's steps, and a reverse net
        // reads steps conditioning hides: conditioning is refused (on both runtimes, before
        // either runs) with the reason.
        let m = &tr.program.model;
        let blocked = [
            (!vic::derive::marginal::chains(m).is_empty(), "summed out"),
            (file == "dmm.vmodel", "from its end"),
        ];
        let sequential = m.is_sequential() && tr.train.is_some();
        for (_, why) in blocked.iter().filter(|(b, _)| *b) {
            let e = tr.simulate(&batch, 3, &mut rng::seeded(13)).unwrap_err();
            assert!(e.to_string().contains(why), "{file}: {e}");
        }
        let sequential = sequential && !blocked.iter().any(|(b, _)| *b);
        let runtime = tr.draws_runtime();
        if runtime != "fused" {
            // Both sides would be the reference interpreter.
            continue;
        }
        fused += 1;
        for condition in [0, 3].into_iter().filter(|c| *c == 0 || sequential) {
            let f = tr.simulate(&batch, condition, &mut rng::seeded(13));
            let engine = tr.cfg.engine;
            tr.cfg.engine = EngineChoice::Reference;
            let r = tr.simulate(&batch, condition, &mut rng::seeded(13));
            tr.cfg.engine = engine;
            let (f, r) = match (f, r) {
                (Ok(f), Ok(r)) => (f, r),
                (f, r) => panic!("{file}: fused {:?} vs reference {:?}", f.err(), r.err()),
            };
            let m = &tr.program.model;
            let mut fk: Vec<_> = f.keys().map(|v| m.vars[*v].name.clone()).collect();
            let mut rk: Vec<_> = r.keys().map(|v| m.vars[*v].name.clone()).collect();
            fk.sort();
            rk.sort();
            assert_eq!(fk, rk, "{file} (condition {condition}): variables");
            let mut worst = 0.0f64;
            for (v, rv) in &r {
                let fv = &f[v];
                assert_eq!(fv.len(), rv.len(), "{file}: `{}`", m.vars[*v].name);
                for (i, (a, b)) in fv.iter().zip(rv).enumerate() {
                    let (a, b) = (f64::from(*a), f64::from(*b));
                    let d = (a - b).abs() / a.abs().max(b.abs()).max(1.0);
                    assert!(
                        d <= TOL,
                        "{file} (condition {condition}, {runtime}): `{}`[{i}] fused {a} vs reference {b}",
                        m.vars[*v].name
                    );
                    worst = worst.max(d);
                }
            }
            eprintln!(
                "{file} (condition {condition}, {runtime}): {} variables, worst {worst:.1e}",
                r.len()
            );
        }
    }
    // Every shipped model draws fused but the one with a net over time (`dmm`) and the two
    // with a Flat prior (`lqr`, `sac`), which have no draws on any runtime.
    assert!(fused >= 14, "{fused}");
}
