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

/// Padding of likelihoods whose support excludes 0 (LogNormal, Gamma: values > 0; Beta: the
/// open unit interval). The loader fills masked-out steps with a value inside each support
/// (`ValueKind::pad`), so NaN padding in the file gives exactly the ELBO and gradients of the
/// unpadded sequences; a padded 0 was ln 0 = −∞ on the padded steps, and −∞ · 0 = NaN.
#[test]
fn padding_of_positive_and_unit_likelihoods_is_harmless() {
    use std::collections::BTreeMap;
    use vic::data::{Dataset, RawArray};
    const POS: &str = r#"
model pos {
  observed y[t] : real
  observed g[t] : real
  observed w[t] : unit
  latent   z : real
  param m : real = 0.2
  p { z ~ Normal(0, 1)
      y[t] ~ LogNormal(z, 0.5)
      g[t] ~ Gamma(softplus(z) + 1, 2)
      w[t] ~ Beta(softplus(z) + 1, 2) }
  q { z ~ Normal(m, 0.3) }
}"#;
    let model = vic::compile(POS, "pos.vmodel").expect("compiles");
    let prog = Program::new(model.ir(), &model.elbo()).expect("lowers");
    let store = prog
        .init_params(&vic::runtime::Dev::default(), &mut rng::seeded(0))
        .expect("params");
    let specs = vic::train::specs_of(&prog);
    // Two sequences of 3 observed steps, (N, T) row-major.
    let ys = [[0.5f32, 1.5, 2.0], [0.8, 0.3, 1.1]];
    let ws = [[0.2f32, 0.7, 0.4], [0.9, 0.1, 0.5]];
    let load = |t: usize| {
        let arr = |v: &[[f32; 3]]| {
            let data = v
                .iter()
                .flat_map(|r| (0..t).map(move |s| if s < 3 { r[s] } else { f32::NAN }))
                .collect();
            RawArray::new(vec![2, t], data)
        };
        let mut raw = BTreeMap::from([
            ("y".to_string(), arr(&ys)),
            ("g".to_string(), arr(&ys)),
            ("w".to_string(), arr(&ws)),
        ]);
        if t > 3 {
            let mask = (0..2 * t).map(|i| f32::from(u8::from(i % t < 3))).collect();
            raw.insert("mask".to_string(), RawArray::new(vec![2, t], mask));
        }
        Dataset::from_raw("inline.npz", raw, &specs, 1).expect("valid data")
    };
    let run = |d: &Dataset| {
        let batch = vic::train::data_batch(&prog, d, &[0, 1], 1);
        let traced = store.trace();
        let f = prog
            .forward(&traced, &batch, &mut rng::seeded(42), 0, 0.0)
            .expect("forward");
        let elbo = f.elbo.as_vec();
        (elbo, store.grads(&mut backward(f.objective)))
    };
    let (e_short, g_short) = run(&load(3));
    let padded = load(5);
    assert_eq!(padded.array("y").unwrap()[3..5], [1.0, 1.0]);
    assert_eq!(padded.array("w").unwrap()[3..5], [0.5, 0.5]);
    let (e_pad, g_pad) = run(&padded);
    for (a, b) in e_short.iter().zip(&e_pad) {
        assert!(
            a.is_finite() && (a - b).abs() < 1e-4,
            "unpadded {a} vs padded {b}"
        );
    }
    for (name, gs) in &g_short {
        for (a, b) in gs.iter().zip(&g_pad[name]) {
            assert!(
                b.is_finite() && (a - b).abs() < 1e-4 * (1.0 + a.abs()),
                "{name}: unpadded {a} vs padded {b}"
            );
        }
    }
}
