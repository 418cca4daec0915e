//! Exact log evidence log p(x) for linear-Gaussian models, in f64.
//!
//! Input: a checked [`Model`], the values of its parameters, and data. Output: log p(x) of
//! each sequence (conditioned on the inputs), or the reason the model's p is not
//! linear-Gaussian ([`structure`] answers the question from the IR alone, for `vic elbo`).
//!
//! A model qualifies when every p factor is a Normal (or a MultivariateNormal, whose noise
//! covariance is `L Lᵀ`) whose mean is affine in the observed and latent variables it reads (numbers, constants, parameters and inputs combined with `+`,
//! `−`, products and quotients by constants, `@` with a constant matrix, `dot`, `sum`,
//! `concat`, element selection) and whose scale reads no latent and no observed variable;
//! there are no nets on those paths, no deterministic states and no optimality variables.
//! q plays no part: the evidence is a property of p alone.
//!
//! The computation is one Kalman filter over variable instances in sampling order (statics
//! first, then each step's variables in topological order): a latent instance extends the
//! Gaussian belief (mean and covariance over the instances still read by later factors), an
//! observed instance contributes its predictive density log N(x; A m + c, A P Aᵀ + diag σ²)
//! and conditions the belief (the prediction-error decomposition). Instances older than the
//! largest lag are marginalised out by dropping them. For a static model this is the exact
//! Gaussian marginal computed by sequential conditioning (method `"gaussian"`); for a
//! sequential one it is the Kalman filter (method `"kalman"`), linear in T. Masked steps are
//! not conditioned on, so ragged sequences get the evidence of their observed steps.

use crate::data::Dataset;
use crate::ir::*;
use crate::lower::plan::{prior_order, ChainVar};

/// How the evidence of a qualifying model is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// A sequential model: the Kalman filter.
    Kalman,
    /// A static model: the Gaussian marginal.
    Gaussian,
}

impl Method {
    /// `"kalman"` or `"gaussian"`, as `vic eval` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Method::Kalman => "kalman",
            Method::Gaussian => "gaussian",
        }
    }
}

/// Whether the model's p is linear-Gaussian, from the IR alone: the method, or why not.
pub fn structure(m: &Model) -> Result<Method, String> {
    if m.is_control() {
        return Err("a control problem has no observed data (its evidence is p(O = 1))".into());
    }
    if let Some(o) = m.optimality.first() {
        return Err(format!(
            "the optimality variable `{}` has a reward likelihood, not a Normal",
            o.name
        ));
    }
    for (v, var) in m.vars.iter().enumerate() {
        if var.role == Role::State && m.factors_of(v, Block::P).next().is_some() {
            return Err(format!(
                "p defines the deterministic state `{}` (only Normal factors are handled)",
                var.name
            ));
        }
    }
    for f in m.factors.iter().filter(|f| f.block == Block::P) {
        let name = &m.vars[f.var].name;
        let dist = match &f.body {
            FactorBody::Sample(d) => d,
            FactorBody::Define(_) => {
                return Err(format!("p defines `{name}` deterministically"));
            }
        };
        if !matches!(dist.family, Family::Normal | Family::MultivariateNormal) {
            return Err(format!(
                "p({name} | …) is {}, not Normal",
                dist.family.name()
            ));
        }
        let (loc, scale, split) = match &dist.args {
            DistArgs::LocScale { loc, scale } => (loc, Some(scale), false),
            DistArgs::Split { head, .. } => (head, None, true),
            // MultivariateNormal(loc, scale_tril).
            DistArgs::Params(ps) if ps.len() == 2 => (&ps[0], Some(&ps[1]), false),
            _ => return Err(format!("p({name} | …) has unsupported arguments")),
        };
        match kind(m, loc) {
            Err(why) => return Err(format!("the mean of p({name} | …) {why}")),
            Ok(Kind::Affine) if split => {
                return Err(format!(
                "the scale of p({name} | …) is a head shared with its mean, which reads variables"
            ))
            }
            Ok(_) => {}
        }
        if let Some(s) = scale {
            match kind(m, s) {
                Ok(Kind::Const) => {}
                Ok(Kind::Affine) => {
                    return Err(format!(
                        "the scale of p({name} | …) reads a latent or observed variable"
                    ))
                }
                Err(why) => return Err(format!("the scale of p({name} | …) {why}")),
            }
        }
    }
    Ok(if m.is_sequential() {
        Method::Kalman
    } else {
        Method::Gaussian
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Free of latent and observed variables (numbers, constants, parameters, inputs).
    Const,
    Affine,
}

/// Whether an expression is constant or affine in the random variables, or why neither.
fn kind(m: &Model, e: &Expr) -> Result<Kind, String> {
    use Kind::*;
    let join = |a: Kind, b: Kind| {
        if a == Const && b == Const {
            Const
        } else {
            Affine
        }
    };
    Ok(match &e.kind {
        ExprKind::Num(_)
        | ExprKind::Const(_)
        | ExprKind::Param(_)
        | ExprKind::Fill(_)
        | ExprKind::Eye
        | ExprKind::Array(_) => Const,
        ExprKind::Var { var, time } => {
            if matches!(time, TimeRef::Suffix | TimeRef::Prefix) {
                return Err("reads a whole sequence".into());
            }
            match m.vars[*var].role {
                Role::Input => Const,
                Role::State => {
                    return Err(format!(
                        "reads the deterministic state `{}`",
                        m.vars[*var].name
                    ))
                }
                Role::Latent | Role::Observed => Affine,
            }
        }
        ExprKind::Unary { op, arg } => {
            let k = kind(m, arg)?;
            if *op == UnOp::Neg || *op == UnOp::StopGrad || k == Const {
                k
            } else {
                return Err(format!("applies `{}` to a random variable", op.name()));
            }
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let (a, b) = (kind(m, lhs)?, kind(m, rhs)?);
            match op {
                BinOp::Add | BinOp::Sub => join(a, b),
                BinOp::Mul | BinOp::MatMul if a == Const || b == Const => join(a, b),
                BinOp::Div if b == Const => a,
                _ => {
                    return Err(format!(
                        "multiplies or divides two random quantities (`{}`)",
                        op.symbol()
                    ))
                }
            }
        }
        ExprKind::Dot(a, b) => {
            let (a, b) = (kind(m, a)?, kind(m, b)?);
            if a == Affine && b == Affine {
                return Err("takes the dot product of two random quantities".into());
            }
            join(a, b)
        }
        ExprKind::Sum(a) | ExprKind::Select { arg: a, .. } => kind(m, a)?,
        ExprKind::Concat(xs) => {
            let mut k = Const;
            for x in xs {
                k = join(k, kind(m, x)?);
            }
            k
        }
        ExprKind::Clamp { arg, low, high } => {
            let ks = [kind(m, arg)?, kind(m, low)?, kind(m, high)?];
            if ks.contains(&Affine) {
                return Err("clamps a random quantity".into());
            }
            Const
        }
        ExprKind::Net { net, .. } | ExprKind::Gru { net, .. } | ExprKind::Rnn { net, .. } => {
            return Err(format!("goes through the net `{}`", m.nets[*net].name));
        }
    })
}

/// Parameter values by [`ParamId`], row-major, in f64.
pub type ParamValues = Vec<Vec<f64>>;

/// Reads every model parameter from a parameter store.
pub fn param_values(
    m: &Model,
    store: &crate::runtime::nets::params::ParamStore,
) -> Result<ParamValues, String> {
    (0..m.params.len())
        .map(|i| {
            let name = crate::lower::param_name(m, i);
            store
                .get(&name)
                .map(|p| p.to_host().iter().map(|x| f64::from(*x)).collect())
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// log p(x) of every sequence of `data` (static models: every row), given the inputs.
pub fn log_evidence(m: &Model, params: &ParamValues, data: &Dataset) -> Result<Vec<f64>, String> {
    structure(m)?;
    let (statics, timed) = prior_order(m);
    let t_len = if m.is_sequential() {
        data.t.unwrap_or(1)
    } else {
        0
    };
    // Reads at absolute steps in base cases can reach further back than the largest lag.
    let mut keep = i64::from(m.max_lag());
    for f in m.factors.iter().filter(|f| f.block == Block::P) {
        if let TimeCase::At(k) = f.case {
            for r in &f.parents {
                if let TimeRef::Step(s) = r.time {
                    keep = keep.max(i64::from(k) - s);
                }
            }
        }
    }
    (0..data.n)
        .map(|seq| {
            let mut f = Filter {
                m,
                params,
                data,
                seq,
                belief: Belief::default(),
                ll: 0.0,
            };
            f.run(&statics, &timed, t_len, keep)?;
            Ok(f.ll)
        })
        .collect()
}

/// A Gaussian over the latent instances still in use: keys, mean, covariance (row-major).
#[derive(Default)]
struct Belief {
    keys: Vec<(VarId, i64)>,
    offsets: Vec<usize>,
    mean: Vec<f64>,
    cov: Vec<f64>,
}

impl Belief {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn slot(&self, key: (VarId, i64)) -> Option<usize> {
        self.keys
            .iter()
            .position(|k| *k == key)
            .map(|i| self.offsets[i])
    }
}

/// An affine function of the belief: `c + A s` with `A` of shape (n, dim), row-major.
#[derive(Clone)]
struct Aff {
    c: Vec<f64>,
    a: Vec<f64>,
    dim: usize,
}

impl Aff {
    fn constant(c: Vec<f64>, dim: usize) -> Aff {
        let a = vec![0.0; c.len() * dim];
        Aff { c, a, dim }
    }
    fn n(&self) -> usize {
        self.c.len()
    }
    fn is_const(&self) -> bool {
        self.a.iter().all(|x| *x == 0.0)
    }
    fn row(&self, i: usize) -> &[f64] {
        &self.a[i * self.dim..(i + 1) * self.dim]
    }
    /// Element `i`, broadcasting a one-element value.
    fn at(&self, i: usize) -> (f64, &[f64]) {
        let i = if self.n() == 1 { 0 } else { i };
        (self.c[i], self.row(i))
    }
    fn map(&self, f: impl Fn(f64) -> f64) -> Aff {
        Aff {
            c: self.c.iter().map(|x| f(*x)).collect(),
            a: self.a.iter().map(|x| f(*x)).collect(),
            dim: self.dim,
        }
    }
    fn from_rows(rows: Vec<(f64, Vec<f64>)>, dim: usize) -> Aff {
        let mut out = Aff {
            c: Vec::with_capacity(rows.len()),
            a: Vec::with_capacity(rows.len() * dim),
            dim,
        };
        for (c, r) in rows {
            out.c.push(c);
            out.a.extend(r);
        }
        out
    }
}

struct Filter<'a> {
    m: &'a Model,
    params: &'a ParamValues,
    data: &'a Dataset,
    seq: usize,
    belief: Belief,
    ll: f64,
}

impl Filter<'_> {
    fn run(
        &mut self,
        statics: &[ChainVar],
        timed: &[ChainVar],
        t_len: usize,
        keep: i64,
    ) -> Result<(), String> {
        for cv in statics {
            self.instance(cv, 0)?;
        }
        for t in 1..=t_len {
            for cv in timed {
                self.instance(cv, t as u32)?;
            }
            // Marginalise out what no later factor reads.
            let oldest = t as i64 + 1 - keep;
            let m = self.m;
            let dropped: Vec<usize> = (0..self.belief.keys.len())
                .filter(|&i| {
                    let (v, s) = self.belief.keys[i];
                    m.vars[v].timed && s < oldest
                })
                .collect();
            if !dropped.is_empty() {
                self.drop_keys(&dropped);
            }
        }
        Ok(())
    }

    fn drop_keys(&mut self, dropped: &[usize]) {
        let b = &self.belief;
        let n = b.dim();
        let mut keep_idx = Vec::new();
        let mut keys = Vec::new();
        let mut offsets = Vec::new();
        for (i, k) in b.keys.iter().enumerate() {
            if dropped.contains(&i) {
                continue;
            }
            let size = self.m.vars[k.0].ty.size();
            offsets.push(keep_idx.len());
            keys.push(*k);
            keep_idx.extend(b.offsets[i]..b.offsets[i] + size);
        }
        let mean = keep_idx.iter().map(|&i| b.mean[i]).collect();
        let mut cov = Vec::with_capacity(keep_idx.len() * keep_idx.len());
        for &i in &keep_idx {
            for &j in &keep_idx {
                cov.push(b.cov[i * n + j]);
            }
        }
        self.belief = Belief {
            keys,
            offsets,
            mean,
            cov,
        };
    }

    /// The data value of an observed or input variable at a step (≥ 1) or statically.
    fn datum(&self, v: VarId, step: i64) -> Result<Vec<f64>, String> {
        let var = &self.m.vars[v];
        let arr = self
            .data
            .array(&var.name)
            .ok_or_else(|| format!("the data has no array `{}`", var.name))?;
        let size = var.ty.size();
        let start = if var.timed {
            let t = self.data.t.unwrap_or(1);
            (self.seq * t + (step as usize - 1)) * size
        } else {
            self.seq * size
        };
        Ok(arr[start..start + size]
            .iter()
            .map(|x| f64::from(*x))
            .collect())
    }

    fn masked(&self, t: u32) -> bool {
        match (&self.data.mask, self.data.t) {
            (Some(mask), Some(tl)) if t >= 1 => mask[self.seq * tl + t as usize - 1] == 0.0,
            _ => false,
        }
    }

    /// One instance of a latent or observed variable at step `t` (0 for statics).
    fn instance(&mut self, cv: &ChainVar, t: u32) -> Result<(), String> {
        let m = self.m;
        let Some(prod) = cv.at(t) else {
            return Ok(());
        };
        let f = &m.factors[prod.factor];
        let FactorBody::Sample(dist) = &f.body else {
            return Err("a deterministic p factor".into());
        };
        let size = m.vars[cv.var].ty.size();
        let mut tril = None;
        let (loc, scale) = match &dist.args {
            DistArgs::Params(ps) if ps.len() == 2 => {
                // MultivariateNormal(loc, scale_tril): noise covariance L Lᵀ.
                let loc = self.eval(&ps[0], t)?;
                let l = self.eval(&ps[1], t)?;
                if !l.is_const() {
                    return Err("a scale_tril reads a random variable".into());
                }
                tril = Some(l.c);
                (loc, vec![1.0])
            }
            DistArgs::LocScale { loc, scale } => {
                let loc = self.eval(loc, t)?;
                let s = self.eval(scale, t)?;
                if !s.is_const() {
                    return Err("a scale reads a random variable".into());
                }
                (loc, s.c)
            }
            DistArgs::Split { head, scale_fn } => {
                let h = self.eval(head, t)?;
                if !h.is_const() {
                    return Err("a split head reads a random variable".into());
                }
                let d = h.n() / 2;
                let sc = h.c[d..]
                    .iter()
                    .map(|x| match scale_fn {
                        ScaleFn::Softplus { min } => softplus(*x) + min,
                        ScaleFn::Exp { min } => x.exp() + min,
                    })
                    .collect();
                (Aff::constant(h.c[..d].to_vec(), h.dim), sc)
            }
            _ => return Err("unsupported distribution arguments".into()),
        };
        let loc = broadcast(loc, size);
        let var: Vec<f64> = (0..size)
            .map(|i| {
                let s = if scale.len() == 1 { scale[0] } else { scale[i] };
                s * s
            })
            .collect();
        let n = self.belief.dim();
        // A Pᵀ… : AP = A P  (size × n), S = A P Aᵀ + diag σ².
        let ap = matmul(&loc.a, &self.belief.cov, size, n, n);
        let mut s = matmul_t(&ap, &loc.a, size, n, size);
        match &tril {
            Some(l) => {
                // + L Lᵀ over the lower triangle of L.
                for i in 0..size {
                    for j in 0..size {
                        s[i * size + j] += (0..=i.min(j))
                            .map(|k| l[i * size + k] * l[j * size + k])
                            .sum::<f64>();
                    }
                }
            }
            None => {
                for i in 0..size {
                    s[i * size + i] += var[i];
                }
            }
        }
        let mu: Vec<f64> = (0..size)
            .map(|i| loc.c[i] + dotv(loc.row(i), &self.belief.mean))
            .collect();
        match m.vars[cv.var].role {
            Role::Latent => {
                let b = &mut self.belief;
                let nn = n + size;
                let mut cov = vec![0.0; nn * nn];
                for i in 0..n {
                    cov[i * nn..i * nn + n].copy_from_slice(&b.cov[i * n..(i + 1) * n]);
                    for j in 0..size {
                        cov[i * nn + n + j] = ap[j * n + i];
                        cov[(n + j) * nn + i] = ap[j * n + i];
                    }
                }
                for i in 0..size {
                    for j in 0..size {
                        cov[(n + i) * nn + n + j] = s[i * size + j];
                    }
                }
                b.keys.push((cv.var, i64::from(t)));
                b.offsets.push(n);
                b.mean.extend(mu);
                b.cov = cov;
            }
            Role::Observed => {
                if self.masked(t) {
                    return Ok(());
                }
                let x = self.datum(cv.var, i64::from(t))?;
                let l = cholesky(&s, size).ok_or_else(|| {
                    format!(
                        "the predictive covariance of `{}` at step {t} is not positive definite",
                        m.vars[cv.var].name
                    )
                })?;
                let r: Vec<f64> = x.iter().zip(&mu).map(|(a, b)| a - b).collect();
                let w = forward_sub(&l, &r, size); // L w = r
                let logdet: f64 = (0..size).map(|i| l[i * size + i].ln()).sum::<f64>() * 2.0;
                self.ll -= 0.5
                    * (size as f64 * (2.0 * std::f64::consts::PI).ln()
                        + logdet
                        + w.iter().map(|x| x * x).sum::<f64>());
                if n > 0 {
                    // K = P Aᵀ S⁻¹ = (S⁻¹ A P)ᵀ;  m += K r;  P −= (A P)ᵀ S⁻¹ (A P).
                    let mut g = vec![0.0; size * n]; // L⁻¹ A P
                    for col in 0..n {
                        let c: Vec<f64> = (0..size).map(|i| ap[i * n + col]).collect();
                        let y = forward_sub(&l, &c, size);
                        for i in 0..size {
                            g[i * n + col] = y[i];
                        }
                    }
                    let b = &mut self.belief;
                    for i in 0..n {
                        b.mean[i] += (0..size).map(|k| g[k * n + i] * w[k]).sum::<f64>();
                        for j in 0..n {
                            b.cov[i * n + j] -=
                                (0..size).map(|k| g[k * n + i] * g[k * n + j]).sum::<f64>();
                        }
                    }
                    for i in 0..n {
                        for j in 0..i {
                            let v = 0.5 * (b.cov[i * n + j] + b.cov[j * n + i]);
                            b.cov[i * n + j] = v;
                            b.cov[j * n + i] = v;
                        }
                    }
                }
            }
            _ => return Err("only latent and observed variables have Normal factors".into()),
        }
        Ok(())
    }

    /// An expression at step `t` as an affine function of the belief.
    fn eval(&self, e: &Expr, t: u32) -> Result<Aff, String> {
        let m = self.m;
        let dim = self.belief.dim();
        let cst = |c: Vec<f64>| Aff::constant(c, dim);
        Ok(match &e.kind {
            ExprKind::Num(x) => cst(vec![*x]),
            ExprKind::Const(c) => cst(m.consts[*c].values.clone()),
            ExprKind::Param(p) => cst(self.params[*p].clone()),
            ExprKind::Fill(x) => cst(vec![*x; e.shape.numel()]),
            ExprKind::Array(xs) => cst(xs.clone()),
            ExprKind::Eye => {
                let (r, c) = match e.shape.0.as_slice() {
                    [r, c] => (*r, *c),
                    [n] => (1, *n),
                    _ => (1, 1),
                };
                cst((0..r * c)
                    .map(|i| f64::from(u8::from(i / c == i % c)))
                    .collect())
            }
            ExprKind::Var { var, time } => {
                let step: i64 = match time {
                    TimeRef::Static => 0,
                    TimeRef::Lag(k) => i64::from(t) - i64::from(*k),
                    TimeRef::Step(s) => *s,
                    _ => return Err("a whole-sequence read".into()),
                };
                let v = &m.vars[*var];
                if v.timed && step <= 0 {
                    let init = m
                        .inits
                        .iter()
                        .find(|i| i.var == *var && i.step == step)
                        .ok_or_else(|| format!("no init value for `{}` at step {step}", v.name))?;
                    let a = self.eval(&init.value, t)?;
                    return Ok(broadcast(a, v.ty.size()));
                }
                match v.role {
                    Role::Input | Role::Observed => cst(self.datum(*var, step)?),
                    Role::Latent => {
                        let off = self.belief.slot((*var, step)).ok_or_else(|| {
                            format!("`{}` at step {step} is not in the belief", v.name)
                        })?;
                        let size = v.ty.size();
                        let mut a = Aff::constant(vec![0.0; size], dim);
                        for i in 0..size {
                            a.a[i * dim + off + i] = 1.0;
                        }
                        a
                    }
                    Role::State => return Err(format!("the state `{}`", v.name)),
                }
            }
            ExprKind::Unary { op, arg } => {
                let a = self.eval(arg, t)?;
                match op {
                    UnOp::Neg => a.map(|x| -x),
                    UnOp::StopGrad => a,
                    op if a.is_const() => cst(a.c.iter().map(|x| op.eval(*x)).collect()),
                    op => return Err(format!("`{}` of a random variable", op.name())),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.eval(lhs, t)?, self.eval(rhs, t)?);
                let n = e.shape.numel();
                match op {
                    BinOp::Add | BinOp::Sub => {
                        let sg = if *op == BinOp::Add { 1.0 } else { -1.0 };
                        Aff::from_rows(
                            (0..n)
                                .map(|i| {
                                    let ((ca, ra), (cb, rb)) = (a.at(i), b.at(i));
                                    (
                                        ca + sg * cb,
                                        ra.iter().zip(rb).map(|(x, y)| x + sg * y).collect(),
                                    )
                                })
                                .collect(),
                            dim,
                        )
                    }
                    BinOp::Mul | BinOp::Div => {
                        let (k, x, div) = if b.is_const() {
                            (b, a, *op == BinOp::Div)
                        } else if *op == BinOp::Mul && a.is_const() {
                            (a, b, false)
                        } else {
                            return Err("a product of random quantities".into());
                        };
                        Aff::from_rows(
                            (0..n)
                                .map(|i| {
                                    let kc = k.at(i).0;
                                    let f = if div { 1.0 / kc } else { kc };
                                    let (c, r) = x.at(i);
                                    (c * f, r.iter().map(|y| y * f).collect())
                                })
                                .collect(),
                            dim,
                        )
                    }
                    BinOp::MatMul => {
                        // (r, c) @ (c,) or (c, k); (c,) @ (c, k).
                        let (ra, ca) = match lhs.shape.0.as_slice() {
                            [r, c] => (*r, *c),
                            [c] => (1, *c),
                            _ => (1, 1),
                        };
                        let kb = match rhs.shape.0.as_slice() {
                            [_, k] => *k,
                            _ => 1,
                        };
                        if !a.is_const() && !b.is_const() {
                            return Err("a product of random quantities".into());
                        }
                        let mut rows = Vec::with_capacity(ra * kb);
                        for i in 0..ra {
                            for j in 0..kb {
                                let mut c = 0.0;
                                let mut r = vec![0.0; dim];
                                for l in 0..ca {
                                    let (lc, lr) = (a.c[i * ca + l], a.row(i * ca + l));
                                    let (rc, rr) = (b.c[l * kb + j], b.row(l * kb + j));
                                    c += lc * rc;
                                    for d in 0..dim {
                                        r[d] += lc * rr[d] + rc * lr[d];
                                    }
                                }
                                rows.push((c, r));
                            }
                        }
                        Aff::from_rows(rows, dim)
                    }
                }
            }
            ExprKind::Dot(x, y) => {
                let (a, b) = (self.eval(x, t)?, self.eval(y, t)?);
                if !a.is_const() && !b.is_const() {
                    return Err("a dot product of random quantities".into());
                }
                let n = a.n().max(b.n());
                let mut c = 0.0;
                let mut r = vec![0.0; dim];
                for i in 0..n {
                    let ((ca, ra), (cb, rb)) = (a.at(i), b.at(i));
                    c += ca * cb;
                    for d in 0..dim {
                        r[d] += ca * rb[d] + cb * ra[d];
                    }
                }
                Aff::from_rows(vec![(c, r)], dim)
            }
            ExprKind::Sum(x) => {
                let a = self.eval(x, t)?;
                let mut r = vec![0.0; dim];
                for i in 0..a.n() {
                    for (d, v) in a.row(i).iter().enumerate() {
                        r[d] += v;
                    }
                }
                Aff::from_rows(vec![(a.c.iter().sum(), r)], dim)
            }
            ExprKind::Select { arg, index } => {
                let a = self.eval(arg, t)?;
                let (c, r) = a.at(*index);
                Aff::from_rows(vec![(c, r.to_vec())], dim)
            }
            ExprKind::Concat(xs) => {
                let mut rows = Vec::new();
                for x in xs {
                    let a = self.eval(x, t)?;
                    let a = broadcast(a, x.shape.numel());
                    for i in 0..a.n() {
                        rows.push((a.c[i], a.row(i).to_vec()));
                    }
                }
                Aff::from_rows(rows, dim)
            }
            ExprKind::Clamp { arg, low, high } => {
                let (a, l, h) = (self.eval(arg, t)?, self.eval(low, t)?, self.eval(high, t)?);
                if !(a.is_const() && l.is_const() && h.is_const()) {
                    return Err("a clamp of a random quantity".into());
                }
                cst((0..a.n())
                    .map(|i| a.c[i].max(l.at(i).0).min(h.at(i).0))
                    .collect())
            }
            ExprKind::Net { net, .. } | ExprKind::Gru { net, .. } | ExprKind::Rnn { net, .. } => {
                return Err(format!("the net `{}`", m.nets[*net].name))
            }
        })
    }
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// A one-element value repeated to `n` elements (others unchanged).
fn broadcast(a: Aff, n: usize) -> Aff {
    if a.n() == n || a.n() != 1 {
        return a;
    }
    let rows = (0..n).map(|_| (a.c[0], a.row(0).to_vec())).collect();
    Aff::from_rows(rows, a.dim)
}

fn dotv(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// (r × k) · (k × c).
fn matmul(a: &[f64], b: &[f64], r: usize, k: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for l in 0..k {
            let x = a[i * k + l];
            if x != 0.0 {
                for j in 0..c {
                    out[i * c + j] += x * b[l * c + j];
                }
            }
        }
    }
    out
}

/// (r × k) · (c × k)ᵀ.
fn matmul_t(a: &[f64], b: &[f64], r: usize, k: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[i * c + j] = dotv(&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]);
        }
    }
    out
}

/// The lower Cholesky factor of a symmetric positive-definite n × n matrix.
fn cholesky(s: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut v = s[i * n + j];
            for k in 0..j {
                v -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = v / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves L y = b for lower-triangular L.
fn forward_sub(l: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut v = b[i];
        for k in 0..i {
            v -= l[i * n + k] * y[k];
        }
        y[i] = v / l[i * n + i];
    }
    y
}

/// The structure of every shipped model is covered by `tests/evidence.rs`; this checks the
/// linear algebra alone.
#[cfg(test)]
mod tests {
    #[test]
    fn cholesky_solves() {
        let s = [4.0, 2.0, 2.0, 3.0];
        let l = super::cholesky(&s, 2).expect("positive definite");
        assert!((l[0] - 2.0).abs() < 1e-12 && (l[2] - 1.0).abs() < 1e-12);
        assert!((l[3] - 2f64.sqrt()).abs() < 1e-12);
        let y = super::forward_sub(&l, &[2.0, 3.0], 2);
        assert!((y[0] - 1.0).abs() < 1e-12 && (y[1] - 2.0 / 2f64.sqrt()).abs() < 1e-12);
        assert!(super::cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}
