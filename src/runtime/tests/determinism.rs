//! Same seed → bit-identical init, noise, samples and a full training step.

use dfdx::prelude::*;

use crate::runtime::dist::{bernoulli, normal};
use crate::runtime::nets::mlp::{add_mlp, mlp_forward, Activation};
use crate::runtime::nets::params::{ParamStore, Params};
use crate::runtime::ops::{mean_all, stop_gradient};
use crate::runtime::optim::{Adam, AdamConfig};
use crate::runtime::rng::{normal_noise, seeded};
use crate::runtime::{backward, Dev};

/// Init a tiny VAE, run 3 Adam steps of the negative ELBO; return all parameters.
fn run(seed: u64) -> Vec<Vec<f32>> {
    let dev = Dev::default();
    let mut rng = seeded(seed);
    let mut st = ParamStore::new(dev.clone());
    add_mlp(&mut st, "enc", &[4, 8, 4], &mut rng).unwrap();
    add_mlp(&mut st, "dec", &[2, 8, 4], &mut rng).unwrap();
    let mut adam = Adam::new(AdamConfig::default());
    let x = crate::runtime::rng::uniform_noise(&dev, &mut rng, 5, 4);
    for _ in 0..3 {
        let tr = st.trace();
        let h = mlp_forward(&tr, "enc", tr.input(x.clone()), Activation::Tanh).unwrap();
        let (loc, scale) =
            normal::split_loc_scale(h, normal::ScaleLink::Softplus { min_scale: 1e-3 }).unwrap();
        let z = normal::rsample(
            loc.clone(),
            scale.clone(),
            normal_noise(&dev, &mut rng, 5, 2),
        );
        let logits = mlp_forward(&tr, "dec", z.clone(), Activation::Tanh).unwrap();
        let _sample = bernoulli::sample(&stop_gradient(&logits), &mut rng);
        let zeros = tr.input(dev.tensor_from_vec(vec![0.0; 10], (5, 2)));
        let ones = tr.input(dev.tensor_from_vec(vec![1.0; 10], (5, 2)));
        let elbo = bernoulli::log_prob(tr.input(x.clone()), logits)
            + normal::log_prob(z.clone(), zeros, ones)
            - normal::log_prob(z, loc, scale);
        let loss = mean_all(elbo.negate());
        let g = st.grads(&mut backward(loss));
        adam.update(&mut st, &g, 1e-2).unwrap();
    }
    st.iter().map(|(_, p)| p.to_host()).collect()
}

#[test]
fn same_seed_same_bits() {
    let a = run(7);
    let b = run(7);
    let c = run(8);
    assert_eq!(a, b);
    assert_ne!(a, c);
    let dev = Dev::default();
    assert_eq!(
        normal_noise(&dev, &mut seeded(3), 4, 4).as_vec(),
        normal_noise(&dev, &mut seeded(3), 4, 4).as_vec()
    );
}
