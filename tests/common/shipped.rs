//! The shipped models (`models/*.vmodel`) as small trainers: each model's data cut to a few
//! sequences of a few steps, the same configuration on either runtime (the runtime tests).

use std::path::{Path, PathBuf};

use vic::data::Dataset;
use vic::lower::Program;
use vic::train::{specs_of, EngineChoice, TrainConfig, Trainer};

/// Sequences kept of a shipped data set and steps kept of each (the tests' size).
pub const ROWS: usize = 24;
pub const STEPS_T: usize = 8;

/// `models/`.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// The file names of every shipped model that `vic run` trains, sorted: a model with known
/// dynamics (`imagine { … start = prior }`) has no ELBO to train (`vic agent` runs it;
/// `tests/known.rs` checks it).
pub fn shipped_models() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(models_dir())
        .expect("models/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".vmodel"))
        .filter(|n| {
            let src = std::fs::read_to_string(models_dir().join(n)).expect("a model file");
            let m = vic::compile(&src, n).expect("a shipped model compiles");
            !(m.ir().behaviour.as_ref()).is_some_and(|b| b.start == vic::ir::ImagineStart::Prior)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 17, "{files:?}");
    files
}

/// The first `rows` sequences of `d`, each cut to its first `t` steps (and its mask).
pub fn truncate(d: &Dataset, rows: usize, t: usize) -> Dataset {
    let idx: Vec<usize> = (0..rows.min(d.n)).collect();
    let mut d = d.gather(&idx);
    let Some(t0) = d.t else { return d };
    if t0 <= t {
        return d;
    }
    for (name, a) in d.arrays.iter_mut() {
        let l = &d.layout[name];
        if !l.timed {
            continue;
        }
        let mut out = Vec::with_capacity(d.n * t * l.size);
        for r in 0..d.n {
            out.extend_from_slice(&a[r * t0 * l.size..(r * t0 + t) * l.size]);
        }
        *a = out;
    }
    if let Some(m) = &mut d.mask {
        let mut out = Vec::with_capacity(d.n * t);
        for r in 0..d.n {
            out.extend_from_slice(&m[r * t0..r * t0 + t]);
        }
        *m = out;
    }
    d.t = Some(t);
    d
}

/// A trainer of shipped model `file` on `engine`: its data cut to [`ROWS`] sequences of
/// [`STEPS_T`] steps (rollouts of [`STEPS_T`] steps for a control problem), batch 6, seed 5,
/// nothing held out.
pub fn trainer(file: &str, engine: EngineChoice) -> Trainer {
    let path = models_dir().join(file);
    let src = std::fs::read_to_string(&path).expect("model file");
    let m = vic::compile(&src, file).expect("compiles");
    let p = Program::new(m.ir(), &m.elbo()).expect("lowers");
    let data = p.model.data.as_ref().map(|rel| {
        let d = vic::data::load(
            path.parent().unwrap().join(rel),
            &specs_of(&p),
            p.plan.max_lag as usize + 1,
        )
        .expect("shipped data loads");
        truncate(&d, ROWS, STEPS_T)
    });
    let cfg = TrainConfig {
        batch: 6,
        seed: 5,
        holdout: 0.0,
        horizon: Some(STEPS_T),
        engine,
        ..TrainConfig::default()
    };
    Trainer::new(p, data, cfg).expect("trainer")
}
