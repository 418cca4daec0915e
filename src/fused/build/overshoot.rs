//! Latent overshooting (PlaNet) on the fused runtime: the same computation as
//! `reference/exec/overshoot.rs`, lowered into the same graph after the terms.
//!
//! Input: the main program's chain buffers (built by `run`) and q's records. Output: one
//! [`TermOut`] per distance `d = 2 … D` and target latent, `(T − d)·b` rows of
//! `KL(sg(q(s_t)) ‖ p_d(s_t))` for `t = d + 1 … T` ([`Head::Overshoot`]; the engine seeds
//! them with `kl_weight / D`, they are not part of the ELBO).
//! Invariants: each distance is a window program of `(T − d)·b` rows and `d + 1` steps whose
//! row `(s − 1)·b + i` is steps `s … s + d` of sequence `i`, so window step `u` of a data
//! variable, and window step 1 of a chain variable (the posterior), is one contiguous view
//! of the main buffer (rows of steps `u … u + T − d − 1`), never a copy; steps `2 … d + 1`
//! of chain variables are the window's own buffers. The window's noise is drawn after the
//! chain's, in the reference order (one `b`-row block per start).

use super::*;
use crate::lower::plan::{open_loop_order, ChainVar};

/// The main program a window reads.
pub(super) struct Win {
    /// The main program's rows per step.
    b: usize,
    /// The main program's variable buffers.
    vars: HashMap<VarId, BufId>,
    /// States whose window step 2 equals the main chain's step `s + 1` (p's definition on
    /// the posterior at `s`: an RSSM's `h`), read from the main buffer and not recomputed.
    shared: Vec<VarId>,
    /// p factors whose window-step-2 parameters are rows of the main KL term's (every read
    /// is of data, of step 1 or of a shared state), with those views.
    pviews: PViews,
}

impl Builder<'_> {
    /// In a window: step `s` of data, or step `s ≤ 1` of a chain variable, as a view of the
    /// main buffer; `None` outside a window or for the window's own steps.
    pub(super) fn win_view(&self, v: VarId, s: i64) -> R<Option<View>> {
        let Some(w) = &self.win else { return Ok(None) };
        let data = matches!(self.m.vars[v].role, Role::Observed | Role::Input);
        if !data && s > 1 && !(s == 2 && w.shared.contains(&v)) {
            return Ok(None);
        }
        let (Some(&buf), i) = (w.vars.get(&v), s + self.k as i64 - 1) else {
            return unsup(format!(
                "`{}` in an overshooting window",
                self.m.vars[v].name
            ));
        };
        if i < 0 || (i as usize) * w.b + self.b > self.g.bufs[buf].rows {
            return unsup(format!("step {s} of `{}` in a window", self.m.vars[v].name));
        }
        Ok(Some(View {
            buf,
            r0: i as usize * w.b,
            rows: self.b,
        }))
    }

    /// Whether window step `t` of `v` is the main chain's (nothing to compute).
    pub(super) fn win_shares(&self, v: VarId, t: u32) -> bool {
        self.win
            .as_ref()
            .is_some_and(|w| t == 2 && w.shared.contains(&v))
    }

    /// At window step 2, copy p factor `f`'s parameters from the main KL term's views into
    /// `dest`; `false` where they are not shared (the caller evaluates them).
    pub(super) fn win_dist(&mut self, f: FactorId, t: u32, dest: (View, View)) -> bool {
        let Some(w) = &self.win else { return false };
        let Some(&(pl, ps, t0)) = w.pviews.get(&f) else {
            return false;
        };
        if t != 2 || t0 > 2 {
            return false;
        }
        let off = (2 - t0 as usize) * w.b;
        if off + self.b > pl.rows {
            return false;
        }
        let at = |v: View| View {
            buf: v.buf,
            r0: v.r0 + off,
            rows: dest.0.rows,
        };
        self.copy_into(at(pl), dest.0);
        self.copy_into(at(ps), dest.1);
        true
    }

    /// Which states and p factors an open-loop window can take from the main program at its
    /// step 2: a factor whose reads are all data, lagged (window step 1 is the posterior) or
    /// shared states; a state, when the main chain computes it with that same factor at
    /// every step `2 … T`.
    fn window_sharing(&self, order: &[ChainVar]) -> (Vec<VarId>, PViews) {
        let m = self.m;
        let mut shared: Vec<VarId> = Vec::new();
        let reads_ok = |f: FactorId, shared: &[VarId]| {
            m.factors[f].parents.iter().all(|r| {
                matches!(m.vars[r.var].role, Role::Observed | Role::Input)
                    || matches!(r.time, TimeRef::Lag(j) if j >= 1)
                    || (r.time == TimeRef::Lag(0) && shared.contains(&r.var))
            })
        };
        let mut factors = Vec::new();
        for cv in order {
            let Some(prod) = cv.at(2) else { continue };
            if !reads_ok(prod.factor, &shared) {
                continue;
            }
            factors.push(prod.factor);
            if m.vars[cv.var].role != Role::State {
                continue;
            }
            let main = self.prog.plan.timed.iter().find(|c| c.var == cv.var);
            let same = main.is_some_and(|c| {
                (2..=self.tt as u32).all(|t| c.at(t).is_some_and(|p| p.factor == prod.factor))
            });
            if same {
                shared.push(cv.var);
            }
        }
        let pviews = (self.pviews.iter())
            .filter(|(f, _)| factors.contains(f))
            .map(|(f, v)| (*f, *v))
            .collect();
        (shared, pviews)
    }

    /// The overshooting terms of every distance (empty without `overshooting`).
    pub(super) fn overshooting(&mut self) -> R<Vec<TermOut>> {
        let m = self.m;
        let dmax = m.objective.overshooting as usize;
        let mut out = Vec::new();
        if dmax < 2 {
            return Ok(out);
        }
        if m.vars.iter().any(|v| !v.timed) {
            return unsup("overshooting with static variables");
        }
        if m.nets.iter().any(|n| matches!(n.kind, NetKind::Rnn { .. })) {
            return unsup("overshooting with nets over time");
        }
        let targets = crate::lower::overshoot::targets(m);
        let order = open_loop_order(m, false);
        let (shared, pviews) = self.window_sharing(&order);
        let tt = self.tt;
        for d in 2..=dmax {
            if tt <= d {
                continue;
            }
            let starts = tt - d;
            let win = (shared.clone(), pviews.clone());
            let pdists = self.in_window(d, win, |w| w.window(d, &order, &targets))?;
            // KL(sg(q) ‖ p_d) against q's records at steps d + 1 … T.
            for (v, pl, ps) in pdists {
                let Some(r) = self.recs.get(&v).copied() else {
                    return unsup("overshooting of an unsampled latent");
                };
                let at = At::Range(d as u32 + 1);
                let (ql, qs) = (self.rec_rows(r.loc, at), self.rec_rows(r.scale, at));
                let o = self.temp(ql.rows, 1, true);
                self.op(Op::NormalKl {
                    ql,
                    qs,
                    pl,
                    ps,
                    out: o,
                    gq: 0.0,
                    gp: 1.0,
                    floor: None,
                });
                out.push(TermOut {
                    rows: Some(o),
                    tp: starts,
                    step0: d,
                    maskable: true,
                    head: Head::Overshoot,
                });
            }
        }
        Ok(out)
    }

    /// The open loop of one window: p's general cases at window steps 2 … d, then what
    /// precedes the first target at step d + 1; returns each target's p_d `(loc, scale)`.
    fn window(
        &mut self,
        d: usize,
        order: &[ChainVar],
        targets: &[(VarId, FactorId)],
    ) -> R<Vec<(VarId, View, View)>> {
        for u in 2..=d as u32 {
            for cv in order {
                self.produce(cv, At::Step(u))?;
            }
        }
        let last = At::Step(d as u32 + 1);
        for cv in order {
            if targets.iter().any(|(v, _)| *v == cv.var) {
                break;
            }
            self.produce(cv, last)?;
        }
        let mut out = Vec::new();
        for &(v, pf) in targets {
            let FactorBody::Sample(pd) = &self.m.factors[pf].body else {
                continue;
            };
            let size = self.m.vars[v].ty.size();
            let (pl, ps) = self.dist(pd, last, size, None)?;
            let Some(ps) = ps else {
                return unsup("an overshooting target without a scale");
            };
            if pd.family != Family::Normal {
                return unsup("overshooting of a non-Normal latent");
            }
            out.push((v, pl, ps));
        }
        Ok(out)
    }

    /// Run `f` on a window program of distance `d` (`(T − d)·b` rows of `d + 1` steps over
    /// this program's buffers; `sharing`: what its step 2 takes from the main program) and
    /// append what it built — its ops, and its noise after this program's, one `b`-row
    /// block per start.
    pub(super) fn in_window<T>(
        &mut self,
        d: usize,
        (shared, pviews): (Vec<VarId>, PViews),
        f: impl FnOnce(&mut Self) -> R<T>,
    ) -> R<T> {
        let starts = self.tt - d;
        let mut w = Builder {
            g: std::mem::take(&mut self.g),
            k: self.k,
            pbuf: std::mem::take(&mut self.pbuf),
            consts: std::mem::take(&mut self.consts),
            win: Some(Win {
                b: self.b,
                vars: self.vars.clone(),
                shared,
                pviews,
            }),
            learn: self.learn,
            // Windows draw no discrete latents (the capability table sends overshooting of
            // non-Normal latents to the reference runtime).
            ..Builder::blank(
                self.prog,
                self.params,
                starts * self.b,
                d + 1,
                Default::default(),
            )
        };
        let res = f(&mut w);
        self.g = std::mem::take(&mut w.g);
        self.pbuf = std::mem::take(&mut w.pbuf);
        self.consts = std::mem::take(&mut w.consts);
        let out = res?;
        if !w.pre.is_empty() {
            return unsup("a window with precomputed products");
        }
        self.noise.append(&mut w.noise);
        self.noise_meta
            .extend(w.noise_meta.iter().map(|(kind, _)| (*kind, starts)));
        Ok(out)
    }
}
