use std::collections::BTreeMap;
use vic::data::{Dataset, RawArray};
use vic::lower::Program;
use vic::train::{specs_of, TrainConfig, Trainer};
fn main() {
    for file in ["models/lgssm_smooth.vmodel", "models/lgssm_filter.vmodel"] {
        let src = std::fs::read_to_string(file).unwrap();
        let m = vic::compile(&src, file).unwrap();
        let prog = Program::new(m.ir(), &m.elbo()).unwrap();
        let raw = BTreeMap::from([(
            "x".to_string(),
            RawArray::new(vec![1, 3], vec![1.0, -0.5, 0.3]),
        )]);
        let d = Dataset::from_raw("x", raw, &specs_of(&prog), 1).unwrap();
        let cfg = TrainConfig {
            batch: 64,
            lr: 1e-2,
            holdout: 0.0,
            cosine_total: Some(6000),
            ..Default::default()
        };
        let mut tr = Trainer::new(prog, Some(d), cfg).unwrap();
        for _ in 0..6000 {
            tr.step().unwrap();
        }
        let r = tr.evaluate(None, 20000, 1).unwrap();
        println!("{file}: {}", r.text().lines().next().unwrap());
    }
}
