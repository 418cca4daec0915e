//! Step programs: the builder's lowering of expressions and distributions, run at one step
//! over values the caller places, for imagination and acting (`crate::agent`).
//!
//! Input: the world model's lowered [`Program`], its parameter layout, the parameters that
//! get gradients, and a row count. Output: one [`Graph`] (the caller runs it on a
//! [`crate::fused::kernels::Worker`]), its noise views and their kinds. Invariants: the
//! expressions, nets, parameters, samplers, log-densities, KLs and entropies are the very
//! functions the training program is built with (one lowering); what differs is only where a
//! variable's value at a step lives (a view the caller set with [`Stepper::set`], never a
//! planned sequence buffer) and which parameters have gradients (a frozen net passes
//! gradients through to what it reads, not to its weights).

use super::*;
use crate::family::Family;
use crate::fused::families::Noise;

/// A distribution's parameters as views.
#[derive(Clone, Copy, Debug)]
pub struct DistV {
    /// The family.
    pub family: Family,
    /// Location (Normal, TanhNormal, Laplace), lower bound (Uniform) or logits.
    pub loc: View,
    /// Scale, or upper bound (Uniform); `None` for a family with logits.
    pub scale: Option<View>,
}

/// A draw: the value, and TanhNormal's pre-squash value.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    /// The sample.
    pub x: View,
    /// `u` with `x = tanh u` (TanhNormal only).
    pub pre: Option<View>,
}

/// The builder of one step program over a fixed number of rows.
pub struct Stepper<'a>(Builder<'a>);

impl<'a> Stepper<'a> {
    /// An empty program over `rows` rows of `prog`'s model; parameters in `learn` get
    /// gradients.
    pub fn new(
        prog: &'a Program,
        params: &'a ParamIndex,
        learn: &'a HashSet<usize>,
        rows: usize,
    ) -> Self {
        let mut b = Builder::blank(prog, params, rows, 1, Default::default());
        b.ext = Some(HashMap::new());
        b.learn = Some(learn);
        Stepper(b)
    }

    /// The graph built so far.
    pub fn graph(&self) -> &Graph {
        &self.0.g
    }

    /// The finished graph.
    pub fn into_graph(self) -> Graph {
        self.0.g
    }

    /// The noise views in creation order and what each is filled with before a forward pass.
    pub fn noise(&self) -> Vec<(View, Noise)> {
        let kinds = self.0.noise_meta.iter().map(|(k, _)| *k);
        self.0.noise.iter().copied().zip(kinds).collect()
    }

    /// A data buffer of `cols` columns (no gradient), filled by the caller.
    pub fn data(&mut self, cols: usize) -> View {
        let b = self.0.g.buf(self.0.b, cols, BufKind::Data, false);
        self.0.g.all(b)
    }

    /// Place `var`'s value at `step`.
    pub fn set(&mut self, var: VarId, step: i64, v: View) {
        if let Some(ext) = &mut self.0.ext {
            ext.insert((var, step), v);
        }
    }

    /// `var`'s value at `step`, if placed.
    pub fn get(&self, var: VarId, step: i64) -> Option<View> {
        self.0.ext.as_ref()?.get(&(var, step)).copied()
    }

    /// Evaluate `e` at step `t` → `(rows, size of e)`.
    pub fn eval(&mut self, e: &Expr, t: i64) -> R<View> {
        let at = At::Step(step_of(t)?);
        let v = self.0.eval(e, at)?;
        self.0.as_rows(v, self.0.b, e.shape.numel())
    }

    /// The parameters of `d` (of event size `size`) at step `t`; `None` for Flat.
    pub fn dist(&mut self, d: &Dist, size: usize, t: i64) -> R<Option<DistV>> {
        if matches!(d.args, DistArgs::None) {
            return Ok(None);
        }
        let (loc, scale) = self.0.dist(d, At::Step(step_of(t)?), size, None)?;
        Ok(Some(DistV {
            family: d.family,
            loc,
            scale,
        }))
    }

    /// A reparameterised draw from `d` (fresh noise).
    pub fn sample(&mut self, d: DistV) -> R<Draw> {
        let b = &mut self.0;
        if d.family == Family::Categorical && d.scale.is_none() {
            // A one-hot draw by inverse CDF (one uniform per row), its gradient
            // straight-through: the softmax's, as if the draw were its probabilities.
            let size = b.g.cols(d.loc);
            let grad = b.g.grad(d.loc);
            let u = b.fresh_noise(b.b, 1, Noise::Uniform);
            let probs = b.temp(b.b, size, false);
            let out = b.temp(b.b, size, grad);
            b.op(Op::CatSample {
                logits: d.loc,
                u,
                probs,
                out,
                classes: size,
                st: true,
            });
            return Ok(Draw { x: out, pre: None });
        }
        let (Some(scale), Some(kind)) = (d.scale, families::noise_of(d.family)) else {
            return unsup(format!("drawing {} in a step program", d.family.name()));
        };
        let size = b.g.cols(d.loc);
        let grad = b.g.grad(d.loc) || b.g.grad(scale);
        let eps = b.fresh_noise(b.b, size, kind);
        let x = b.temp(b.b, size, grad);
        let pre = (d.family == Family::TanhNormal).then(|| b.temp(b.b, size, grad));
        b.draw(d.family, (d.loc, scale), eps, x, pre)?;
        Ok(Draw { x, pre })
    }

    /// `Σ_cols log density` of a draw → one column.
    pub fn log_prob(&mut self, d: DistV, x: Draw) -> R<View> {
        if d.family == Family::Categorical && d.scale.is_none() {
            let b = &mut self.0;
            let grad = b.g.grad(x.x) || b.g.grad(d.loc);
            let out = b.temp(b.b, 1, grad);
            let classes = b.g.cols(d.loc);
            b.op(Op::CatLogProb {
                x: x.x,
                logits: d.loc,
                classes,
                out,
            });
            return Ok(out);
        }
        self.0.log_prob(d.family, x.x, d.loc, d.scale, x.pre)
    }

    /// A closed-form entropy → one column.
    pub fn entropy(&mut self, form: EntropyForm, d: DistV) -> R<View> {
        let Some(scale) = d.scale else {
            if form == EntropyForm::Categorical {
                let b = &mut self.0;
                let grad = b.g.grad(d.loc);
                let out = b.temp(b.b, 1, grad);
                let classes = b.g.cols(d.loc);
                b.op(Op::CatEntropy {
                    logits: d.loc,
                    classes,
                    out,
                });
                return Ok(out);
            }
            return unsup(format!(
                "the entropy {form:?} from logits in a step program"
            ));
        };
        self.0.entropy(form, d.loc, scale, None)
    }

    /// A closed-form `KL(q ‖ p)` → one column.
    pub fn kl(&mut self, form: KlForm, q: DistV, p: DistV) -> R<View> {
        let Some(qs) = q.scale else {
            if form == KlForm::CategoricalCategorical {
                let b = &mut self.0;
                let grad = b.g.grad(q.loc) || b.g.grad(p.loc);
                let out = b.temp(b.b, 1, grad);
                let classes = b.g.cols(q.loc);
                b.op(Op::CatKl {
                    q: q.loc,
                    p: p.loc,
                    classes,
                    out,
                });
                return Ok(out);
            }
            return unsup(format!("the KL {form:?} from logits in a step program"));
        };
        self.0
            .kl(form, (q.loc, qs), (p.loc, p.scale), (1.0, 1.0), None)
    }
}

/// A step index as the builder's.
fn step_of(t: i64) -> R<u32> {
    u32::try_from(t).map_err(|_| Unsupported(format!("step {t} in a step program")))
}
