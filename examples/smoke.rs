use std::collections::BTreeMap;
use vic::data::{Dataset, RawArray};
use vic::lower::Program;
use vic::train::{specs_of, TrainConfig, Trainer};
fn main() {
    let src = std::fs::read_to_string("models/lg_toy.vmodel").unwrap();
    let m = vic::compile(&src, "lg_toy").unwrap();
    let prog = Program::new(m.ir(), &m.elbo()).unwrap();
    let raw = BTreeMap::from([("x".to_string(), RawArray::new(vec![1], vec![1.0]))]);
    let d = Dataset::from_raw("x=1", raw, &specs_of(&prog), 1).unwrap();
    let cfg = TrainConfig {
        batch: 64,
        lr: 1e-2,
        holdout: 0.0,
        ..Default::default()
    };
    let mut tr = Trainer::new(prog, Some(d), cfg).unwrap();
    let t0 = std::time::Instant::now();
    for i in 0..3000 {
        let s = tr.step().unwrap();
        if i % 500 == 0 {
            println!("{} {:.4}", s.step, s.elbo);
        }
    }
    println!("{:.1} steps/s", 3000.0 / t0.elapsed().as_secs_f64());
    let r = tr.evaluate(None, 20000, 1).unwrap();
    print!("{}", r.text());
    for (k, p) in tr.store.iter() {
        println!("{k} = {:?}", p.to_host());
    }
}
