use std::collections::HashMap;
use vic::lower::{Batch, Program};
use vic::runtime::{rng, Dev};
fn main() {
    let src = std::fs::read_to_string("models/lg_toy.vmodel").unwrap();
    let m = vic::compile(&src, "lg_toy").unwrap();
    let prog = Program::new(m.ir(), &m.elbo()).unwrap();
    let dev: Dev = Default::default();
    let mut r = rng::seeded(0);
    let store = prog.init_params(&dev, &mut r).unwrap();
    let x = m.ir().var_id("x").unwrap();
    let b = 100_000;
    let batch = Batch {
        b,
        t: 1,
        data: HashMap::from([(x, vec![1.0; b])]),
        mask: None,
    };
    let f = prog
        .forward::<dfdx::prelude::NoneTape, _>(&store, &batch, &mut r, 0, 0.0)
        .unwrap();
    let v = f.elbo.as_vec();
    let mean: f64 = v.iter().map(|x| *x as f64).sum::<f64>() / b as f64;
    let sd = (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / b as f64).sqrt()
        / (b as f64).sqrt();
    println!("ELBO {mean:.5} ± {sd:.5} (closed form −1.709)");
}
