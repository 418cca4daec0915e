//! The lowering of the families beside Normal and TanhNormal (Uniform, Laplace, Flat) to the
//! kernels of [`crate::fused::families`]: parameters, sampling, log-densities, closed-form KLs
//! and entropies, dispatched on the family and on the form derive stored on the term.
//!
//! Input: the builder's views of a distribution's parameters. Output: ops appended to the
//! graph, and the output view. Invariants: a family or form without a fused kernel answers
//! [`Unsupported`] (the reference path runs); parameters travel in the builder's
//! `(loc, scale)` slots as `(low, high)` for a Uniform, and a Flat has none.

use super::*;
use crate::fused::families::{FamOp, Noise};

/// The noise a family's sampler reads; `None` for a family the fused runtime cannot sample.
pub(super) fn noise_of(f: Family) -> Option<Noise> {
    match f {
        Family::Normal | Family::TanhNormal => Some(Noise::Normal),
        Family::Uniform => Some(Noise::Uniform),
        Family::Laplace => Some(Noise::Laplace),
        _ => None,
    }
}

impl Builder<'_> {
    /// Parameters of the families `dist` does not handle itself: Flat (no parameters: a zero
    /// view).
    pub(super) fn dist_other(
        &mut self,
        d: &Dist,
        at: At,
        size: usize,
        dest: Option<(View, View)>,
    ) -> R<(View, Option<View>)> {
        let rows = self.rows(at);
        match &d.args {
            DistArgs::None if dest.is_none() => Ok((self.fill(rows, size, 0.0), None)),
            _ => unsup(format!("{} parameters", d.family.name())),
        }
    }

    /// A reparameterised sample of a Uniform or Laplace latent into `out`.
    pub(super) fn sample_other(
        &mut self,
        f: Family,
        a: View,
        b: View,
        eps: View,
        out: View,
    ) -> R<()> {
        let op = match f {
            Family::Uniform => FamOp::UniformSample {
                low: a,
                high: b,
                u: eps,
                out,
            },
            Family::Laplace => FamOp::LaplaceSample {
                loc: a,
                scale: b,
                eps,
                out,
            },
            _ => return unsup(format!("sampling a {} latent", f.name())),
        };
        self.op(Op::Fam(op));
        Ok(())
    }

    /// The log-density of the families `log_prob` does not handle itself, into `out`.
    pub(super) fn log_prob_other(
        &mut self,
        f: Family,
        x: View,
        a: View,
        b: Option<View>,
        out: View,
    ) -> R<View> {
        let op = match (f, b) {
            (Family::Uniform, Some(h)) => FamOp::UniformLogProb {
                x,
                low: a,
                high: h,
                out,
            },
            (Family::Laplace, Some(s)) => FamOp::LaplaceLogProb {
                x,
                loc: a,
                scale: s,
                out,
            },
            // ln p = 0: `out` is never written (zeros) and has no gradient to pass on.
            (Family::Flat, _) => return Ok(self.fill(x.rows, 1, 0.0)),
            _ => return unsup(format!("the log-density of {}", f.name())),
        };
        self.op(Op::Fam(op));
        Ok(out)
    }

    /// A closed-form KL other than Normal ‖ Normal → `(rows, 1)`; `g`: the gradient factors
    /// of q and p (KL balancing).
    pub(super) fn kl_other(
        &mut self,
        form: KlForm,
        q: (View, View),
        p: (View, Option<View>),
        g: (f32, f32),
    ) -> R<View> {
        let (ql, qs) = q;
        let (pl, Some(ps)) = p else {
            return unsup(format!("the closed-form KL {form:?}"));
        };
        let out = self.temp(ql.rows, 1, true);
        let (gq, gp) = g;
        let op = match form {
            KlForm::UniformUniform => FamOp::UniformKl {
                ql,
                qh: qs,
                pl,
                ph: ps,
                out,
                gq,
                gp,
            },
            KlForm::LaplaceLaplace => FamOp::LaplaceKl {
                ql,
                qs,
                pl,
                ps,
                out,
                gq,
                gp,
            },
            _ => return unsup(format!("the closed-form KL {form:?}")),
        };
        self.op(Op::Fam(op));
        Ok(out)
    }

    /// A closed-form entropy other than a Normal's → `(rows, 1)`.
    pub(super) fn entropy_other(&mut self, form: EntropyForm, a: View, b: View) -> R<View> {
        let out = self.temp(a.rows, 1, true);
        let op = match form {
            EntropyForm::Uniform => FamOp::UniformEntropy {
                low: a,
                high: b,
                out,
            },
            EntropyForm::Laplace => FamOp::LaplaceEntropy { scale: b, out },
            _ => return unsup(format!("the entropy {form:?}")),
        };
        self.op(Op::Fam(op));
        Ok(out)
    }
}
