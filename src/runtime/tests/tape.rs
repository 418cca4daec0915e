//! SharedTape behaviour: values used twice / dropped keep their gradients; separate tapes
//! unify; unused parameters get zero gradients (exact comparisons: the functions are linear).

use dfdx::prelude::*;

use crate::runtime::nets::params::{ParamStore, Params};
use crate::runtime::ops::{cols, stop_gradient, sum_all};
use crate::runtime::{backward, Dev};

fn store() -> ParamStore {
    let mut st = ParamStore::new(Dev::default());
    st.insert_host("x", &[1, 3], vec![1.0, 2.0, 3.0]).unwrap();
    st.insert_host("unused", &[2], vec![1.0, 1.0]).unwrap();
    st
}

#[test]
fn dropping_the_first_use_keeps_gradients() {
    let st = store();
    let tr = st.trace();
    let h = tr.mat("x").unwrap() * 2.0;
    let a = h.clone() * 3.0; // a carries the same tape as h
    drop(a); // with OwnedTape-style handling this would lose h's backward op
    let loss = sum_all(h);
    let g = st.grads(&mut backward(loss));
    assert_eq!(g["x"], vec![2.0; 3]);
    assert_eq!(g["unused"], vec![0.0; 2]);
}

#[test]
fn with_empty_tape_branches_unify() {
    let st = store();
    let tr = st.trace();
    let x = tr.mat("x").unwrap() * 1.0;
    let other = x.with_empty_tape() * 5.0; // a separate tape, merged below
    let y = other + x.clone();
    drop(y.clone());
    let extra = x * 2.0; // recorded on the original tape after the merge
    let loss = sum_all(cols(y, 0, 3) + extra);
    let g = st.grads(&mut backward(loss));
    assert_eq!(g["x"], vec![8.0; 3]);
}

#[test]
fn stop_gradient_blocks() {
    let st = store();
    let tr = st.trace();
    let x = tr.mat("x").unwrap();
    let sg = stop_gradient(&x);
    let loss = sum_all(x * sg); // d/dx (x · sg(x)) = sg(x) = x
    let g = st.grads(&mut backward(loss));
    assert_eq!(g["x"], vec![1.0, 2.0, 3.0]);
}

#[test]
fn multi_output_functions_keep_gradients_of_each_output() {
    // split_loc_scale forks its input; using only the *second* output must still reach x
    use crate::runtime::dist::normal::{split_loc_scale, ScaleLink};
    let mut st = ParamStore::new(Dev::default());
    st.insert_host("x", &[1, 2], vec![0.5, -1.0]).unwrap();
    let tr = st.trace();
    let h = tr.mat("x").unwrap() * 2.0;
    let (loc, scale) = split_loc_scale(h, ScaleLink::Exp).unwrap();
    drop(loc);
    let g = st.grads(&mut backward(sum_all(scale)));
    // d/dx1 exp(2·x1) = 2·e^{−2}
    assert_eq!(g["x"][0], 0.0);
    assert!(
        (g["x"][1] - 2.0 * (-2.0f32).exp()).abs() < 1e-6,
        "{:?}",
        g["x"]
    );
}
