//! Distribution families on `(rows, cols)` parameters; densities are summed over cols to
//! `(rows, 1)` (the `*_elem` variants keep `(rows, cols)`).

pub mod bernoulli;
pub mod beta;
pub mod categorical;
pub mod flat;
pub mod gamma;
pub mod laplace;
pub mod lognormal;
pub mod mvn;
pub mod normal;
pub mod poisson;
pub mod student_t;
pub mod tanh_normal;
pub mod uniform;

use crate::runtime::ops::{from_host, stop_gradient};
use crate::runtime::special;
use dfdx::prelude::*;

use crate::runtime::tape::{fork, RtTape};
use crate::runtime::T2;

/// `f(x)` elementwise, computed on the host in f64 (`f` returns the value and its
/// derivative): the value is `f(x)`, the gradient reaching `x` is `f′(x)` times the incoming
/// one (`sg(f(x)) + sg(f′(x))·(x − sg(x))`, first order, which is all reverse mode needs).
pub fn host_map<T: RtTape>(x: T2<T>, f: impl Fn(f64) -> (f64, f64)) -> T2<T> {
    let (r, c) = *x.shape();
    let (v, d): (Vec<f32>, Vec<f32>) = x
        .as_vec()
        .iter()
        .map(|&a| {
            let (y, dy) = f(f64::from(a));
            (y as f32, dy as f32)
        })
        .unzip();
    let dev = x.device().clone();
    let sg = stop_gradient(&x);
    (x - sg) * from_host(&dev, d, r, c) + from_host(&dev, v, r, c)
}

/// `ln Γ(x)` elementwise, with gradient ψ(x).
pub fn ln_gamma<T: RtTape>(x: T2<T>) -> T2<T> {
    host_map(x, |a| (special::ln_gamma(a), special::digamma(a)))
}

/// ψ(x) elementwise, with gradient ψ′(x).
pub fn digamma<T: RtTape>(x: T2<T>) -> T2<T> {
    host_map(x, |a| (special::digamma(a), special::trigamma(a)))
}

/// `ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b)` elementwise.
pub fn ln_beta<T: RtTape>(a: T2<T>, b: T2<T>) -> T2<T> {
    let (a1, a2) = fork(a);
    let (b1, b2) = fork(b);
    ln_gamma(a1) + ln_gamma(b1) - ln_gamma(a2 + b2)
}
