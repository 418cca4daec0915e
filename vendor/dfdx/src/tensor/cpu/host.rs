//! vic patch: direct access to CPU buffers, for kernels written outside dfdx.
//!
//! dfdx 0.13 keeps a tensor's storage (`Tensor::data`) and the gradient buffers in
//! [Gradients] crate-private. These accessors expose them as plain slices, and only where the
//! layout is unambiguous: a tensor's buffer is returned only when it is contiguous and
//! row-major (one element per index, strides equal to the shape's row-major strides), and a
//! gradient buffer always has the same layout as the buffer of the tensor it belongs to.

use std::sync::Arc;

use crate::shapes::{Shape, Unit};
use crate::tensor::{Cpu, CpuError, Gradients, Tensor};

impl<S: Shape, E: Unit, T> Tensor<S, E, Cpu, T> {
    /// Whether the buffer holds exactly one element per index, in row-major order (false for
    /// broadcasts, permutations and other strided views).
    pub fn is_contiguous(&self) -> bool {
        self.strides == self.shape.strides() && self.data.len() == self.shape.num_elements()
    }

    /// The tensor's elements in row-major order, without a copy; `None` if the tensor is not
    /// [contiguous](Self::is_contiguous).
    pub fn host_slice(&self) -> Option<&[E]> {
        self.is_contiguous().then(|| self.data.as_slice())
    }

    /// Mutable access to the tensor's row-major elements; `None` if the tensor is not
    /// [contiguous](Self::is_contiguous). The buffer is copy-on-write: if other tensors
    /// (clones, or a tape's backward operations) share it, it is copied first, so they keep
    /// the old values. The tensor keeps its id.
    pub fn host_slice_mut(&mut self) -> Option<&mut [E]> {
        if !self.is_contiguous() {
            return None;
        }
        Some(Arc::make_mut(&mut self.data).as_mut_slice())
    }
}

impl<E: Unit> Gradients<E, Cpu> {
    /// The gradient of `t`, if one has been allocated, as its raw buffer. Its layout is that
    /// of `t`'s own buffer: row-major when `t` [is contiguous](Tensor::is_contiguous).
    pub fn host_slice<S: Shape, T>(&self, t: &Tensor<S, E, Cpu, T>) -> Option<&[E]> {
        self.get_ref_checked(t).map(|g| g.as_slice())
    }

    /// Mutable access to the gradient of `t` (allocated as zeros if absent), with the layout
    /// of `t`'s own buffer. A backward operation adds its contribution into this buffer;
    /// it must not overwrite what other operations accumulated.
    pub fn host_slice_mut<S: Shape, T>(
        &mut self,
        t: &Tensor<S, E, Cpu, T>,
    ) -> Result<&mut [E], CpuError> {
        Ok(self.get_or_alloc_mut(t)?.as_mut_slice())
    }
}
