//! Ragged sequences: a sequence padded past its end with `mask = 0` must give exactly the
//! ELBO of the unpadded sequence. With one seed the first steps draw identical noise, and every
//! term of the padded steps is masked out, so the two agree to float rounding.

use std::collections::HashMap;
use vic::lower::{Batch, Program};
use vic::runtime::{backward, rng};

const SRC: &str = r#"
model lgssm {
  observed x[t] : real
  input    u[t] : real
  latent   z[t] : real
  param a : real = 0.5
  param m : real = 0.1
  param s : real = 0.5413248546
  init z[0] = 0
  init u[0] = 0
  p { z[1] ~ Normal(0, 1)
      z[t] ~ Normal(a * z[t-1] + u[t-1], 1)
      x[t] ~ Normal(z[t], 1) }
  q { z[t] ~ Normal(m + 0.5 * x[t] + 0.2 * z[t-1], softplus(s)) }
}"#;

#[test]
fn masked_padding_equals_the_unpadded_sequence() {
    let model = vic::compile(SRC, "lgssm.vmodel").expect("compiles");
    let prog = Program::new(model.ir(), &model.elbo()).expect("lowers");
    let dev = vic::runtime::Dev::default();
    let store = prog.init_params(&dev, &mut rng::seeded(0)).expect("params");
    let (x, u) = (
        model.ir().var_id("x").expect("x"),
        model.ir().var_id("u").expect("u"),
    );
    // Two sequences (b = 2), time-major rows.
    let xs = [[1.0f32, -0.5], [0.3, 0.2], [-0.4, 0.9]];
    let us = [[0.1f32, 0.0], [-0.2, 0.3], [0.0, 0.1]];
    let flat = |v: &[[f32; 2]]| {
        v.iter()
            .flat_map(|r| r.iter().copied())
            .collect::<Vec<f32>>()
    };
    let short = Batch {
        b: 2,
        t: 3,
        data: HashMap::from([(x, flat(&xs)), (u, flat(&us))]),
        mask: None,
    };
    let mut xp = xs.to_vec();
    xp.extend([[7.0, -7.0], [5.0, 3.0]]); // garbage past the end
    let mut up = us.to_vec();
    up.extend([[9.0, 9.0], [-9.0, 4.0]]);
    let mask = vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    let padded = Batch {
        b: 2,
        t: 5,
        data: HashMap::from([(x, flat(&xp)), (u, flat(&up))]),
        mask: Some(mask),
    };
    let run = |batch: &Batch| {
        let traced = store.trace();
        let f = prog
            .forward(&traced, batch, &mut rng::seeded(42), 0, 0.0)
            .expect("forward");
        let elbo = f.elbo.as_vec();
        let g = store.grads(&mut backward(f.objective));
        (elbo, g)
    };
    let (e_short, g_short) = run(&short);
    let (e_pad, g_pad) = run(&padded);
    for (a, b) in e_short.iter().zip(&e_pad) {
        assert!(
            (a - b).abs() < 1e-4,
            "ELBO per sequence: unpadded {a} vs masked padding {b}"
        );
    }
    for (name, gs) in &g_short {
        for (a, b) in gs.iter().zip(&g_pad[name]) {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + a.abs()),
                "{name}: unpadded {a} vs padded {b}"
            );
        }
    }
    // And the mask matters: without it the padding changes the value.
    let unmasked = Batch {
        mask: None,
        ..padded.clone()
    };
    let (e_un, _) = run(&unmasked);
    assert!(
        (e_un[0] - e_short[0]).abs() > 0.1,
        "the garbage steps must count when unmasked"
    );
}
