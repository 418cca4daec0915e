//! Tests of the runtime: KL vs Monte Carlo, gradients vs finite differences, Adam vs a hand
//! computation, every family's density, entropy and KL against quadrature, checkpoints,
//! determinism, tape behaviour, the vendored dfdx's patches.

mod checkpoint;
mod determinism;
mod families;
mod grad_fd;
mod kl_mc;
mod optim;
mod quadrature;
mod special;
mod tape;
mod values;
mod vendored;

use dfdx::prelude::*;
use rand::Rng as _;

use super::nets::params::{ParamStore, Traced};
use super::ops::{from_host, sum_all};
use super::rng::{seeded, Rng};
use super::{backward, Dev, Tp, T2};

/// A store of named `(rows, cols)` inputs drawn from `U(lo, hi)`.
pub fn store_with(inputs: &[(&str, usize, usize, f32, f32)], rng: &mut Rng) -> ParamStore {
    let mut s = ParamStore::new(Dev::default());
    for &(name, r, c, lo, hi) in inputs {
        let v = (0..r * c).map(|_| rng.gen_range(lo..hi)).collect();
        s.insert_host(name, &[r, c], v).unwrap();
    }
    s
}

/// Checks reverse-mode gradients of `loss = Σ out ⊙ W` (W fixed random) w.r.t. every
/// parameter of `store` against central differences with step `h`: for up to `per_param`
/// random entries of each parameter, `|ad − fd| ≤ atol + rtol·max(|ad|, |fd|)`. Also
/// requires some gradient to be non-zero (a silently-zero gradient fails).
pub fn check_grads<F: Fn(&Traced) -> T2<Tp>>(
    store: &ParamStore,
    f: F,
    h: f32,
    rtol: f64,
    atol: f64,
) {
    let per_param = 12;
    let mut rng = seeded(99);
    let out = f(&store.trace());
    let (r, c) = *out.shape();
    let w: Vec<f32> = (0..r * c).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let wt = from_host(store.device(), w.clone(), r, c);
    let mut grads = backward(sum_all(out * wt));
    let ad = store.grads(&mut grads);
    let eval = |s: &ParamStore| -> f64 {
        let o = f(&s.trace()).as_vec();
        o.iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let mut max_abs = 0.0f64;
    for (name, p) in store.iter() {
        let base = p.to_host();
        let n = base.len();
        let idx: Vec<usize> = if n <= per_param {
            (0..n).collect()
        } else {
            (0..per_param).map(|_| rng.gen_range(0..n)).collect()
        };
        for i in idx {
            let mut sp = store.clone();
            let mut v = base.clone();
            v[i] = base[i] + h;
            sp.get_mut(name).unwrap().set_host(&v);
            let lp = eval(&sp);
            v[i] = base[i] - h;
            sp.get_mut(name).unwrap().set_host(&v);
            let lm = eval(&sp);
            let fd = (lp - lm) / (2.0 * h as f64);
            let g = ad[name][i] as f64;
            max_abs = max_abs.max(fd.abs()).max(g.abs());
            assert!(
                (g - fd).abs() <= atol + rtol * g.abs().max(fd.abs()),
                "gradient of `{name}`[{i}]: reverse mode {g}, finite difference {fd}"
            );
        }
    }
    assert!(max_abs > 1e-3, "all gradients are (near) zero");
}

/// Mean and standard error of samples.
pub fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}
