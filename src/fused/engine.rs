//! Running the static program: the batch split over workers (one per core, each with its own
//! buffers and parameter gradients), noise drawn in the reference path's order, the loss head
//! (term values per sequence, masks, free nats, KL weights, α) on the host between the
//! parallel forward and backward passes, and the summed gradients.

use super::build::{build, Built, Head, TermOut, Unsupported};
use super::graph::{BufKind, Op};
use super::kernels::Worker;
use crate::derive::Compute;
use crate::ir::Alpha;
use crate::lower::{Batch, Program, ALPHA_PARAM, BASELINE_PARAM};
use crate::objective::{free_nats, shaping, Floor, Shaping};
use crate::runtime::nets::params::ParamStore;
use crate::runtime::rng::Rng;

struct Share {
    w: Worker,
    data: Vec<super::build::DataSlot>,
    noise: Vec<super::graph::View>,
    noise_meta: Vec<(super::families::Noise, usize)>,
    terms: Vec<TermOut>,
    /// `(parameter, buffer)` of every parameter the program reads.
    params: Vec<(usize, super::graph::BufId)>,
    /// First sequence of the batch and number of sequences.
    start: usize,
    b: usize,
    chain: Vec<(crate::ir::VarId, super::graph::BufId)>,
    k: usize,
    /// Σ log q rows of the score-function draws.
    sf: Vec<super::graph::View>,
    /// The batch mask a chain summed out reads, `(T·b, 1)`.
    mask: Option<super::graph::BufId>,
}

/// The result of a forward pass.
pub struct Fwd {
    /// ELBO per sequence (no modifiers).
    pub elbo: Vec<f32>,
    /// Each term's mean value per sequence.
    pub terms: Vec<f64>,
    /// Mean entropy per step of auto-α policies.
    pub policy_entropy: Option<f32>,
}

/// A compiled program for one batch shape, with its parameter mirror.
pub struct Engine {
    shares: Vec<Share>,
    b: usize,
    tt: usize,
    /// Parameter names in index order (the store's order).
    pub names: Vec<String>,
    /// Parameter values (authoritative while training; copied to the store after updates).
    pub values: Vec<Vec<f32>>,
    /// Summed gradients of the last backward pass.
    pub grads: Vec<Vec<f32>>,
    alpha: Option<usize>,
    /// Per term (then per overshooting output): the loss seed factor of the last forward pass
    /// (without the mask).
    seeds: Vec<Seed>,
    /// IWAE: each row's self-normalised importance weight in the last forward pass (the
    /// gradient of the log-mean-exp), multiplying the seeds of the ELBO's terms.
    iwae_w: Option<Vec<f32>>,
    /// (H − target)·α for the auto-α gradient.
    alpha_grad: f32,
    /// Per parameter: whether the program reads it (decided once, at compile time).
    reads: Vec<bool>,
    /// The batch's first row and rows in the global batch whose noise is drawn (a rank of a
    /// distributed job computes part of it): `(0, b)` alone.
    window: (usize, usize),
    /// The score-function surrogate: the trainer's moving-average baseline, the learned
    /// offset's parameter, the last forward pass's d(loss)/d(Σ log q) per sequence.
    sf: ScoreFunction,
}

/// The score-function surrogate's state (see [`Engine::set_baseline`]).
#[derive(Default)]
struct ScoreFunction {
    baseline: f32,
    offset: Option<usize>,
    seeds: Vec<f32>,
}

#[derive(Clone, Copy)]
enum Seed {
    None,
    /// Every row: `c` (times the mask).
    All(f32),
    /// Rows above `floor` only.
    Above(f32, f32),
    /// Free nats after the mean: `c` on every row if the batch mean `total / rows` is above
    /// `nats`, else nothing; decided by [`Engine::settle`] (where a distributed job sums the
    /// batch's totals over its ranks first).
    AfterMean {
        c: f32,
        nats: f64,
        total: f64,
        rows: usize,
    },
}

/// What a term's rows are multiplied by in its value: 1/α for a reward (the automatic α's
/// current value `alpha`), 1 elsewhere.
fn reward_mult(m: &crate::ir::Model, head: Head, alpha: Option<f32>) -> f32 {
    match head {
        Head::Reward { opt } => match m.optimality[opt].alpha {
            Alpha::Fixed(a) => 1.0 / a as f32,
            Alpha::Auto { .. } => 1.0 / alpha.unwrap_or(1.0),
        },
        _ => 1.0,
    }
}

/// Matmul FLOPs of one forward pass of a graph.
fn flops(g: &super::graph::Graph) -> f64 {
    let mut f = 0.0;
    for op in &g.ops {
        match op {
            Op::Dense { xs, out, .. } => {
                for (x, _) in xs {
                    f += 2.0 * (out.rows * g.cols(*x) * g.cols(*out)) as f64;
                }
            }
            Op::Gru { xs, out, .. } => {
                let h3 = 3 * g.cols(*out);
                for (x, _) in xs {
                    f += 2.0 * (out.rows * g.cols(*x) * h3) as f64;
                }
                f += 2.0 * (out.rows * g.cols(*out) * h3) as f64;
            }
            Op::Gemm { a, out, .. } => f += 2.0 * (a.rows * g.cols(*a) * g.cols(*out)) as f64,
            Op::Rnn { xs, gi, out, .. } => {
                let h3 = 3 * g.cols(*out);
                for (x, _) in xs {
                    f += 2.0 * (gi.rows * g.cols(*x) * h3) as f64;
                }
                f += 2.0 * (gi.rows * g.cols(*out) * h3) as f64;
            }
            _ => {}
        }
    }
    f
}

impl Engine {
    /// Compile `prog` for batches of `b` sequences of `tt` steps, with the parameters of
    /// `store`. `threads`: workers (0 = decide from the work per step).
    pub fn new(
        prog: &Program,
        store: &ParamStore,
        b: usize,
        tt: usize,
        threads: usize,
    ) -> Result<Engine, Unsupported> {
        let (index, values) = super::build::param_index(store);
        let names: Vec<String> = store.iter().map(|(n, _)| n.clone()).collect();
        let one = build(prog, &index, b, tt)?;
        // Two workers at most (the split is in two). Automatic: one per core, but one where
        // the work per step is too small to pay for the hand-off (W3: a few hundred FLOPs).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = match threads {
            0 if flops(&one.g) >= 2e6 => cores,
            0 => 1,
            n => n,
        }
        .clamp(1, 2)
        .min(b.max(1));
        let mut shares = Vec::with_capacity(workers);
        let mut start = 0;
        for w in 0..workers {
            let bw = b / workers + usize::from(w < b % workers);
            let Built {
                g,
                data,
                noise,
                noise_meta,
                terms,
                chain,
                k,
                sf,
                mask,
                ..
            } = if workers == 1 {
                build(prog, &index, b, tt)?
            } else {
                build(prog, &index, bw, tt)?
            };
            let params = (g.bufs.iter().enumerate())
                .filter_map(|(bi, buf)| match buf.kind {
                    BufKind::Param(p) => Some((p, bi)),
                    _ => None,
                })
                .collect();
            shares.push(Share {
                w: Worker::new(g),
                data,
                noise,
                noise_meta,
                terms,
                params,
                start,
                b: bw,
                chain,
                k,
                sf,
                mask,
            });
            start += bw;
        }
        drop(one);
        let grads = values.iter().map(|v| vec![0.0; v.len()]).collect();
        let mut reads = vec![false; values.len()];
        for sh in &shares {
            for &(p, _) in &sh.params {
                reads[p] = true;
            }
        }
        // The loss head reads the automatic temperature (its gradient is set in `backward`),
        // though no op of the graph does: it is this program's parameter to update.
        let alpha = names.iter().position(|n| n == ALPHA_PARAM);
        if let Some(i) = alpha {
            reads[i] = true;
        }
        let offset = names.iter().position(|n| n == BASELINE_PARAM);
        let offset = offset.filter(|_| !shares[0].sf.is_empty());
        if let Some(i) = offset {
            reads[i] = true;
        }
        let nterms = shares[0].terms.len();
        Ok(Engine {
            shares,
            b,
            tt,
            names,
            values,
            grads,
            alpha,
            seeds: vec![Seed::None; nterms],
            iwae_w: None,
            alpha_grad: 0.0,
            reads,
            window: (0, b),
            sf: ScoreFunction {
                offset,
                ..ScoreFunction::default()
            },
        })
    }

    /// The score-function baseline (the trainer's moving average of the ELBO per sequence)
    /// of the next forward pass; 0 until set.
    pub fn set_baseline(&mut self, baseline: f32) {
        self.sf.baseline = baseline;
    }

    /// The batch shape this program was built for.
    pub fn shape(&self) -> (usize, usize) {
        (self.b, self.tt)
    }

    /// Workers the batch is split over.
    pub fn workers(&self) -> usize {
        self.shares.len()
    }

    /// Ops and planned floats (values and gradients, all workers) of the program.
    pub fn size(&self) -> (usize, usize) {
        let ops = self.shares.iter().map(|s| s.w.g.ops.len()).sum();
        let floats = self.shares.iter().map(|s| s.w.g.floats()).sum();
        (ops, floats)
    }

    /// This batch is rows `start..start + b` of a global batch of `total` rows: the noise of
    /// all `total` rows is drawn (the single process's stream) and this batch's rows kept.
    pub fn set_window(&mut self, start: usize, total: usize) {
        self.window = (start, total.max(start + self.b));
    }

    /// The parameter values and the summed gradients of the last backward pass, lent to the
    /// optimiser; [`Engine::give_back`] returns them (the values updated).
    pub fn lend(&mut self) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        (
            std::mem::take(&mut self.values),
            std::mem::take(&mut self.grads),
        )
    }

    /// Take back what [`Engine::lend`] lent.
    pub fn give_back(&mut self, values: Vec<Vec<f32>>, grads: Vec<Vec<f32>>) {
        self.values = values;
        self.grads = grads;
    }

    /// Whether the program reads parameter `i` (a parameter it does not read has no gradient
    /// and is left alone by its optimiser step).
    pub fn reads(&self, i: usize) -> bool {
        self.reads.get(i).copied().unwrap_or(false)
    }

    /// The values a timed latent or state took in the last forward pass, all steps of all
    /// sequences (`T·b` rows of its size; the order of rows is the same for every variable),
    /// or `None` for a variable not on the chain.
    pub fn chain_values(&self, var: crate::ir::VarId) -> Option<Vec<f32>> {
        let mut out = Vec::new();
        for sh in &self.shares {
            let &(_, buf) = sh.chain.iter().find(|(v, _)| *v == var)?;
            let cols = sh.w.g.bufs[buf].cols;
            let vals = sh.w.vals(buf);
            out.extend_from_slice(&vals[sh.k * sh.b * cols..(sh.k + self.tt) * sh.b * cols]);
        }
        Some(out)
    }

    /// Reload the parameter mirror from `store` (after a resume or load).
    pub fn pull(&mut self, store: &ParamStore) {
        for (v, (_, p)) in self.values.iter_mut().zip(store.iter()) {
            *v = p.to_host();
        }
    }

    fn fill(&mut self, batch: &Batch, rng: &mut Rng, prog: &Program) {
        let (b, tt) = (self.b, self.tt);
        for sh in &mut self.shares {
            for slot in &sh.data {
                let size = prog.model.vars[slot.var].ty.size();
                let Some(host) = batch.data.get(&slot.var) else {
                    continue;
                };
                let dst = sh.w.vals_mut(slot.buf);
                let steps = if slot.timed { tt } else { 1 };
                for t in 0..steps {
                    let src = &host[(t * b + sh.start) * size..(t * b + sh.start + sh.b) * size];
                    let d0 = (slot.row0 + t * sh.b) * size;
                    dst[d0..d0 + sh.b * size].copy_from_slice(src);
                }
            }
            if let Some(mb) = sh.mask {
                let dst = sh.w.vals_mut(mb);
                for t in 0..tt {
                    for i in 0..sh.b {
                        dst[t * sh.b + i] = batch
                            .mask
                            .as_ref()
                            .map_or(1.0, |mk| mk[t * b + sh.start + i]);
                    }
                }
            }
        }
        // Noise: one (b, size) block per sampled variable and step, in the reference order
        // (of the global batch, keeping this batch's rows).
        let (g0, gb) = self.window;
        let nslots = self.shares[0].noise.len();
        let mut block = Vec::new();
        for j in 0..nslots {
            let v0 = self.shares[0].noise[j];
            let (kind, blocks) = self.shares[0].noise_meta[j];
            let size = self.shares[0].w.g.bufs[v0.buf].cols;
            block.clear();
            block.extend((0..blocks * gb * size).map(|_| kind.draw(rng)));
            for sh in &mut self.shares {
                let v = sh.noise[j];
                let dst = sh.w.vals_mut(v.buf);
                // Block `q` of the global draw: this share's rows, after the block's first.
                for q in 0..blocks {
                    let (src0, dst0) = ((q * gb + g0 + sh.start) * size, (v.r0 + q * sh.b) * size);
                    dst[dst0..dst0 + sh.b * size].copy_from_slice(&block[src0..src0 + sh.b * size]);
                }
            }
        }
    }

    fn run_all(&mut self, f: impl Fn(&mut Share) + Sync) {
        match self.shares.as_mut_slice() {
            [a] => f(a),
            [a, b] => {
                // The second share on the worker thread, the first on this one.
                let b = std::sync::Mutex::new(b);
                super::handoff::join(
                    || f(a),
                    || f(&mut b.lock().unwrap_or_else(|p| p.into_inner())),
                );
            }
            many => {
                for s in many {
                    f(s);
                }
            }
        }
    }

    /// Fill data and noise, run the program forward and evaluate the loss head.
    pub fn forward(&mut self, prog: &Program, batch: &Batch, rng: &mut Rng, step: u64) -> Fwd {
        self.fill(batch, rng, prog);
        let params: Vec<&[f32]> = self.values.iter().map(|v| v.as_slice()).collect();
        for sh in &mut self.shares {
            sh.w.set_params(&params);
        }
        self.run_all(|sh| sh.w.forward());
        let (b, m) = (self.b, &prog.model);
        let alpha_val = self.alpha.map(|i| self.values[i][0].exp());
        let weight = prog.kl_weight(step) as f32;
        let mut elbo = vec![0.0f32; b];
        let mut terms = Vec::with_capacity(prog.elbo.terms.len());
        let (mut ent_sum, mut ent_rows) = (0.0f64, 0usize);
        // Each term's value per row is `mult` times its rows (1/α for rewards, 1 elsewhere).
        let mut mults = Vec::with_capacity(prog.elbo.terms.len());
        let mut per_seq = vec![0.0f32; b];
        for (ti, term) in prog.elbo.terms.iter().enumerate() {
            let t0 = &self.shares[0].terms[ti];
            let (head, tp) = (t0.head, t0.tp);
            let mult = reward_mult(m, head, alpha_val);
            mults.push(mult);
            let total = self.term_per_seq(ti, batch, mult, &mut per_seq);
            if head == Head::Entropy && prog.auto_alpha.is_some() {
                ent_sum += total;
                ent_rows += tp * b;
            }
            let sign = f32::from(term.kind.sign());
            for (e, v) in elbo.iter_mut().zip(&per_seq) {
                *e += sign * v;
            }
            terms.push(per_seq.iter().map(|x| f64::from(*x)).sum::<f64>() / b.max(1) as f64);
            // d(−objective)/d(row), before the mask.
            // The loss head applies the factor and the row and mean floors; balancing and
            // per-element floors are in the KL op (`build`).
            let Shaping {
                factor,
                floor,
                balance: _,
            } = shaping(&term.modifiers, weight);
            self.seeds[ti] = match (head, term.compute) {
                (_, _) if t0.rows.is_none() => Seed::None,
                (Head::Kl, Compute::Kl(_)) => match floor {
                    // Decided in `settle`, on the whole (global) batch's mean.
                    Some(Floor::Mean(nats)) => Seed::AfterMean {
                        c: factor,
                        nats,
                        total,
                        rows: tp * b,
                    },
                    Some(Floor::Row(n)) => Seed::Above(factor, n),
                    Some(Floor::Element(_)) | None => Seed::All(factor),
                },
                _ => Seed::All(-sign * factor * mult),
            };
        }
        self.overshooting_seeds(prog, weight);
        let elbo = self.iwae_head(prog, elbo, &mults);
        let policy_entropy = (ent_rows > 0).then(|| (ent_sum / ent_rows as f64) as f32);
        // Score function: the surrogate Σ (sg(ELBO) − baseline − sg(β))·Σ log q and β's
        // regression −½ Σ (sg(ELBO) − baseline − β)², per sequence (`reference/exec/terms.rs`).
        if let Some(i) = self.sf.offset {
            let beta = self.values[i][0];
            let base = self.sf.baseline;
            self.sf.seeds = elbo.iter().map(|e| -((e - base) - beta)).collect();
        }
        self.alpha_grad = match (prog.auto_alpha, policy_entropy, alpha_val) {
            (Some(target), Some(h), Some(a)) => a * (h - target as f32),
            _ => 0.0,
        };
        Fwd {
            elbo,
            terms,
            policy_entropy,
        }
    }

    /// Term `ti`'s value per sequence of the last forward pass into `per_seq` (`b` rows): its
    /// rows summed over its steps, masked, times `mult`; returns the sum of its masked rows
    /// (without `mult`). The one reading of a term's rows, for the loss head and evaluation.
    fn term_per_seq(&self, ti: usize, batch: &Batch, mult: f32, per_seq: &mut [f32]) -> f64 {
        let b = self.b;
        let t0 = &self.shares[0].terms[ti];
        let (tp, step0) = (t0.tp, t0.step0);
        let mask = batch.mask.as_ref().filter(|_| t0.maskable);
        per_seq.fill(0.0);
        let mut total = 0.0f64;
        for sh in &self.shares {
            let Some(v) = sh.terms[ti].rows else { continue };
            let rows = sh.w.view(v);
            for s in 0..tp {
                for i in 0..sh.b {
                    let mut x = rows[s * sh.b + i];
                    if let Some(mk) = mask {
                        x *= mk[(step0 + s) * b + sh.start + i];
                    }
                    per_seq[sh.start + i] += x * mult;
                    total += f64::from(x);
                }
            }
        }
        total
    }

    /// Each ELBO term's value per row of the last forward pass on `batch` (`b` rows, the
    /// reference path's `Forward::terms`: masked, summed over the term's steps, a reward
    /// divided by α), whose means are [`Fwd::terms`]. Computed after [`Engine::forward`] from
    /// the terms' outputs, so the training step does not pay for it (evaluation reads it).
    pub fn term_rows(&self, prog: &Program, batch: &Batch) -> Vec<Vec<f32>> {
        let alpha_val = self.alpha.map(|i| self.values[i][0].exp());
        (0..prog.elbo.terms.len())
            .map(|ti| {
                let head = self.shares[0].terms[ti].head;
                let mult = reward_mult(&prog.model, head, alpha_val);
                let mut per_seq = vec![0.0f32; self.b];
                self.term_per_seq(ti, batch, mult, &mut per_seq);
                per_seq
            })
            .collect()
    }

    /// Latent overshooting's seeds: `kl_weight / D` on every row of each distance's KL (the
    /// outputs after the ELBO's terms).
    fn overshooting_seeds(&mut self, prog: &Program, weight: f32) {
        let nterms = prog.elbo.terms.len();
        let dmax = prog.model.objective.overshooting.max(1) as f32;
        for (ti, s) in self.seeds.iter_mut().enumerate().skip(nterms) {
            *s = if self.shares[0].terms[ti].rows.is_some() {
                Seed::All(weight / dmax)
            } else {
                Seed::None
            };
        }
    }

    /// IWAE's log-mean-exp over the `K` copies of each sequence (block `k` of the batch is
    /// copy `k`, as the trainer tiles it): returns the ELBO per sequence
    /// (`log (1/K) Σ_k e^{w_k}`) and keeps each row's normalised weight for the seeds of the
    /// ELBO's terms, whose value per row is `mults[term]` times its rows (their modifiers do
    /// not apply: IWAE's objective is the log-mean-exp alone, as on the reference path).
    fn iwae_head(&mut self, prog: &Program, elbo: Vec<f32>, mults: &[f32]) -> Vec<f32> {
        let kk = prog.model.objective.iwae.max(1) as usize;
        if kk < 2 {
            self.iwae_w = None;
            return elbo;
        }
        let n = elbo.len() / kk;
        let mut w = vec![0.0f32; elbo.len()];
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let mx = (0..kk)
                .map(|k| elbo[k * n + i])
                .fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = (0..kk).map(|k| f64::from(elbo[k * n + i] - mx).exp()).sum();
            let lse = f64::from(mx) + sum.ln();
            for k in 0..kk {
                w[k * n + i] = (f64::from(elbo[k * n + i]) - lse).exp() as f32;
            }
            out.push((lse - (kk as f64).ln()) as f32);
        }
        for (ti, term) in prog.elbo.terms.iter().enumerate() {
            if !matches!(self.seeds[ti], Seed::None) {
                self.seeds[ti] = Seed::All(-f32::from(term.kind.sign()) * mults[ti]);
            }
        }
        self.iwae_w = Some(w);
        out
    }

    /// Decide the loss seeds that depend on batch means (free nats after the mean), with
    /// `sum` applied to the batch's `[total, rows, …]` of those terms first (a distributed
    /// job's sum over ranks; nothing for a single process). Called with the same number of
    /// such terms on every rank; a no-op when there are none.
    pub fn settle(&mut self, sum: impl FnOnce(&mut [f64])) {
        let mut buf: Vec<f64> = Vec::new();
        for s in &self.seeds {
            if let Seed::AfterMean { total, rows, .. } = *s {
                buf.extend([total, rows as f64]);
            }
        }
        if buf.is_empty() {
            return;
        }
        sum(&mut buf);
        let mut at = buf.chunks(2);
        for s in &mut self.seeds {
            if let Seed::AfterMean { c, nats, .. } = *s {
                let part = at.next().unwrap_or(&[0.0, 1.0]);
                let mean = part[0] / part[1].max(1.0);
                *s = Seed::All(free_nats::after_mean_gate(c, nats, mean));
            }
        }
    }

    /// Backward from the loss of the last forward pass; sums the workers' parameter gradients
    /// into [`Engine::grads`].
    pub fn backward(&mut self, batch: &Batch) {
        self.settle(|_| {});
        let b = self.b;
        let seeds = std::mem::take(&mut self.seeds);
        let iwae_w = self.iwae_w.take();
        let sf_seeds = std::mem::take(&mut self.sf.seeds);
        self.run_all(|sh| {
            sh.w.zero_grads();
            for (ti, t) in sh.terms.iter().enumerate() {
                let Some(v) = t.rows else { continue };
                let seed = seeds[ti];
                if matches!(seed, Seed::None) {
                    continue;
                }
                let mask = batch.mask.as_ref().filter(|_| t.maskable);
                let (bw, start) = (sh.b, sh.start);
                let iw = iwae_w.as_deref().filter(|_| t.head != Head::Overshoot);
                sh.w.seed(v, |r, val| {
                    let (s, i) = (r / bw, r % bw);
                    let mut mk = mask.map_or(1.0, |mk| mk[(t.step0 + s) * b + start + i]);
                    if let Some(w) = iw {
                        mk *= w[start + i];
                    }
                    match seed {
                        Seed::All(c) => c * mk,
                        Seed::Above(c, floor) if val > floor => c * mk,
                        _ => 0.0,
                    }
                });
            }
            for v in &sh.sf {
                let (bw, start) = (sh.b, sh.start);
                sh.w.seed(*v, |r, _| sf_seeds[start + r % bw]);
            }
            sh.w.backward();
        });
        self.seeds = seeds;
        self.iwae_w = iwae_w;
        // Sum the workers' parameter gradients, half the parameters on each thread.
        let parts: Vec<Vec<&[f32]>> = {
            let mut parts: Vec<Vec<&[f32]>> = vec![Vec::new(); self.grads.len()];
            for sh in &self.shares {
                for &(p, bi) in &sh.params {
                    parts[p].push(sh.w.grad(bi));
                }
            }
            parts
        };
        let items: Vec<(&mut Vec<f32>, Vec<&[f32]>)> = self.grads.iter_mut().zip(parts).collect();
        let sum = |(g, ps): (&mut Vec<f32>, Vec<&[f32]>)| {
            g.fill(0.0);
            for p in ps {
                for (a, v) in g.iter_mut().zip(p) {
                    *a += v;
                }
            }
        };
        if self.shares.len() > 1 {
            super::handoff::each(items, |(g, _)| g.len(), sum);
        } else {
            items.into_iter().for_each(sum);
        }
        if let Some(i) = self.alpha {
            self.grads[i][0] += self.alpha_grad;
        }
        // β's regression: d(loss)/dβ = Σ −(sg(ELBO) − baseline − β), the surrogate's seeds.
        if let Some(i) = self.sf.offset {
            self.grads[i][0] += sf_seeds.iter().sum::<f32>();
        }
        self.sf.seeds = sf_seeds;
    }
}
