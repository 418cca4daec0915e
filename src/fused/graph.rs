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
    /// The buffer.
    pub buf: BufId,
    /// The first row.
    pub r0: usize,
    /// Rows in the view.
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
    /// Uniform noise on `[0, 1)` drawn before each forward pass (categorical draws).
    Uniform,
}

#[derive(Clone, Debug)]
/// A buffer: its shape, what fills it, and whether it has a gradient.
pub struct Buf {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// What fills it.
    pub kind: BufKind,
    /// Whether the loss depends on it through a differentiable path (gradient storage).
    pub grad: bool,
    /// Initial contents of a `Const` buffer (and of padding rows that no op writes).
    pub init: Option<Vec<f32>>,
}

/// Hidden-layer activations, differentiated from their output (SiLU's op keeps the
/// pre-activation in its `scratch` for backward): the IR's enum.
pub use crate::forms::Activation as Act;

/// Elementwise unary maps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Un {
    /// eˣ.
    Exp,
    /// ln x.
    Log,
    /// ln(1 + eˣ).
    Softplus,
    /// tanh x.
    Tanh,
    /// 1 / (1 + e⁻ˣ).
    Sigmoid,
    /// sin x.
    Sin,
    /// cos x.
    Cos,
    /// |x|.
    Abs,
    /// √x.
    Sqrt,
    /// x².
    Square,
    /// max(0, x).
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
    /// a + b.
    Add,
    /// a − b.
    Sub,
    /// a · b.
    Mul,
    /// a / b.
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
/// An operand: a view and how it broadcasts.
pub struct Opd {
    /// The view.
    pub v: View,
    /// How it broadcasts to the output.
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
/// One step of the program (forward; backward runs the ops in reverse).
pub enum Op {
    /// `out = act(Σ xᵢ·W[rowsᵢ] + b + add)`; `scratch` (out-shaped) holds the pre-activation
    /// gradient in backward.
    Dense {
        /// Input blocks and the weight rows each multiplies.
        xs: Vec<DenseIn>,
        /// The weight buffer `(in, out)`.
        w: BufId,
        /// The bias buffer.
        b: Option<BufId>,
        /// Added before the activation.
        add: Option<View>,
        /// The activation.
        act: Act,
        /// The output.
        out: View,
        /// Pre-activation gradient in backward.
        scratch: View,
        /// Whether this op's backward accumulates the weight and bias gradients (`false`:
        /// a [`Op::DenseGrad`] does it for all steps at once).
        wgrad: bool,
    },
    /// Weight and bias gradients of a layer's per-step [`Op::Dense`]s for all steps at once:
    /// `dW[rowsᵢ] += xᵢᵀ·dpre`, `db += colsum(dpre)` (no forward work). It precedes the
    /// per-step ops, so backward reaches it after all of them.
    DenseGrad {
        /// Input blocks and the weight rows each multiplies.
        xs: Vec<DenseIn>,
        /// The pre-activation gradients of all steps.
        dpre: View,
        /// The weight buffer `(in, out)`.
        w: BufId,
        /// The bias buffer.
        b: Option<BufId>,
    },
    /// `out = a · B` (`tb`: `a · Bᵀ`), `B` a whole unbatched buffer.
    Gemm {
        /// The left operand.
        a: View,
        /// The matrix B (a whole buffer).
        b: BufId,
        /// Whether B is transposed.
        tb: bool,
        /// The output.
        out: View,
    },
    /// PyTorch's GRU cell: `gi = Σ xᵢ·W_i[rowsᵢ] + b_i`, `gh = h·W_h + b_h`, gates `[r|z|n]`,
    /// `out = (1 − z)·n + z·h`. `gates` keeps `r, z, n` and `ghn` keeps `gh_n` for backward;
    /// `gi`, `gh` are scratch (the gates' gradients in backward).
    Gru {
        /// Input blocks and the weight rows each multiplies.
        xs: Vec<DenseIn>,
        /// The previous hidden state(s).
        h: View,
        /// Input weights `(in, 3H)`.
        wi: BufId,
        /// Hidden weights `(H, 3H)`.
        wh: BufId,
        /// Input bias `(3H,)`.
        bi: BufId,
        /// Hidden bias `(3H,)`.
        bh: BufId,
        /// The output.
        out: View,
        /// `r, z, n` kept for backward.
        gates: View,
        /// `gh_n` kept for backward.
        ghn: View,
        /// Scratch: input-side gate pre-activations (their gradients in backward).
        gi: View,
        /// Scratch: hidden-side gate pre-activations (their gradients in backward).
        gh: View,
        /// Whether this op accumulates its parameter gradients (else a grad op does, for all steps).
        wgrad: bool,
    },
    /// The parameter gradients of a GRU's per-step cells for all steps at once.
    GruGrad {
        /// Input blocks and the weight rows each multiplies.
        xs: Vec<DenseIn>,
        /// The previous hidden state(s).
        h: View,
        /// Input-side gate gradients of all steps.
        dgi: View,
        /// Hidden-side gate gradients of all steps.
        dgh: View,
        /// Input weights `(in, 3H)`.
        wi: BufId,
        /// Hidden weights `(H, 3H)`.
        wh: BufId,
        /// Input bias `(3H,)`.
        bi: BufId,
        /// Hidden bias `(3H,)`.
        bh: BufId,
    },
    /// `out = op(x)`.
    Unary {
        /// The map.
        op: Un,
        /// The input.
        x: View,
        /// The output.
        out: View,
    },
    /// `out = a op b`, operands broadcast.
    Binary {
        /// The map.
        op: Bin,
        /// The left operand.
        a: Opd,
        /// The right operand.
        b: Opd,
        /// The output.
        out: View,
    },
    /// `out = x` broadcast (`Row`, `Col`, `Scalar` or `Full`).
    Copy {
        /// The input.
        x: Opd,
        /// The output.
        out: View,
    },
    /// Columns side by side.
    Concat {
        /// The inputs, left to right.
        parts: Vec<View>,
        /// The output.
        out: View,
    },
    /// Columns `c0 .. c0 + cols(out)`.
    Slice {
        /// The input.
        x: View,
        /// The first column.
        c0: usize,
        /// The output.
        out: View,
    },
    /// `(R, C) → (R, 1)`.
    RowSum {
        /// The input.
        x: View,
        /// The output.
        out: View,
    },
    /// `out` (`k·R` rows) = `x` (`R` rows) repeated `k` times.
    Tile {
        /// The input.
        x: View,
        /// The output.
        out: View,
    },
    /// `loc = h[:, :d]`, `scale = link(h[:, d:])`.
    Split {
        /// The head `(R, 2d)`.
        h: View,
        /// How the second half becomes a scale.
        link: Link,
        /// The location.
        loc: View,
        /// The scale.
        scale: View,
    },
    /// `out = loc + scale·eps`.
    NormalSample {
        /// The location.
        loc: View,
        /// The scale.
        scale: View,
        /// Standard-normal noise.
        eps: View,
        /// The output.
        out: View,
    },
    /// `u = loc + scale·eps`, `y = tanh u`.
    TanhSample {
        /// The location.
        loc: View,
        /// The scale.
        scale: View,
        /// Standard-normal noise.
        eps: View,
        /// The pre-tanh sample.
        u: View,
        /// `tanh u`.
        y: View,
    },
    /// `Σ_cols ln N(x; loc, scale)` → `(R, 1)`.
    NormalLogProb {
        /// The input.
        x: View,
        /// The location.
        loc: View,
        /// The scale.
        scale: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols [ln N(u; loc, scale) − ln(1 − tanh²u)]` → `(R, 1)`: the TanhNormal density of
    /// `y = tanh u` (one Jacobian).
    TanhLogProb {
        /// The pre-tanh sample.
        u: View,
        /// The location.
        loc: View,
        /// The scale.
        scale: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols KL(N(ql, qs) ‖ N(pl, ps))` → `(R, 1)`. Backward scales q's gradient by `gq` and
    /// p's by `gp` (KL balancing) and drops elements whose KL is below `floor` (free nats per
    /// element).
    NormalKl {
        /// q's location.
        ql: View,
        /// q's scale.
        qs: View,
        /// p's location.
        pl: View,
        /// p's scale.
        ps: View,
        /// The output.
        out: View,
        /// Gradient factor of q (KL balancing).
        gq: f32,
        /// Gradient factor of p.
        gp: f32,
        /// Free nats per element: elements below it get no gradient.
        floor: Option<f32>,
    },
    /// `Σ_cols (ln scale + ½ + ½ln2π)` → `(R, 1)`.
    NormalEntropy {
        /// The scale.
        scale: View,
        /// The output.
        out: View,
    },
    /// `Σ_cols (x·l − softplus(l))` → `(R, 1)`.
    BernoulliLogProb {
        /// The input.
        x: View,
        /// The logits.
        logits: View,
        /// The output.
        out: View,
    },
    /// A GRU over the whole sequence (`rnn`, forward or reverse) from a zero state, as
    /// [`crate::runtime::nets::gru::rnn_scan`]: the input projection `Σ xᵢ·W_i[rowsᵢ]` of all
    /// `steps` is one product, then one cell per step (PyTorch's `[r|z|n]`), then in backward
    /// one product for each parameter gradient and for the inputs' gradient
    /// (`super::kernels` `rnn.rs`).
    Rnn {
        /// Input blocks (`steps·b` rows, time-major) and the weight rows each multiplies.
        xs: Vec<DenseIn>,
        /// Input weights `(in, 3H)`.
        wi: BufId,
        /// Hidden weights `(H, 3H)`.
        wh: BufId,
        /// Input bias `(3H,)`.
        bi: BufId,
        /// Hidden bias `(3H,)`.
        bh: BufId,
        /// Whether the scan runs from the last step to the first.
        reverse: bool,
        /// `(steps + 1)·b` rows: step `t` (1-based) at block `t` (forward) or `t − 1`
        /// (reverse); the remaining block stays zero, the initial state, so the previous
        /// states of all steps are one contiguous view.
        out: View,
        /// `r, z, n` of every step.
        gates: View,
        /// `gh_n` of every step.
        ghn: View,
        /// Scratch `(steps·b, 3H)`: input-side pre-activations (their gradients in backward).
        gi: View,
        /// Scratch `(steps·b, 3H)`: hidden-side pre-activations (their gradients in backward).
        gh: View,
        /// Scratch `(3H, H)`: `W_hᵀ` in backward (each step's `dh += dgh·W_hᵀ` then reads
        /// rows of it, the faster form of the small product).
        wht: View,
    },
    /// `out = min(max(x, lo), hi)` elementwise with tensor bounds (all `out`-shaped), with
    /// dfdx's gradients of `maximum`/`minimum` (ties split ½–½).
    ClampT {
        /// The input.
        x: View,
        /// The lower bound.
        lo: View,
        /// The upper bound.
        hi: View,
        /// The output.
        out: View,
    },
    /// A kernel of another family (Uniform, Laplace, …: [`super::families`]).
    Fam(super::families::FamOp),
    /// The forward algorithm of a discrete chain summed out ([`super::hmm`]), boxed (it is
    /// far larger than the other ops).
    Hmm(Box<super::hmm::HmmOp>),
    /// A chain enumerated over its q chain ([`super::hmm::QChainOp`]), boxed.
    QChain(Box<super::hmm::QChainOp>),
    /// A one-hot draw from `G` categoricals of `classes` classes (logits `(R, G·classes)`),
    /// by inverse CDF with one uniform per row and group (`u`, `(R, G)`); `probs` keeps the
    /// softmax. With `st` (straight-through) the gradient of `out` reaches the logits
    /// through the softmax; without, the draw has no gradient. See [`super::discrete`].
    CatSample {
        /// The logits.
        logits: View,
        /// Uniform noise on `[0, 1)`, one per row and group.
        u: View,
        /// The softmax per group (kept for backward).
        probs: View,
        /// The one-hot draw.
        out: View,
        /// Classes per group.
        classes: usize,
        /// Straight-through gradient.
        st: bool,
    },
    /// `Σ_cols x · log_softmax_group(l)` → `(R, 1)`.
    CatLogProb {
        /// The (one-hot) value.
        x: View,
        /// The logits.
        logits: View,
        /// Classes per group.
        classes: usize,
        /// The output.
        out: View,
    },
    /// `Σ_groups KL(Cat(q) ‖ Cat(p))` from logits → `(R, 1)`.
    CatKl {
        /// q's logits.
        q: View,
        /// p's logits (one row: the same for every row).
        p: View,
        /// Classes per group.
        classes: usize,
        /// The output.
        out: View,
    },
    /// Exact enumeration weights: `out[k·R + i] = q(value k | row i)` for the `n` values of a
    /// one-hot latent (value `k`'s group digits as [`super::discrete::digit`]), from the
    /// logits `(R, G·classes)` of its base rows; `out` is `(n·R, 1)`.
    EnumWeight {
        /// The logits (base rows).
        logits: View,
        /// Classes per group.
        classes: usize,
        /// The output.
        out: View,
    },
    /// `out` (`R` rows) = the sum of the `x.rows / R` row blocks of `x` (a tiled batch folded
    /// back; the adjoint of [`Op::Tile`]).
    Fold {
        /// The input.
        x: View,
        /// The output.
        out: View,
    },
    /// `−Σ_cols softmax_group(l) · log_softmax_group(l)` → `(R, 1)`.
    CatEntropy {
        /// The logits.
        logits: View,
        /// Classes per group.
        classes: usize,
        /// The output.
        out: View,
    },
    /// The enumerated latent's share of a first layer, without a product: block `k` of `out`
    /// (`n·R` rows) is `x[i] + Σ_g W[off + g·classes + digit_g(k)] + b` (the one-hot value k
    /// times its weight rows; `x`: `R` base rows, or none), plus the weight rows a sampled
    /// one-hot input `hot` picks in each row.
    EnumAdd {
        /// A drawn one-hot input (all rows) and its weight rows.
        hot: Option<Hot>,
        /// The base rows added to every block.
        x: Option<View>,
        /// The layer's weight `(in, out)`.
        w: BufId,
        /// The first weight row of the latent's input block.
        off: usize,
        /// Groups of the latent.
        groups: usize,
        /// Classes per group.
        classes: usize,
        /// Values of the latent (blocks of `out`).
        n: usize,
        /// The layer's bias.
        bias: Option<BufId>,
        /// The output.
        out: View,
    },
}

/// A one-hot input of a layer read as the weight rows it picks (a categorical draw: exactly
/// one 1 per group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hot {
    /// The one-hot values.
    pub x: View,
    /// The first weight row of its input block.
    pub off: usize,
    /// Groups.
    pub groups: usize,
    /// Classes per group.
    pub classes: usize,
}

/// A program: buffers and ops.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Every buffer, by [`BufId`].
    pub bufs: Vec<Buf>,
    /// The ops, in execution order.
    pub ops: Vec<Op>,
}

impl Graph {
    /// A new buffer; returns its id.
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
    /// Columns of the buffer `v` views.
    pub fn cols(&self, v: View) -> usize {
        self.bufs[v.buf].cols
    }
    /// Whether `v`'s buffer has a gradient.
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
