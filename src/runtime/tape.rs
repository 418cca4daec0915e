//! A shared autodiff tape for dfdx 0.13, plus the [`RtTape`] abstraction over tapes.
//!
//! dfdx's `OwnedTape` lives inside one tensor: using a value twice needs `with_empty_tape()`
//! and gradients silently vanish when the tape-carrying copy is dropped. [`SharedTape`] keeps
//! the backward ops in one reference-counted list shared by every tensor traced from it;
//! tapes created separately (e.g. by `with_empty_tape`) are unified on merge (union-find), so
//! no op is ever lost. Backward ops are ordered by a global sequence number.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use dfdx::prelude::{Backward, Gradients, Merge, NoneTape, OwnedTape, PutTape, SplitTape, Tape};
use dfdx::shapes::Shape;
use dfdx::tensor::{HasErr, Storage, Tensor};

use super::{Dev, Tp, T0};

type BackOp<E, D> = Box<dyn FnOnce(&mut Gradients<E, D>) -> Result<(), <D as HasErr>::Err>>;

enum Node<E, D: Storage<E>> {
    Root(Vec<(u64, BackOp<E, D>)>),
    Link(Rc<RefCell<Node<E, D>>>),
}

/// A tape shared by all tensors traced from it (cloning the tensor shares the tape).
pub struct SharedTape<E, D: Storage<E>> {
    node: Rc<RefCell<Node<E, D>>>,
}

fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

impl<E, D: Storage<E>> SharedTape<E, D> {
    /// A fresh, empty tape.
    pub fn new() -> Self {
        Self {
            node: Rc::new(RefCell::new(Node::Root(Vec::new()))),
        }
    }

    fn root(&self) -> Rc<RefCell<Node<E, D>>> {
        let mut cur = self.node.clone();
        loop {
            let next = match &*cur.borrow() {
                Node::Root(_) => None,
                Node::Link(n) => Some(n.clone()),
            };
            match next {
                None => return cur,
                Some(n) => cur = n,
            }
        }
    }

    /// Number of recorded backward ops.
    pub fn len(&self) -> usize {
        match &*self.root().borrow() {
            Node::Root(ops) => ops.len(),
            Node::Link(_) => unreachable!("root is never a link"),
        }
    }

    /// Whether no op has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns all ops in execution (forward) order.
    fn take_ops(&self) -> Vec<(u64, BackOp<E, D>)> {
        let root = self.root();
        let mut node = root.borrow_mut();
        let mut ops = match &mut *node {
            Node::Root(ops) => std::mem::take(ops),
            Node::Link(_) => unreachable!("root is never a link"),
        };
        ops.sort_by_key(|(k, _)| *k);
        ops
    }
}

impl<E, D: Storage<E>> Default for SharedTape<E, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E, D: Storage<E>> Clone for SharedTape<E, D> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
        }
    }
}

impl<E, D: Storage<E>> std::fmt::Debug for SharedTape<E, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTape")
            .field("num_operations", &self.len())
            .finish()
    }
}

impl<E, D: Storage<E>> Merge<NoneTape> for SharedTape<E, D> {
    fn merge(self, _: NoneTape) -> Self {
        self
    }
}

impl<E, D: Storage<E>> Merge<SharedTape<E, D>> for SharedTape<E, D> {
    fn merge(self, other: Self) -> Self {
        let a = self.root();
        let b = other.root();
        if !Rc::ptr_eq(&a, &b) {
            let taken = std::mem::replace(&mut *b.borrow_mut(), Node::Link(a.clone()));
            if let (Node::Root(mut theirs), Node::Root(mine)) = (taken, &mut *a.borrow_mut()) {
                mine.append(&mut theirs);
            }
        }
        self
    }
}

impl<E, D: Storage<E>> Tape<E, D> for SharedTape<E, D> {
    const OWNS_TAPE: bool = true;
    fn add_backward_op<F>(&mut self, operation: F)
    where
        F: 'static + FnOnce(&mut Gradients<E, D>) -> Result<(), D::Err>,
    {
        let root = self.root();
        let mut node = root.borrow_mut();
        if let Node::Root(ops) = &mut *node {
            ops.push((next_seq(), Box::new(operation)));
        }
    }
}

/// Tapes the runtime's functions accept: `NoneTape` (evaluation), [`SharedTape`] (training),
/// dfdx's `OwnedTape`.
pub trait RtTape: Tape<f32, Dev> + Merge<Self> + Merge<NoneTape> {
    /// A tape for a second use of a value: the same tape for [`SharedTape`]/`NoneTape`, an
    /// empty one for `OwnedTape` (whose ops stay with the first use).
    fn fork(&self) -> Self;
}

impl RtTape for NoneTape {
    fn fork(&self) -> Self {
        NoneTape
    }
}

impl RtTape for SharedTape<f32, Dev> {
    fn fork(&self) -> Self {
        self.clone()
    }
}

impl RtTape for OwnedTape<f32, Dev> {
    fn fork(&self) -> Self {
        OwnedTape::default()
    }
}

/// Two handles of one tensor.
pub type Pair<S, T> = (Tensor<S, f32, Dev, T>, Tensor<S, f32, Dev, T>);

/// Splits `x` into two handles of the same tensor (same id) for two uses; with `OwnedTape`
/// the first one carries the tape.
pub fn fork<S: Shape, T: RtTape>(x: Tensor<S, f32, Dev, T>) -> Pair<S, T> {
    let (v, tape) = x.split_tape();
    let t2 = tape.fork();
    (v.clone().put_tape(tape), v.put_tape(t2))
}

/// A second handle to `x` (same id, forked tape), leaving `x` usable.
pub fn dup<S: Shape, T: RtTape>(x: &mut Tensor<S, f32, Dev, T>) -> Tensor<S, f32, Dev, T> {
    let placeholder = x.retaped::<T>();
    let (a, b) = fork(std::mem::replace(x, placeholder));
    *x = a;
    b
}

/// Runs backward from a scalar loss on a [`SharedTape`]. Consumes the tape's ops: call once
/// per traced forward pass. Gradients are keyed by tensor id; read parameter gradients with
/// [`super::nets::params::ParamStore::grads`].
pub fn backward(loss: T0<Tp>) -> Gradients<f32, Dev> {
    let (l, shared) = loss.split_tape();
    let mut owned: OwnedTape<f32, Dev> = OwnedTape::default();
    for (_, op) in shared.take_ops() {
        owned.add_backward_op(op);
    }
    l.put_tape(owned).backward()
}
