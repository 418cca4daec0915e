//! `ParamStore`: an ordered map name → parameter, plus tracing and gradient read-out.
//!
//! Layout convention: a weight is stored `(in, out)` (so `y = x @ w + b`, no transpose —
//! PyTorch stores `(out, in)`), a bias `(out,)`. Init is PyTorch's default for `Linear`/`GRU`:
//! `U(−1/√fan_in, 1/√fan_in)` for weights and biases.

use std::collections::BTreeMap;

use dfdx::prelude::*;
use rand::Rng as _;

use crate::runtime::rng::Rng;
use crate::runtime::{Dev, RtError, Tp, T1, T2};

/// One parameter tensor.
#[derive(Clone, Debug)]
pub enum Param {
    /// A matrix `(rows, cols)`.
    Mat(T2),
    /// A vector `(n,)`.
    Vec(T1),
}

impl Param {
    /// The shape as a list of dims.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Param::Mat(t) => vec![t.shape().0, t.shape().1],
            Param::Vec(t) => vec![t.shape().0],
        }
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape().iter().product()
    }
    /// Row-major host copy.
    pub fn to_host(&self) -> Vec<f32> {
        match self {
            Param::Mat(t) => t.as_vec(),
            Param::Vec(t) => t.as_vec(),
        }
    }
    /// Overwrites the values in place (same tensor id); `v.len()` must equal `numel()`.
    pub fn set_host(&mut self, v: &[f32]) {
        match self {
            Param::Mat(t) => t.copy_from(v),
            Param::Vec(t) => t.copy_from(v),
        }
    }
    /// The gradient of this parameter in `grads` (zeros when it got none).
    fn grad(&self, grads: &mut Gradients<f32, Dev>) -> Vec<f32> {
        match self {
            Param::Mat(t) => {
                grads.get_or_alloc_mut(t).expect("cpu alloc");
                grads.get(t).as_vec()
            }
            Param::Vec(t) => {
                grads.get_or_alloc_mut(t).expect("cpu alloc");
                grads.get(t).as_vec()
            }
        }
    }
}

/// Host gradients, one per parameter name (same order as the store).
pub type GradMap = BTreeMap<String, Vec<f32>>;

/// All parameters of a model, by name (sorted).
#[derive(Clone, Debug)]
pub struct ParamStore {
    dev: Dev,
    params: BTreeMap<String, Param>,
}

impl ParamStore {
    /// An empty store on `dev`.
    pub fn new(dev: Dev) -> Self {
        Self {
            dev,
            params: BTreeMap::new(),
        }
    }
    /// The device.
    pub fn device(&self) -> &Dev {
        &self.dev
    }
    /// Adds a parameter; errors if the name exists.
    pub fn insert(&mut self, name: &str, p: Param) -> Result<(), RtError> {
        if self.params.contains_key(name) {
            return Err(RtError::DuplicateParam(name.to_string()));
        }
        self.params.insert(name.to_string(), p);
        Ok(())
    }
    /// Adds a parameter of `shape` (1 or 2 dims) from row-major host data.
    pub fn insert_host(
        &mut self,
        name: &str,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<(), RtError> {
        let n: usize = shape.iter().product();
        if data.len() != n || !(1..=2).contains(&shape.len()) {
            return Err(RtError::Shape(format!(
                "parameter `{name}`: shape {shape:?} with {} values",
                data.len()
            )));
        }
        let p = if shape.len() == 2 {
            Param::Mat(self.dev.tensor_from_vec(data, (shape[0], shape[1])))
        } else {
            Param::Vec(self.dev.tensor_from_vec(data, (shape[0],)))
        };
        self.insert(name, p)
    }
    /// Adds a parameter of `shape` drawn from `U(−bound, bound)`.
    pub fn insert_uniform(
        &mut self,
        name: &str,
        shape: &[usize],
        bound: f32,
        rng: &mut Rng,
    ) -> Result<(), RtError> {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|_| rng.gen_range(-bound..=bound)).collect();
        self.insert_host(name, shape, data)
    }
    /// Adds `{name}.w: (fan_in, fan_out)` and `{name}.b: (fan_out,)`, PyTorch init.
    pub fn add_linear(
        &mut self,
        name: &str,
        fan_in: usize,
        fan_out: usize,
        rng: &mut Rng,
    ) -> Result<(), RtError> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        self.insert_uniform(&format!("{name}.w"), &[fan_in, fan_out], bound, rng)?;
        self.insert_uniform(&format!("{name}.b"), &[fan_out], bound, rng)
    }
    /// Looks a parameter up.
    pub fn get(&self, name: &str) -> Result<&Param, RtError> {
        self.params
            .get(name)
            .ok_or_else(|| RtError::MissingParam(name.to_string()))
    }
    /// Mutable look-up.
    pub fn get_mut(&mut self, name: &str) -> Result<&mut Param, RtError> {
        self.params
            .get_mut(name)
            .ok_or_else(|| RtError::MissingParam(name.to_string()))
    }
    /// A matrix parameter.
    pub fn mat(&self, name: &str) -> Result<&T2, RtError> {
        match self.get(name)? {
            Param::Mat(t) => Ok(t),
            p => Err(RtError::ParamShape {
                name: name.to_string(),
                found: p.shape(),
                expected: vec![0, 0],
            }),
        }
    }
    /// A vector parameter.
    pub fn vector(&self, name: &str) -> Result<&T1, RtError> {
        match self.get(name)? {
            Param::Vec(t) => Ok(t),
            p => Err(RtError::ParamShape {
                name: name.to_string(),
                found: p.shape(),
                expected: vec![0],
            }),
        }
    }
    /// `(name, param)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Param)> {
        self.params.iter()
    }
    /// Mutable iteration in name order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Param)> {
        self.params.iter_mut()
    }
    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.params.len()
    }
    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.params.values().map(Param::numel).sum()
    }
    /// Starts a traced forward pass on a fresh [`crate::runtime::SharedTape`].
    pub fn trace(&self) -> Traced<'_> {
        Traced {
            store: self,
            tape: Tp::default(),
        }
    }
    /// Host gradients of every parameter (zeros for those the loss did not reach).
    pub fn grads(&self, grads: &mut Gradients<f32, Dev>) -> GradMap {
        self.params
            .iter()
            .map(|(k, p)| (k.clone(), p.grad(grads)))
            .collect()
    }
    /// Copies values from `other` (same names and shapes required), keeping tensor ids.
    pub fn assign_from(&mut self, other: &ParamStore) -> Result<(), RtError> {
        for (name, p) in self.params.iter_mut() {
            let q = other.get(name)?;
            if p.shape() != q.shape() {
                return Err(RtError::ParamShape {
                    name: name.clone(),
                    found: q.shape(),
                    expected: p.shape(),
                });
            }
            p.set_host(&q.to_host());
        }
        Ok(())
    }
}

/// Read access to parameters as tensors on tape `T` (`NoneTape` for [`ParamStore`] itself,
/// [`Tp`] for [`Traced`]).
pub trait Params<T> {
    /// A matrix parameter on the tape.
    fn mat(&self, name: &str) -> Result<T2<T>, RtError>;
    /// A vector parameter on the tape.
    fn vector(&self, name: &str) -> Result<T1<T>, RtError>;
    /// Puts an input (data, noise, initial state) on the tape.
    fn input(&self, x: T2) -> T2<T>;
    /// The device.
    fn device(&self) -> &Dev;
}

impl Params<NoneTape> for ParamStore {
    fn mat(&self, name: &str) -> Result<T2, RtError> {
        ParamStore::mat(self, name).cloned()
    }
    fn vector(&self, name: &str) -> Result<T1, RtError> {
        ParamStore::vector(self, name).cloned()
    }
    fn input(&self, x: T2) -> T2 {
        x
    }
    fn device(&self) -> &Dev {
        &self.dev
    }
}

/// A traced view of a store: every parameter read through it joins one shared tape, keeping
/// the stored tensor's id, so `backward` gradients are found by [`ParamStore::grads`].
pub struct Traced<'a> {
    store: &'a ParamStore,
    tape: Tp,
}

impl Traced<'_> {
    /// The tape (to trace extra tensors by hand: `t.put_tape(traced.tape().clone())`).
    pub fn tape(&self) -> &Tp {
        &self.tape
    }
}

impl Params<Tp> for Traced<'_> {
    fn mat(&self, name: &str) -> Result<T2<Tp>, RtError> {
        Ok(self.store.mat(name)?.clone().put_tape(self.tape.clone()))
    }
    fn vector(&self, name: &str) -> Result<T1<Tp>, RtError> {
        Ok(self.store.vector(name)?.clone().put_tape(self.tape.clone()))
    }
    fn input(&self, x: T2) -> T2<Tp> {
        x.put_tape(self.tape.clone())
    }
    fn device(&self) -> &Dev {
        &self.store.dev
    }
}
