//! The lowering of the families beside Normal and TanhNormal (Uniform, Laplace, Flat,
//! LogNormal, StudentT, Gamma, Beta, Poisson) to the kernels of [`crate::fused::families`] and
//! [`crate::fused::special`]: parameters, sampling, log-densities, closed-form KLs and
//! entropies, dispatched on the family and on the form derive stored on the term.
//!
//! Input: the builder's views of a distribution's parameters. Output: ops appended to the
//! graph, and the output view. Invariants: a family or form without a fused kernel answers
//! [`Unsupported`] (the reference path runs); parameters travel in the builder's
//! `(loc, scale)` slots as `(low, high)` for a Uniform, `(concentration, rate)` for a Gamma,
//! `(a, b)` for a Beta, `(rate, —)` for a Poisson, and a Flat has none; a StudentT's
//! `(loc, scale)` are in the slots and its df in the third slot a TanhNormal uses for its
//! pre-squash value ([`Builder::third`]).

use super::*;
use crate::fused::families::{FamOp, Noise};
use crate::fused::special::SpecialOp;

/// The noise a family's sampler reads; `None` for a family the fused runtime cannot sample.
pub(super) fn noise_of(f: Family) -> Option<Noise> {
    match f {
        Family::Normal | Family::TanhNormal | Family::LogNormal | Family::MultivariateNormal => {
            Some(Noise::Normal)
        }
        // Inverse-CDF samplers (`runtime::special`).
        Family::Uniform | Family::Gamma | Family::Beta | Family::StudentT | Family::Poisson => {
            Some(Noise::Uniform)
        }
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
            DistArgs::Params(ps) => {
                // StudentT's (df, loc, scale): loc and scale in the slots, df by `third`.
                let ps = if d.family == Family::StudentT && ps.len() == 3 {
                    &ps[1..]
                } else {
                    &ps[..]
                };
                // A MultivariateNormal's scale_tril has D² values per row.
                let bw = match d.family {
                    Family::MultivariateNormal => size * size,
                    _ => size,
                };
                match (ps, dest) {
                    ([a, b], dest) => {
                        let av = self.eval(a, at)?;
                        let av = self.as_rows(av, rows, size)?;
                        let bv = self.eval(b, at)?;
                        let bv = self.as_rows(bv, rows, bw)?;
                        if let Some((da, db)) = dest {
                            self.copy_into(av, da);
                            self.copy_into(bv, db);
                            return Ok((da, Some(db)));
                        }
                        Ok((av, Some(bv)))
                    }
                    ([a], None) => {
                        let av = self.eval(a, at)?;
                        Ok((self.as_rows(av, rows, size)?, None))
                    }
                    _ => unsup(format!("{} parameters", d.family.name())),
                }
            }
            _ => unsup(format!("{} parameters", d.family.name())),
        }
    }

    /// The third parameter of a family that has one (a StudentT's df) at `at`, into `dest`
    /// when given; `None` for every other family.
    pub(super) fn third(
        &mut self,
        d: &Dist,
        at: At,
        size: usize,
        dest: Option<View>,
    ) -> R<Option<View>> {
        let (Family::StudentT, DistArgs::Params(ps)) = (d.family, &d.args) else {
            return Ok(None);
        };
        let Some(df) = ps.first() else {
            return unsup("a StudentT without df");
        };
        let rows = self.rows(at);
        let v = self.eval(df, at)?;
        let v = self.as_rows(v, rows, size)?;
        Ok(Some(match dest {
            Some(d) => {
                self.copy_into(v, d);
                d
            }
            None => v,
        }))
    }

    /// A reparameterised sample of a Uniform, Laplace, LogNormal, Gamma, Beta or StudentT
    /// (`third`: its df) latent into `out`.
    pub(super) fn sample_other(
        &mut self,
        f: Family,
        a: View,
        b: View,
        eps: View,
        out: View,
        third: Option<View>,
    ) -> R<()> {
        let op = match (f, third) {
            (Family::LogNormal, _) => FamOp::Special(SpecialOp::LogNormalSample {
                loc: a,
                scale: b,
                eps,
                out,
            }),
            (Family::Gamma, _) => FamOp::Special(SpecialOp::GammaSample {
                conc: a,
                rate: b,
                u: eps,
                out,
            }),
            (Family::Beta, _) => FamOp::Special(SpecialOp::BetaSample { a, b, u: eps, out }),
            (Family::MultivariateNormal, _) => FamOp::Special(SpecialOp::MvnSample {
                loc: a,
                l: b,
                eps,
                out,
            }),
            (Family::StudentT, Some(df)) => FamOp::Special(SpecialOp::StudentTSample {
                df,
                loc: a,
                scale: b,
                u: eps,
                out,
            }),
            (f, _) => return self.sample_plain(f, a, b, eps, out),
        };
        self.op(Op::Fam(op));
        Ok(())
    }

    fn sample_plain(&mut self, f: Family, a: View, b: View, eps: View, out: View) -> R<()> {
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

    /// The log-density of the families `log_prob` does not handle itself, into `out`
    /// (`third`: a StudentT's df).
    pub(super) fn log_prob_other(
        &mut self,
        f: Family,
        x: View,
        a: View,
        b: Option<View>,
        out: View,
        third: Option<View>,
    ) -> R<View> {
        let op = match (f, b) {
            (Family::LogNormal, Some(s)) => FamOp::Special(SpecialOp::LogNormalLogProb {
                x,
                loc: a,
                scale: s,
                out,
            }),
            (Family::Gamma, Some(r)) => FamOp::Special(SpecialOp::GammaLogProb {
                x,
                conc: a,
                rate: r,
                out,
            }),
            (Family::Beta, Some(b)) => FamOp::Special(SpecialOp::BetaLogProb { x, a, b, out }),
            (Family::MultivariateNormal, Some(l)) => {
                FamOp::Special(SpecialOp::MvnLogProb { x, loc: a, l, out })
            }
            (Family::StudentT, Some(s)) => {
                let Some(df) = third else {
                    return unsup("the log-density of a StudentT without its df");
                };
                FamOp::Special(SpecialOp::StudentTLogProb {
                    x,
                    df,
                    loc: a,
                    scale: s,
                    out,
                })
            }
            (Family::Poisson, None) => {
                FamOp::Special(SpecialOp::PoissonLogProb { x, rate: a, out })
            }
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
            KlForm::GammaGamma => FamOp::Special(SpecialOp::GammaKl {
                qc: ql,
                qr: qs,
                pc: pl,
                pr: ps,
                out,
                gq,
                gp,
            }),
            KlForm::MvnMvn => FamOp::Special(SpecialOp::MvnKl {
                ql,
                qs,
                pl,
                ps,
                out,
                gq,
                gp,
            }),
            KlForm::BetaBeta => FamOp::Special(SpecialOp::BetaKl {
                qa: ql,
                qb: qs,
                pa: pl,
                pb: ps,
                out,
                gq,
                gp,
            }),
            _ => return unsup(format!("the closed-form KL {form:?}")),
        };
        self.op(Op::Fam(op));
        Ok(out)
    }

    /// A closed-form entropy other than a Normal's → `(rows, 1)` (`third`: a StudentT's df).
    pub(super) fn entropy_other(
        &mut self,
        form: EntropyForm,
        a: View,
        b: View,
        third: Option<View>,
    ) -> R<View> {
        let out = self.temp(a.rows, 1, true);
        let op = match (form, third) {
            (EntropyForm::LogNormal, _) => FamOp::Special(SpecialOp::LogNormalEntropy {
                loc: a,
                scale: b,
                out,
            }),
            (EntropyForm::Gamma, _) => FamOp::Special(SpecialOp::GammaEntropy {
                conc: a,
                rate: b,
                out,
            }),
            (EntropyForm::Beta, _) => FamOp::Special(SpecialOp::BetaEntropy { a, b, out }),
            (EntropyForm::MultivariateNormal, _) => {
                FamOp::Special(SpecialOp::MvnEntropy { l: b, out })
            }
            (EntropyForm::StudentT, Some(df)) => {
                FamOp::Special(SpecialOp::StudentTEntropy { df, scale: b, out })
            }
            (form, _) => return self.entropy_plain(form, a, b, out),
        };
        self.op(Op::Fam(op));
        Ok(out)
    }

    fn entropy_plain(&mut self, form: EntropyForm, a: View, b: View, out: View) -> R<View> {
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
