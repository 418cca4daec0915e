//! Family dispatch for the reference path: a distribution's parameters on tensors
//! ([`DistVals`]), sampling a chain latent, and the log-density, closed-form KL and entropy
//! kernels of `src/runtime/dist/` — the KL and entropy chosen by the form derive stored on
//! the term (`derive::Compute`), never decided here.

use super::*;
use crate::derive::KlForm;
use crate::family::EntropyForm;
use crate::runtime::dist::{
    bernoulli, beta, categorical, gamma, laplace, lognormal, mvn, normal, poisson, student_t,
    tanh_normal, uniform,
};
use crate::runtime::rng::{normal_noise, uniform_noise};

/// Distribution parameters at some rows.
pub(super) enum DistVals<T> {
    LocScale(T2<T>, T2<T>),
    Logits(T2<T>),
    Bounds(T2<T>, T2<T>),
    /// The positional parameters in the family row's order.
    Params(Vec<T2<T>>),
    Flat,
}

impl<T: LTape> DistVals<T> {
    pub(super) fn clone_vals(&self) -> Self {
        match self {
            DistVals::LocScale(a, b) => DistVals::LocScale(a.clone(), b.clone()),
            DistVals::Logits(a) => DistVals::Logits(a.clone()),
            DistVals::Bounds(a, b) => DistVals::Bounds(a.clone(), b.clone()),
            DistVals::Params(ps) => DistVals::Params(ps.clone()),
            DistVals::Flat => DistVals::Flat,
        }
    }
    /// A copy with fresh tensor ids (so two sides of a KL never share an id).
    pub(super) fn fresh(self) -> Self {
        match self {
            DistVals::LocScale(a, b) => DistVals::LocScale(ops::fresh(a), ops::fresh(b)),
            DistVals::Logits(a) => DistVals::Logits(ops::fresh(a)),
            DistVals::Bounds(a, b) => DistVals::Bounds(ops::fresh(a), ops::fresh(b)),
            DistVals::Params(ps) => DistVals::Params(ps.into_iter().map(ops::fresh).collect()),
            DistVals::Flat => DistVals::Flat,
        }
    }
    pub(super) fn stop<P: Params<T>>(&self, p: &P) -> Self {
        let sg = |x: &T2<T>| p.input(ops::stop_gradient(x));
        match self {
            DistVals::LocScale(a, b) => DistVals::LocScale(sg(a), sg(b)),
            DistVals::Logits(a) => DistVals::Logits(sg(a)),
            DistVals::Bounds(a, b) => DistVals::Bounds(sg(a), sg(b)),
            DistVals::Params(ps) => DistVals::Params(ps.iter().map(sg).collect()),
            DistVals::Flat => DistVals::Flat,
        }
    }
}

/// The `k`-th value of a discrete variable (one-hot groups in row-major order, or bits).
fn enum_value(ty: VarType, mut k: usize) -> Vec<f32> {
    match ty {
        VarType::OneHot { groups, classes } => {
            let mut row = vec![0.0; groups * classes];
            for g in (0..groups).rev() {
                row[g * classes + k % classes] = 1.0;
                k /= classes;
            }
            row
        }
        VarType::Binary { size } => (0..size)
            .map(|i| ((k >> (size - 1 - i)) & 1) as f32)
            .collect(),
        _ => vec![0.0],
    }
}

impl<'a, T: LTape, P: Params<T>> Ctx<'a, T, P> {
    pub(super) fn dist(&mut self, d: &Dist, at: At, size: usize) -> Result<DistVals<T>, RtError> {
        Ok(match &d.args {
            DistArgs::LocScale { loc, scale } => DistVals::LocScale(
                self.eval_rows(loc, at, size)?,
                self.eval_rows(scale, at, size)?,
            ),
            DistArgs::Split { head, scale_fn } => {
                let h = self.eval_rows(head, at, 2 * size)?;
                match *scale_fn {
                    ScaleFn::Softplus { min } => {
                        let (l, s) = normal::split_loc_scale(
                            h,
                            normal::ScaleLink::Softplus {
                                min_scale: min as f32,
                            },
                        )?;
                        DistVals::LocScale(l, s)
                    }
                    ScaleFn::Exp { min } => {
                        let (l, s) = normal::split_loc_scale(h, normal::ScaleLink::Exp)?;
                        DistVals::LocScale(l, if min > 0.0 { s + min as f32 } else { s })
                    }
                }
            }
            DistArgs::Logits(l) => DistVals::Logits(self.eval_rows(l, at, size)?),
            DistArgs::Bounds { low, high } => DistVals::Bounds(
                self.eval_rows(low, at, size)?,
                self.eval_rows(high, at, size)?,
            ),
            DistArgs::Params(ps) => {
                let spec = d.family.spec();
                DistVals::Params(
                    (ps.iter().zip(spec.params))
                        .map(|(e, ps)| self.eval_rows(e, at, ps.width(size)))
                        .collect::<Result<_, _>>()?,
                )
            }
            DistArgs::None => DistVals::Flat,
        })
    }

    /// The p side of a KL-like term: the variable of p's factor `factor`, its family, its
    /// classes and its distribution at `at` (fresh values: p's parameters, not q's samples).
    pub(super) fn prior_of(
        &mut self,
        factor: FactorId,
        at: At,
    ) -> Result<(VarId, Family, usize, DistVals<T>), RtError> {
        let m = self.m();
        let f = &m.factors[factor];
        let FactorBody::Sample(pd) = &f.body else {
            return Err(RtError::Shape("KL against a definition".into()));
        };
        let size = m.vars[f.var].ty.size();
        let pdist = self.dist(pd, at, size)?.fresh();
        Ok((f.var, pd.family, self.classes(f.var), pdist))
    }

    pub(super) fn classes(&self, v: VarId) -> usize {
        match self.m().vars[v].ty {
            VarType::OneHot { classes, .. } => classes,
            _ => 1,
        }
    }

    /// Sample a chain latent at one step (or statically) from its producer.
    pub(super) fn sample(
        &mut self,
        v: VarId,
        f: FactorId,
        at: At,
        rng: &mut Rng,
    ) -> Result<(T2<T>, Rec<T>), RtError> {
        let m = self.m();
        let FactorBody::Sample(d) = &m.factors[f].body else {
            return Err(RtError::Shape("sampling a definition".into()));
        };
        let size = m.vars[v].ty.size();
        let rows = self.rows(at);
        let dev = self.p.device().clone();
        let dist = self.dist(d, at, size)?;
        let est = self
            .prog
            .estimators
            .get(&v)
            .copied()
            .unwrap_or(Estimator::Reparam);
        let mut pre = None;
        if est == Estimator::Enumerate && self.s.enumerate {
            // Block k of the tiled batch holds value k.
            let n = m.vars[v].ty.support_size().unwrap_or(u64::MAX) as usize;
            let orig = rows / n;
            let mut host = Vec::with_capacity(rows * size);
            for k in 0..n {
                let one = enum_value(m.vars[v].ty, k);
                for _ in 0..orig {
                    host.extend_from_slice(&one);
                }
            }
            let z = self.p.input(ops::from_host(&dev, host, rows, size));
            let kk = self.classes(v);
            let lq = match (&dist, d.family) {
                (DistVals::Logits(l), Family::Categorical) => {
                    categorical::log_prob(ops::fresh(z.clone()), l.clone(), kk)?
                }
                (DistVals::Logits(l), Family::Bernoulli) => {
                    bernoulli::log_prob(ops::fresh(z.clone()), l.clone())
                }
                _ => return Err(RtError::Shape("enumeration of a continuous latent".into())),
            };
            self.s.enum_weight = Some(lq.exp());
            return Ok((
                z,
                Rec {
                    family: d.family,
                    dist,
                    pre,
                },
            ));
        }
        let value = match (&dist, d.family) {
            (DistVals::LocScale(l, s), Family::Normal) => {
                normal::rsample(l.clone(), s.clone(), normal_noise(&dev, rng, rows, size))
            }
            (DistVals::LocScale(l, s), Family::TanhNormal) => {
                let (y, u) =
                    tanh_normal::rsample(l.clone(), s.clone(), normal_noise(&dev, rng, rows, size));
                pre = Some(u);
                y
            }
            (DistVals::Bounds(a, b), Family::Uniform) => {
                uniform::rsample(a.clone(), b.clone(), uniform_noise(&dev, rng, rows, size))
            }
            (DistVals::LocScale(l, s), Family::Laplace) => {
                laplace::rsample(l.clone(), s.clone(), laplace::noise(&dev, rng, rows, size))
            }
            (DistVals::LocScale(l, s), Family::LogNormal) => {
                lognormal::rsample(l.clone(), s.clone(), normal_noise(&dev, rng, rows, size))
            }
            (DistVals::Params(ps), Family::Gamma) if ps.len() == 2 => gamma::rsample(
                ps[0].clone(),
                ps[1].clone(),
                uniform_noise(&dev, rng, rows, size),
            ),
            (DistVals::Params(ps), Family::Beta) if ps.len() == 2 => beta::rsample(
                ps[0].clone(),
                ps[1].clone(),
                uniform_noise(&dev, rng, rows, size),
            ),
            (DistVals::Params(ps), Family::MultivariateNormal) if ps.len() == 2 => mvn::rsample(
                ps[0].clone(),
                ps[1].clone(),
                normal_noise(&dev, rng, rows, size),
            ),
            (DistVals::Params(ps), Family::Poisson) if ps.len() == 1 => self.p.input(
                poisson::sample(&ps[0], uniform_noise(&dev, rng, rows, size)),
            ),
            (DistVals::Params(ps), Family::StudentT) if ps.len() == 3 => student_t::rsample(
                ps[0].clone(),
                ps[1].clone(),
                ps[2].clone(),
                uniform_noise(&dev, rng, rows, size),
            ),
            (DistVals::Logits(l), Family::Bernoulli) => match est {
                Estimator::StraightThrough => bernoulli::sample_st(l.clone(), rng),
                _ => {
                    let z = self.p.input(bernoulli::sample(l, rng));
                    self.add_sf(bernoulli::log_prob(ops::fresh(z.clone()), l.clone()));
                    z
                }
            },
            (DistVals::Logits(l), Family::Categorical) => {
                let k = self.classes(v);
                match est {
                    Estimator::StraightThrough => categorical::sample_st(l.clone(), k, rng)?,
                    _ => {
                        let z = self.p.input(categorical::sample(l, k, rng)?);
                        self.add_sf(categorical::log_prob(ops::fresh(z.clone()), l.clone(), k)?);
                        z
                    }
                }
            }
            _ => {
                return Err(RtError::Shape(format!(
                    "cannot sample `{}` from {}",
                    m.vars[v].name,
                    d.family.name()
                )))
            }
        };
        Ok((
            value,
            Rec {
                family: d.family,
                dist,
                pre,
            },
        ))
    }

    /// Accumulate Σ log q per sequence for a score-function sample.
    fn add_sf(&mut self, logq: T2<T>) {
        self.s.sf_logq = Some(match self.s.sf_logq.take() {
            None => logq,
            Some(a) => a + logq,
        });
    }
}

/// `log p(x)` per row for a family, summed over cols; TanhNormal uses its pre-squash value
/// when the chain recorded one.
pub(super) fn log_prob<T: LTape>(
    fam: Family,
    x: T2<T>,
    d: DistVals<T>,
    k: usize,
    pre: Option<T2<T>>,
) -> Result<T2<T>, RtError> {
    Ok(match (fam, d) {
        (Family::Normal, DistVals::LocScale(l, s)) => normal::log_prob(x, l, s),
        (Family::TanhNormal, DistVals::LocScale(l, s)) => match pre {
            Some(u) => tanh_normal::log_prob_pre(u, l, s),
            None => tanh_normal::log_prob(x, l, s),
        },
        (Family::Uniform, DistVals::Bounds(a, b)) => uniform::log_prob(&x, a, b),
        (Family::Laplace, DistVals::LocScale(l, s)) => laplace::log_prob(x, l, s),
        (Family::LogNormal, DistVals::LocScale(l, s)) => lognormal::log_prob(x, l, s),
        (Family::Gamma, DistVals::Params(ps)) => match <[_; 2]>::try_from(ps) {
            Ok([a, b]) => gamma::log_prob(x, a, b),
            Err(_) => return Err(RtError::Shape("Gamma takes 2 parameters".into())),
        },
        (Family::Beta, DistVals::Params(ps)) => match <[_; 2]>::try_from(ps) {
            Ok([a, b]) => beta::log_prob(x, a, b),
            Err(_) => return Err(RtError::Shape("Beta takes 2 parameters".into())),
        },
        (Family::StudentT, DistVals::Params(ps)) => match <[_; 3]>::try_from(ps) {
            Ok([n, l, s]) => student_t::log_prob(x, n, l, s),
            Err(_) => return Err(RtError::Shape("StudentT takes 3 parameters".into())),
        },
        (Family::MultivariateNormal, DistVals::Params(ps)) => match <[_; 2]>::try_from(ps) {
            Ok([l, s]) => mvn::log_prob(x, l, s),
            Err(_) => {
                return Err(RtError::Shape(
                    "MultivariateNormal takes 2 parameters".into(),
                ))
            }
        },
        (Family::Poisson, DistVals::Params(ps)) => match <[_; 1]>::try_from(ps) {
            Ok([r]) => poisson::log_prob(x, r),
            Err(_) => return Err(RtError::Shape("Poisson takes 1 parameter".into())),
        },
        (Family::Bernoulli, DistVals::Logits(l)) => bernoulli::log_prob(x, l),
        (Family::Categorical, DistVals::Logits(l)) => categorical::log_prob(x, l, k)?,
        (f, _) => return Err(RtError::Shape(format!("log-density of {}", f.name()))),
    })
}

/// `KL(q ‖ p)` per row in the closed form derive chose; with `per_element` (free nats per
/// element) per element where the form has an elementwise kernel (the flag says whether it
/// did).
pub(super) fn kl_rows<T: LTape>(
    form: KlForm,
    q: DistVals<T>,
    p: DistVals<T>,
    k: usize,
    per_element: bool,
) -> Result<(T2<T>, bool), RtError> {
    Ok(match (form, q, p) {
        (KlForm::NormalNormal, DistVals::LocScale(a, b), DistVals::LocScale(c, d)) => {
            if per_element {
                (normal::kl_elem(a, b, c, d), true)
            } else {
                (normal::kl(a, b, c, d), false)
            }
        }
        (KlForm::BernoulliBernoulli, DistVals::Logits(a), DistVals::Logits(b)) => {
            if per_element {
                (bernoulli::kl_elem(a, b), true)
            } else {
                (bernoulli::kl(a, b), false)
            }
        }
        (KlForm::CategoricalCategorical, DistVals::Logits(a), DistVals::Logits(b)) => {
            (categorical::kl(a, b, k)?, false)
        }
        (KlForm::UniformUniform, DistVals::Bounds(a, b), DistVals::Bounds(c, d)) => {
            (uniform::kl(a, b, c, d)?, false)
        }
        (KlForm::LaplaceLaplace, DistVals::LocScale(a, b), DistVals::LocScale(c, d)) => {
            (laplace::kl(a, b, c, d), false)
        }
        (KlForm::GammaGamma, DistVals::Params(q), DistVals::Params(p)) => {
            match (<[_; 2]>::try_from(q), <[_; 2]>::try_from(p)) {
                (Ok([a, b]), Ok([c, d])) => (gamma::kl(a, b, c, d), false),
                _ => return Err(RtError::Shape("Gamma takes 2 parameters".into())),
            }
        }
        (KlForm::MvnMvn, DistVals::Params(q), DistVals::Params(p)) => {
            match (<[_; 2]>::try_from(q), <[_; 2]>::try_from(p)) {
                (Ok([a, b]), Ok([c, d])) => (mvn::kl(a, b, c, d), false),
                _ => {
                    return Err(RtError::Shape(
                        "MultivariateNormal takes 2 parameters".into(),
                    ))
                }
            }
        }
        (KlForm::BetaBeta, DistVals::Params(q), DistVals::Params(p)) => {
            match (<[_; 2]>::try_from(q), <[_; 2]>::try_from(p)) {
                (Ok([a, b]), Ok([c, d])) => (beta::kl(a, b, c, d), false),
                _ => return Err(RtError::Shape("Beta takes 2 parameters".into())),
            }
        }
        (f, _, _) => {
            return Err(RtError::Shape(format!(
                "the parameters do not fit the closed-form KL {f:?}"
            )))
        }
    })
}

/// `H[q]` per row: in the closed form derive chose, or `−log q` at the sample (`form` None).
pub(super) fn entropy_rows<T: LTape>(
    form: Option<EntropyForm>,
    fam: Family,
    q: DistVals<T>,
    value: T2<T>,
    k: usize,
    pre: Option<T2<T>>,
) -> Result<T2<T>, RtError> {
    Ok(match (form, q) {
        (Some(EntropyForm::Normal), DistVals::LocScale(_, s)) => normal::entropy(s),
        (Some(EntropyForm::Uniform), DistVals::Bounds(a, b)) => uniform::entropy(a, b),
        (Some(EntropyForm::Bernoulli), DistVals::Logits(l)) => bernoulli::entropy(l),
        (Some(EntropyForm::Categorical), DistVals::Logits(l)) => categorical::entropy(l, k)?,
        (Some(EntropyForm::Laplace), DistVals::LocScale(_, s)) => laplace::entropy(s),
        (Some(EntropyForm::LogNormal), DistVals::LocScale(l, s)) => lognormal::entropy(l, s),
        (Some(EntropyForm::Gamma), DistVals::Params(ps)) if ps.len() == 2 => {
            let [a, b] = <[_; 2]>::try_from(ps).unwrap_or_else(|_| unreachable!());
            gamma::entropy(a, b)
        }
        (Some(EntropyForm::Beta), DistVals::Params(ps)) if ps.len() == 2 => {
            let [a, b] = <[_; 2]>::try_from(ps).unwrap_or_else(|_| unreachable!());
            beta::entropy(a, b)
        }
        (Some(EntropyForm::MultivariateNormal), DistVals::Params(ps)) if ps.len() == 2 => {
            let [_, l] = <[_; 2]>::try_from(ps).unwrap_or_else(|_| unreachable!());
            mvn::entropy(l)
        }
        (Some(EntropyForm::StudentT), DistVals::Params(ps)) if ps.len() == 3 => {
            let [n, _, s] = <[_; 3]>::try_from(ps).unwrap_or_else(|_| unreachable!());
            student_t::entropy(n, s)
        }
        (Some(f), _) => {
            return Err(RtError::Shape(format!(
                "the parameters do not fit the closed-form entropy {f:?}"
            )))
        }
        (None, d) => log_prob(fam, value, d, k, pre)?.negate(),
    })
}
