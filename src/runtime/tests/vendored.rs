//! The patches to the vendored dfdx (vendor/dfdx/PATCHES.md): slice gradients accumulate, and
//! CPU tensors and gradients expose their buffers. Exact comparisons: the functions are linear.

use dfdx::prelude::*;

use crate::runtime::nets::params::{ParamStore, Params};
use crate::runtime::ops::{cols, rows, sum_all};
use crate::runtime::tape::fork;
use crate::runtime::{backward, Dev};

/// `x = [1, 2, 3]`, `loss = Σ x[0..2] + 2·Σ x[1..3]` → `∂loss/∂x = [1, 1 + 2, 2] = [1, 3, 2]`.
/// Before the patch the second slice's backward overwrote the first's: `[1, 2, 2]` or
/// `[1, 1, 2]`, by execution order.
#[test]
fn overlapping_col_slices_accumulate() {
    let mut st = ParamStore::new(Dev::default());
    st.insert_host("x", &[1, 3], vec![1.0, 2.0, 3.0]).unwrap();
    let tr = st.trace();
    let (a, b) = fork(tr.mat("x").unwrap());
    let loss = sum_all(cols(a, 0, 2)) + sum_all(cols(b, 1, 3)) * 2.0;
    assert_eq!(loss.as_vec(), vec![3.0 + 2.0 * 5.0]);
    let g = st.grads(&mut backward(loss));
    assert_eq!(g["x"], vec![1.0, 3.0, 2.0]);
}

/// The same along rows, with a third use of the whole tensor on top: `loss = Σ x[0..2] +
/// 2·Σ x[1..3] + 10·Σ x` → `[11, 13, 12]` (a slice must not overwrite what other ops added).
#[test]
fn overlapping_row_slices_accumulate_with_other_uses() {
    let mut st = ParamStore::new(Dev::default());
    st.insert_host("x", &[3, 1], vec![1.0, 2.0, 3.0]).unwrap();
    let tr = st.trace();
    let (a, rest) = fork(tr.mat("x").unwrap());
    let (b, c) = fork(rest);
    let loss = sum_all(c) * 10.0 + sum_all(rows(a, 0, 2)) + sum_all(rows(b, 1, 3)) * 2.0;
    let g = st.grads(&mut backward(loss));
    assert_eq!(g["x"], vec![11.0, 13.0, 12.0]);
}

#[test]
fn cpu_tensor_host_slices() {
    let cpu = Cpu::default();
    let a: Tensor<(usize, usize), f32, Cpu> =
        cpu.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], (2, 3));
    assert!(a.is_contiguous());
    assert_eq!(a.host_slice(), Some(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0][..]));
    // copy-on-write: writing through a clone leaves the original alone
    let mut b = a.clone();
    b.host_slice_mut().unwrap()[4] = -5.0;
    assert_eq!(b.as_vec(), vec![1.0, 2.0, 3.0, 4.0, -5.0, 6.0]);
    assert_eq!(a.as_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // strided views have no row-major buffer
    let v: Tensor<(usize,), f32, Cpu> = cpu.tensor_from_vec(vec![1.0, 2.0], (2,));
    let mut bc = v.broadcast_like::<_, Axis<0>>(&(3, 2));
    assert!(!bc.is_contiguous());
    assert!(bc.host_slice().is_none());
    assert!(bc.host_slice_mut().is_none());
    let t = a.clone().permute::<_, Axes2<1, 0>>();
    assert!(t.host_slice().is_none());
}

#[test]
fn cpu_gradient_host_slices() {
    let cpu = Cpu::default();
    let x: Tensor<(usize,), f32, Cpu> = cpu.tensor_from_vec(vec![1.0, 2.0, 3.0], (3,));
    let c: Tensor<(usize,), f32, Cpu> = cpu.tensor_from_vec(vec![1.0, 2.0, 3.0], (3,));
    let loss = (x.leaky_trace() * c).sum::<(), _>(); // ∂/∂x Σ x·c = c
    let mut grads = loss.backward();
    assert_eq!(grads.host_slice(&x), Some(&[1.0, 2.0, 3.0][..]));
    // writes land in the buffer `get` reads
    grads.host_slice_mut(&x).unwrap()[0] += 10.0;
    assert_eq!(grads.get(&x).as_vec(), vec![11.0, 2.0, 3.0]);
    // absent gradients: none to read; writing allocates zeros
    let y: Tensor<(usize,), f32, Cpu> = cpu.tensor_from_vec(vec![0.0; 2], (2,));
    assert!(grads.host_slice(&y).is_none());
    assert_eq!(grads.host_slice_mut(&y).unwrap(), &mut [0.0, 0.0][..]);
}
