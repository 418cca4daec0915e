//! The critic's forward pass read from the actor's: a copy plan instead of a second forward.
//!
//! Input: the actor's step program with the op ranges of its critic evaluations V(state_τ),
//! τ = 1..H+1 (the parameters are the critic's own unless a slow critic is on), and the critic's
//! program, which evaluates the same critic on the states τ = 1..H stacked time-major (`n` rows
//! per τ). Output: `(actor view, critic view)` pairs; copying each pair's rows fills every value
//! the critic's backward reads, so its forward pass (about 6% of an update's multiply-adds for
//! `dreamer.vmodel`) need not run.
//!
//! Invariants: a plan exists only when the two evaluations are the same layers op for op
//! (dense layers with the same weights, biases, activations and input blocks, the first
//! layer reading the same state variables) — otherwise the critic runs its own forward.
//! The copied values are the critic's function of the same states: they can differ from the
//! critic's own forward pass only in the order of `gemm`'s sums, which it blocks by the
//! product's shape (`n` rows against H·n). At the agent's default, 400 rows per worker, they
//! are the same bit for bit on the machine the targets ran on (an agent run's metrics are
//! identical); `tests/agent_imagine.rs` checks them to f32 rounding.

use crate::fused::graph::{Act, Graph, Op, View};
use crate::ir::VarId;
use std::ops::Range;

/// One critic evaluation in a program: its ops and the views its state variables are read
/// from.
pub(super) struct Eval<'a> {
    /// The program.
    pub g: &'a Graph,
    /// The evaluation's ops in the program.
    pub ops: Range<usize>,
    /// The state variables and the views that hold them.
    pub inputs: &'a [(VarId, View)],
}

/// The views a dense layer's forward pass writes that its backward reads: the output, and
/// the pre-activation SiLU keeps in `scratch`.
fn written(op: &Op) -> Option<Vec<View>> {
    match op {
        Op::Dense {
            out, scratch, act, ..
        } => Some(if *act == Act::Silu {
            vec![*out, *scratch]
        } else {
            vec![*out]
        }),
        _ => None,
    }
}

/// Where a layer's input comes from: a state variable, or the output of an earlier layer of
/// the same evaluation (its index).
#[derive(PartialEq)]
enum Source {
    State(VarId),
    Layer(usize),
}

fn source(e: &Eval, layer_outs: &[View], v: View) -> Option<Source> {
    if let Some((var, _)) = e.inputs.iter().find(|(_, x)| *x == v) {
        return Some(Source::State(*var));
    }
    layer_outs.iter().position(|o| *o == v).map(Source::Layer)
}

/// A layer: its op, and the source and weight rows of each input block.
type Layer<'a> = (&'a Op, Vec<(Source, usize)>);

/// The layers of one evaluation; `None` if an op is not a dense layer or reads something
/// other than the state or an earlier layer.
fn layers<'a>(e: &'a Eval) -> Option<Vec<Layer<'a>>> {
    let mut outs = Vec::new();
    let mut out = Vec::new();
    for op in &e.g.ops[e.ops.clone()] {
        let Op::Dense {
            xs,
            add: None,
            out: o,
            ..
        } = op
        else {
            return None;
        };
        let srcs = (xs.iter())
            .map(|(v, off)| source(e, &outs, *v).map(|s| (s, *off)))
            .collect::<Option<Vec<_>>>()?;
        outs.push(*o);
        out.push((op, srcs));
    }
    Some(out)
}

/// Whether two dense layers compute the same function of their inputs.
fn same_layer(ga: &Graph, a: &Op, gc: &Graph, c: &Op) -> bool {
    let (
        Op::Dense {
            w: wa,
            b: ba,
            act: aa,
            out: oa,
            ..
        },
        Op::Dense {
            w: wc,
            b: bc,
            act: ac,
            out: oc,
            ..
        },
    ) = (a, c)
    else {
        return false;
    };
    let kind = |g: &Graph, b: usize| (g.bufs[b].kind, g.bufs[b].rows, g.bufs[b].cols);
    aa == ac
        && ga.cols(*oa) == gc.cols(*oc)
        && kind(ga, *wa) == kind(gc, *wc)
        && ba.map(|b| kind(ga, b)) == bc.map(|b| kind(gc, b))
}

/// The copy plan: for each τ = 1..H (`actor[τ − 1]`) and each view the critic's layers write,
/// the actor's view and the critic's rows `(τ − 1)·n ..` it fills. `None` when the
/// evaluations differ.
pub(super) fn plan(actor: &[Eval], critic: &Eval, n: usize) -> Option<Vec<(View, View)>> {
    let lc = layers(critic)?;
    let mut pairs = Vec::new();
    for (tau, a) in actor.iter().enumerate() {
        let la = layers(a)?;
        if la.len() != lc.len() || la.is_empty() {
            return None;
        }
        for ((opa, sa), (opc, sc)) in la.iter().zip(&lc) {
            if sa != sc || !same_layer(a.g, opa, critic.g, opc) {
                return None;
            }
            for (va, vc) in written(opa)?.into_iter().zip(written(opc)?) {
                if va.rows != n || vc.rows != actor.len() * n {
                    return None;
                }
                let rows = View {
                    buf: vc.buf,
                    r0: vc.r0 + tau * n,
                    rows: n,
                };
                pairs.push((va, rows));
            }
        }
    }
    Some(pairs)
}
