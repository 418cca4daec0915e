//! The static program: buffers with planned shapes, views into them, and the op list.
//!
//! Every value is a row-major `(rows, cols)` f32 buffer allocated once per program. An op reads
//! and writes [`View`]s (a block of whole rows of one buffer), so a chain variable's steps are
//! row blocks of one padded time-major buffer and a term over a time range reads one
//! contiguous view: no stacking, slicing or copying between the chain and the terms.
//! Invariants (the builder keeps them, the kernels rely on them):
//! - an op never writes rows it also reads (reads of earlier steps of the buffer it writes
//!   are other row blocks);
//! - a buffer's gradient is accumulated (`+=`) by every op that read it; gradients are zeroed
//!   once per step, so overlapping reads add up;
//! - ops run in order; backward runs them in reverse, after every reader of an op's output.

/// A buffer's index in [`Graph::bufs`].
pub type BufId = usize;

/// Rows `r0 .. r0 + rows` of a buffer (all its columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub buf: BufId,
    pub r0: usize,
    pub rows: usize,
}

/// What a buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufKind {
    /// Computed by ops.
    Temp,
    /// Parameter `i` of the parameter list (values live outside the program).
    Param(usize),
    /// Data copied in before each forward pass.
    Data,
    /// Standard-normal noise drawn before each forward pass.
    Noise,
    /// Filled once when the program is built.
    Const,
}

#[derive(Clone, Debug)]
pub struct Buf {
    pub rows: usize,
    pub cols: usize,
    pub kind: BufKind,
    /// Whether the loss depends on it through a differentiable path (gradient storage).
    pub grad: bool,
    /// Initial contents of a `Const` buffer (and of padding rows that no op writes).
    pub init: Option<Vec<f32>>,
}

/// Hidden-layer activations, differentiated from their output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Id,
    Relu,
    Tanh,
    Elu,
}

/// Elementwise unary maps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Un {
    Exp,
    Log,
    Softplus,
    Tanh,
    Sigmoid,
    Sin,
    Cos,
    Abs,
    Sqrt,
    Square,
    Relu,
    /// `a·x + c`.
    Affine(f32, f32),
    /// `c / x`.
    RDiv(f32),
    /// `clamp(x, lo, hi)`.
    Clamp(f32, f32),
    /// `x`, gradient blocked (`sg`).
    StopGrad,
}

/// Elementwise binary maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bin {
    Add,
    Sub,
    Mul,
    Div,
}

/// How an operand of `rows × cols` is read by an op over `R × C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bc {
    /// Same shape.
    Full,
    /// One row `(1, C)` for every row.
    Row,
    /// One column `(R, 1)` for every column.
    Col,
    /// `(1, 1)` everywhere.
    Scalar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opd {
    pub v: View,
    pub bc: Bc,
}

/// How the second half of a head becomes a scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    /// `softplus(raw) + min`.
    Softplus(f32),
    /// `exp(raw) + min`.
    Exp(f32),
}

/// One input block of a dense layer: `x · W[row0 .. row0 + cols(x)]`.
pub type DenseIn = (View, usize);

#[derive(Clone, Debug)]
pub enum Op {
    /// `out = act(Σ xᵢ·W[rowsᵢ] + b + add)`; `scratch` (out-shaped) holds the pre-activation
    /// gradient in backward.
    Dense {
        xs: Vec<DenseIn>,
        w: BufId,
        b: Option<BufId>,
        add: Option<View>,
        act: Act,
        out: View,
        scratch: View,
        /// Whether this op's backward accumulates the weight and bias gradients (`false`:
        /// a [`Op::DenseGrad`] does it for all steps at once).
        wgrad: bool,
    },
    /// Weight and bias gradients of a layer's per-step [`Op::Dense`]s for all steps at once:
    /// `dW[rowsᵢ] += xᵢᵀ·dpre`, `db += colsum(dpre)` (no forward work). It precedes the
    /// per-step ops, so backward reaches it after all of them.
    DenseGrad {
        xs: Vec<DenseIn>,
        dpre: View,
        w: BufId,
        b: Option<BufId>,
    },
    /// `out = a · B` (`tb`: `a · Bᵀ`), `B` a whole unbatched buffer.
    Gemm {
        a: View,
        b: BufId,
        tb: bool,
        out: View,
    },
    /// PyTorch's GRU cell: `gi = Σ xᵢ·W_i[rowsᵢ] + b_i`, `gh = h·W_h + b_h`, gates `[r|z|n]`,
    /// `out = (1 − z)·n + z·h`. `gates` keeps `r, z, n` and `ghn` keeps `gh_n` for backward;
    /// `gi`, `gh` are scratch (the gates' gradients in backward).
    Gru {
        xs: Vec<DenseIn>,
        h: View,
        wi: BufId,
        wh: BufId,
        bi: BufId,
        bh: BufId,
        out: View,
        gates: View,
        ghn: View,
        gi: View,
        gh: View,
        wgrad: bool,
    },
    /// The parameter gradients of a GRU's per-step cells for all steps at once.
    GruGrad {
        xs: Vec<DenseIn>,
        h: View,
        dgi: View,
        dgh: View,
        wi: BufId,
        wh: BufId,
        bi: BufId,
        bh: BufId,
    },
    Unary {
        op: Un,
        x: View,
        out: View,
    },
    Binary {
        op: Bin,
        a: Opd,
        b: Opd,
        out: View,
    },
    /// `out = x` broadcast (`Row`, `Col`, `Scalar` or `Full`).
    Copy {
        x: Opd,
        out: View,
    },
    /// Columns side by side.
    Concat {
        parts: Vec<View>,
        out: View,
    },
    /// Columns `c0 .. c0 + cols(out)`.
    Slice {
        x: View,
        c0: usize,
        out: View,
    },
    /// `(R, C) → (R, 1)`.
    RowSum {
        x: View,
        out: View,
    },
    /// `out` (`k·R` rows) = `x` (`R` rows) repeated `k` times.
    Tile {
        x: View,
        out: View,
    },
    /// `loc = h[:, :d]`, `scale = link(h[:, d:])`.
    Split {
        h: View,
        link: Link,
        loc: View,
        scale: View,
    },
    /// `out = loc + scale·eps`.
    NormalSample {
        loc: View,
        scale: View,
        eps: View,
        out: View,
    },
    /// `u = loc + scale·eps`, `y = tanh u`.
    TanhSample {
        loc: View,
        scale: View,
        eps: View,
        u: View,
        y: View,
    },
    /// `Σ_cols ln N(x; loc, scale)` → `(R, 1)`.
    NormalLogProb {
        x: View,
        loc: View,
        scale: View,
        out: View,
    },
    /// `Σ_cols [ln N(u; loc, scale) − ln(1 − tanh²u)]` → `(R, 1)`: the TanhNormal density of
    /// `y = tanh u` (one Jacobian).
    TanhLogProb {
        u: View,
        loc: View,
        scale: View,
        out: View,
    },
    /// `Σ_cols KL(N(ql, qs) ‖ N(pl, ps))` → `(R, 1)`. Backward scales q's gradient by `gq` and
    /// p's by `gp` (KL balancing) and drops elements whose KL is below `floor` (free nats per
    /// element).
    NormalKl {
        ql: View,
        qs: View,
        pl: View,
        ps: View,
        out: View,
        gq: f32,
        gp: f32,
        floor: Option<f32>,
    },
    /// `Σ_cols (ln scale + ½ + ½ln2π)` → `(R, 1)`.
    NormalEntropy {
        scale: View,
        out: View,
    },
    /// `Σ_cols (x·l − softplus(l))` → `(R, 1)`.
    BernoulliLogProb {
        x: View,
        logits: View,
        out: View,
    },
}

/// A program: buffers and ops.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub bufs: Vec<Buf>,
    pub ops: Vec<Op>,
}

impl Graph {
    pub fn buf(&mut self, rows: usize, cols: usize, kind: BufKind, grad: bool) -> BufId {
        self.bufs.push(Buf {
            rows,
            cols,
            kind,
            grad,
            init: None,
        });
        self.bufs.len() - 1
    }
    /// A whole buffer as a view.
    pub fn all(&self, b: BufId) -> View {
        View {
            buf: b,
            r0: 0,
            rows: self.bufs[b].rows,
        }
    }
    pub fn cols(&self, v: View) -> usize {
        self.bufs[v.buf].cols
    }
    pub fn grad(&self, v: View) -> bool {
        self.bufs[v.buf].grad
    }
    /// Floats held by values and gradients.
    pub fn floats(&self) -> usize {
        self.bufs
            .iter()
            .filter(|b| !matches!(b.kind, BufKind::Param(_)))
            .map(|b| b.rows * b.cols * (1 + usize::from(b.grad)))
            .sum()
    }
}
