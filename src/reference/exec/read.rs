//! Reads of the chain's store: a variable at a step or over a range of steps (padded
//! time-major tensors, row views), nets over time run once per pass, and q's recorded
//! parameters stacked over a term's range.

use super::*;

impl<'a, T: LTape, P: Params<T>> Ctx<'a, T, P> {
    /// The padded time-major tensor of a timed variable: steps `1−k ..= T`.
    pub(super) fn padded(&mut self, v: VarId) -> Result<T2<T>, RtError> {
        if let Some(x) = self.s.padded.get(&v) {
            return Ok(x.clone());
        }
        let (b, tt, k) = (self.s.b, self.s.tt, self.s.k);
        let size = self.m().vars[v].ty.size();
        let mut parts = Vec::with_capacity(tt + k);
        for t in (1 - k as i64)..=(tt as i64) {
            let x = match self.s.steps.get(&v).and_then(|s| s[idx(k, t)].clone()) {
                Some(x) => x,
                None => self.p.input(ops::full(self.p.device(), b, size, 0.0)),
            };
            parts.push(x);
        }
        let x = stack(parts)?;
        self.s.padded.insert(v, x.clone());
        Ok(x)
    }

    /// A data variable at step `t`, zeros past the last step (a smoothing window's lead).
    fn ahead(&mut self, v: VarId, t: i64) -> Result<T2<T>, RtError> {
        if t <= self.s.tt as i64 {
            return self.s.step(v, t);
        }
        let size = self.m().vars[v].ty.size();
        Ok(self
            .p
            .input(ops::full(self.p.device(), self.s.b, size, 0.0)))
    }

    pub(super) fn read(&mut self, var: VarId, time: TimeRef, at: At) -> Result<T2<T>, RtError> {
        let (b, tt, k) = (self.s.b, self.s.tt, self.s.k);
        let timed = self.m().vars[var].timed;
        match (time, at) {
            (TimeRef::Lead(j), At::Step(t)) => self.ahead(var, i64::from(t) + i64::from(j)),
            (TimeRef::Lead(j), At::Range(s)) => {
                let parts = (i64::from(s)..=tt as i64)
                    .map(|t| self.ahead(var, t + i64::from(j)))
                    .collect::<Result<Vec<_>, _>>()?;
                stack(parts)
            }
            (TimeRef::Static, At::Range(s)) => {
                let x = self
                    .s
                    .statics
                    .get(&var)
                    .cloned()
                    .ok_or_else(|| RtError::Shape(format!("static {var} unset")))?;
                Ok(tile(x, tt + 1 - s as usize))
            }
            (TimeRef::Static, _) => self
                .s
                .statics
                .get(&var)
                .cloned()
                .ok_or_else(|| RtError::Shape(format!("static {var} unset"))),
            (TimeRef::Lag(j), At::Step(t)) => self.s.step(var, i64::from(t) - i64::from(j)),
            (TimeRef::Step(s), _) if timed => self.s.step(var, s),
            // A sequence read inside an argument of a net over time that is an expression
            // (`back(0.1 * y[t:])`): the argument is evaluated over all steps, each step
            // reading its own value.
            (TimeRef::Suffix | TimeRef::Prefix, At::Range(_) | At::Step(_)) if timed => {
                self.read(var, TimeRef::Lag(0), at)
            }
            (TimeRef::Lag(j), At::Range(s)) => {
                let x = self.padded(var)?;
                let lo = (i64::from(s) - i64::from(j) + k as i64 - 1) as usize * b;
                let hi = (tt as i64 - i64::from(j) + k as i64) as usize * b;
                Ok(ops::rows(x, lo, hi))
            }
            _ => Err(RtError::Shape(format!(
                "read of {var} at {time:?} in {}",
                match at {
                    At::Static => "a static context",
                    At::Step(_) => "a step",
                    At::Range(_) => "a range",
                }
            ))),
        }
    }

    /// A net over time, run once per forward pass over the whole sequence.
    pub(super) fn rnn(&mut self, e: &Expr, at: At) -> Result<T2<T>, RtError> {
        let key: *const Expr = e;
        if !self.s.rnn.contains_key(&key) {
            let ExprKind::Rnn { net, seqs } = &e.kind else {
                return Err(RtError::Shape("rnn cache of a non-rnn".into()));
            };
            let NetKind::Rnn {
                hidden, reverse, ..
            } = self.m().nets[*net].kind
            else {
                return Err(RtError::Shape("rnn of a non-rnn net".into()));
            };
            let (b, tt) = (self.s.b, self.s.tt);
            // Each argument's values per step: a plain sequence read is the variable's step;
            // any other expression of sequences is evaluated once over steps 1..=T and split.
            let mut per_arg: Vec<std::vec::IntoIter<T2<T>>> = Vec::with_capacity(seqs.len());
            for sq in seqs {
                let steps = match sq.kind {
                    ExprKind::Var { var, .. } => (1..=tt as i64)
                        .map(|t| self.s.step(var, t))
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => {
                        let n = sq.shape.numel();
                        let x = self.eval_rows(sq, At::Range(1), n)?;
                        gru::split_time(x, tt)?
                    }
                };
                per_arg.push(steps.into_iter());
            }
            let mut xs = Vec::with_capacity(tt);
            for _ in 1..=tt {
                let mut acc: Option<T2<T>> = None;
                for it in per_arg.iter_mut() {
                    let x = it
                        .next()
                        .ok_or_else(|| RtError::Shape("rnn argument without a step".into()))?;
                    acc = Some(match acc {
                        None => x,
                        Some(a) => ops::cat_cols(a, x),
                    });
                }
                xs.push(acc.ok_or_else(|| RtError::Shape("rnn without inputs".into()))?);
            }
            let h0 = self.p.input(ops::full(self.p.device(), b, hidden, 0.0));
            let outs = gru::rnn_scan(
                self.p,
                &crate::lower::net_prefix(self.m(), *net),
                h0,
                xs,
                reverse,
            )?;
            self.s.rnn.insert(key, (outs, None));
        }
        let tt = self.s.tt;
        let entry = self.s.rnn.get_mut(&key).expect("inserted above");
        match at {
            At::Step(t) => Ok(entry.0[t as usize - 1].clone()),
            At::Range(s) => {
                if entry.1.is_none() {
                    entry.1 = Some(stack(entry.0.clone())?);
                }
                let all = entry.1.clone().expect("set above");
                let b = self.s.b;
                Ok(ops::rows(all, (s as usize - 1) * b, tt * b))
            }
            At::Static => Err(RtError::Shape("a net over time in a static context".into())),
        }
    }

    /// Recorded q parameters of a latent over a range, stacked.
    pub(super) fn recorded(&mut self, v: VarId, range: Range) -> Result<Recorded<T>, RtError> {
        let recs = self
            .s
            .recs
            .get(&v)
            .ok_or_else(|| RtError::Shape(format!("latent {v} not sampled")))?;
        let steps: Vec<usize> = match range {
            Range::Static => vec![0],
            Range::At { t } => vec![t as usize - 1],
            Range::From { t } => (t as usize - 1..self.s.tt).collect(),
        };
        let mut fam = Family::Normal;
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut pre = Vec::new();
        let mut params: Vec<Vec<T2<T>>> = Vec::new();
        let mut kind = 0;
        for i in steps {
            let r = recs.get(i).and_then(|r| r.as_ref()).ok_or_else(|| {
                RtError::Shape(format!("latent {v} not sampled at step {}", i + 1))
            })?;
            fam = r.family;
            match r.dist.clone_vals() {
                DistVals::LocScale(x, y) => {
                    kind = 1;
                    a.push(x);
                    b.push(y);
                }
                DistVals::Logits(x) => {
                    kind = 2;
                    a.push(x)
                }
                DistVals::Bounds(x, y) => {
                    kind = 3;
                    a.push(x);
                    b.push(y);
                }
                DistVals::Params(ps) => {
                    kind = 4;
                    params.resize_with(ps.len(), Vec::new);
                    for (acc, x) in params.iter_mut().zip(ps) {
                        acc.push(x);
                    }
                }
                DistVals::Flat => {}
            }
            if let Some(u) = &r.pre {
                pre.push(u.clone());
            }
        }
        let dv = match kind {
            1 => DistVals::LocScale(stack(a)?, stack(b)?),
            2 => DistVals::Logits(stack(a)?),
            3 => DistVals::Bounds(stack(a)?, stack(b)?),
            4 => DistVals::Params(params.into_iter().map(stack).collect::<Result<_, _>>()?),
            _ => DistVals::Flat,
        };
        let pre = if pre.is_empty() {
            None
        } else {
            Some(stack(pre)?)
        };
        Ok((fam, dv, pre))
    }

    /// The sampled values of a chain variable over a range.
    pub(super) fn values(&mut self, v: VarId, range: Range) -> Result<T2<T>, RtError> {
        match range {
            Range::Static => self.read(v, TimeRef::Static, At::Static),
            Range::At { t } => self.s.step(v, i64::from(t)),
            Range::From { t } => self.read(v, TimeRef::Lag(0), At::Range(t)),
        }
    }
}
