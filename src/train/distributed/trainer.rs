//! The [`Trainer`]'s side of a data-parallel job: joining it (and refusing objectives that
//! couple the sequences of a batch), the global statistics of a step, the noise of the
//! reference path, the parameter check across ranks, and the loop of the ranks that do not
//! write ([`follow`]).

use super::{fingerprint, Collective, Shard};
use crate::train::{stream, EngineChoice, Sampling, TrainError, Trainer};
use std::sync::atomic::{AtomicBool, Ordering};

const AFTER_MEAN: &str = "free nats after the batch mean are split over ranks only by the fused runtime (on CPU); use `--runtime fused`, or per-step free nats";

impl Trainer {
    /// Join a data-parallel job: each global batch is split over `comm`'s ranks. Refuses
    /// objectives whose value is not a sum over sequences (IWAE couples a sequence's copies,
    /// an auto-tuned α uses the batch's mean entropy; free nats after the mean are summed over
    /// ranks by the fused runtime only) and batches with fewer rows than ranks.
    pub fn distribute(&mut self, comm: Box<dyn Collective>) -> Result<(), TrainError> {
        let size = comm.size();
        let refuse = |why: String| Err(TrainError::Distributed(why));
        if self.iwae() > 1 {
            return refuse("`iwae` objectives keep each sequence's importance samples together; distributed training splits only sums over sequences".into());
        }
        if self.program.auto_alpha.is_some() {
            return refuse("an automatically tuned α reads the batch's mean policy entropy; distributed training splits only sums over sequences".into());
        }
        if (self.cfg.engine == EngineChoice::Reference || cfg!(feature = "cuda"))
            && self.after_mean()
        {
            return refuse(AFTER_MEAN.into());
        }
        let smallest = match (&self.train, self.cfg.sampling) {
            (Some(d), Sampling::Epochs) => {
                let b = self.cfg.batch.min(d.n).max(1);
                if d.n % b == 0 {
                    b
                } else {
                    d.n % b
                }
            }
            _ => self.cfg.batch,
        };
        if smallest < size {
            return refuse(format!(
                "a batch of {smallest} sequence(s) cannot be split over {size} ranks; use a --batch of at least {size} (and, with --epochs, data whose last batch has as many)"
            ));
        }
        if self.cfg.threads == 0 {
            self.cfg.threads = super::threads_per_rank().min(2);
        }
        self.shard = Some(Shard::new(comm));
        // Which runtime steps (the fused one compiles here), so that a model the reference
        // path cannot split is refused now rather than at the first step.
        let (batch, _, _) = self.batch_at(self.step)?;
        if self.fused_for(batch.b, batch.t.max(1))?.is_none() {
            if let Err(e) = self.reference_distributable() {
                self.shard = None;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether this process writes files and reports: rank 0 of a job, or a single process.
    pub fn is_lead(&self) -> bool {
        self.shard.as_ref().is_none_or(Shard::is_lead)
    }

    /// This process's rank (0 for a single process).
    pub fn rank(&self) -> usize {
        self.shard.as_ref().map_or(0, Shard::rank)
    }

    /// The job's transport and this rank, for reports (`None`: a single process).
    pub fn distributed(&self) -> Option<String> {
        self.shard
            .as_ref()
            .map(|s| format!("{}; this is rank {}", s.describe(), s.rank()))
    }

    /// Whether `flag` is set on any rank (a single process: `flag`). Collective: every rank
    /// calls it once per iteration of its training loop.
    pub fn any_rank(&self, flag: bool) -> bool {
        match &self.shard {
            Some(s) => s.any(flag),
            None => flag,
        }
    }

    /// The step's ELBO per sequence over the global batch of `total` rows, with `terms` made
    /// global means too.
    pub(crate) fn global_stats(&self, elbo: &[f32], terms: &mut [f64], total: usize) -> f64 {
        match &self.shard {
            Some(s) => s.stats(elbo, terms, total),
            None => crate::train::mean(elbo),
        }
    }

    /// Whether a term has free nats after the batch mean.
    fn after_mean(&self) -> bool {
        self.program.elbo.terms.iter().any(|t| {
            matches!(
                crate::objective::shaping(&t.modifiers, 1.0).floor,
                Some(crate::objective::Floor::Mean(_))
            )
        })
    }

    /// Whether the reference path can take a distributed step: it clamps free nats after the
    /// mean inside the model's graph, on this rank's rows alone (the fused runtime sums the
    /// batch's totals over ranks first). The same answer on every rank.
    pub(crate) fn reference_distributable(&self) -> Result<(), TrainError> {
        if self.shard.is_some() && self.after_mean() {
            return Err(TrainError::Distributed(AFTER_MEAN.into()));
        }
        Ok(())
    }

    /// The reference path's noise at step `n`. It draws noise inside the model's operations,
    /// so a rank cannot skip to its rows: rank 0 draws the single process's stream, every
    /// other rank its own (an estimator equal in distribution, not draw for draw).
    pub(crate) fn reference_noise(&self, n: u64) -> crate::runtime::rng::Rng {
        let rank = self.shard.as_ref().map_or(0, Shard::rank) as u64;
        stream(self.cfg.seed, n, if rank == 0 { 3 } else { 16 + rank })
    }

    /// After a step: every rank holds the same parameters (checked every `check_every`
    /// steps; all ranks fail together when they do not).
    pub(crate) fn check_ranks(&self) -> Result<(), TrainError> {
        let Some(s) = &self.shard else { return Ok(()) };
        fault_injection(self)?;
        if !s.due(self.step) {
            return Ok(());
        }
        let values: Vec<Vec<f32>> = self.store.iter().map(|(_, p)| p.to_host()).collect();
        let print = fingerprint(values.iter().map(Vec::as_slice));
        match s.check(self.step, print) {
            None => Ok(()),
            Some((lo, hi)) => Err(TrainError::Distributed(format!(
                "the ranks hold different parameters after step {} (fingerprints {lo:016x} ≠ {hi:016x})",
                self.step
            ))),
        }
    }
}

/// The training loop of a rank that does not write (rank > 0): the lead's loop without its
/// files and reports, entering the same collectives in the same order (one agreement on
/// `stop`, then one step, per iteration). `Ok(true)` when the job was interrupted; a step's
/// failure is returned for the caller to report with [`Trainer::rank`] (a NaN is found on
/// every rank alike, since the statistics are global, and rank 0 reports it).
pub fn follow(tr: &mut Trainer, total: u64, stop: &AtomicBool) -> Result<bool, TrainError> {
    while tr.step < total {
        if tr.any_rank(stop.load(Ordering::SeqCst)) {
            return Ok(true);
        }
        tr.step()?;
    }
    Ok(false)
}

/// Test hook (debug builds only): `VIC_FAIL_RANK=r:n` makes rank `r` panic after step `n`,
/// `VIC_FAIL_RANK=r:n:error` makes it fail with an error there (as an I/O or backend fault
/// would), to test that one rank's failure ends the whole job.
fn fault_injection(tr: &Trainer) -> Result<(), TrainError> {
    let Some(s) = &tr.shard else { return Ok(()) };
    let spec = match std::env::var("VIC_FAIL_RANK") {
        Ok(spec) if cfg!(debug_assertions) => spec,
        _ => return Ok(()),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (Some(r), Some(n)) = (parts.first(), parts.get(1)) else {
        return Ok(());
    };
    if r.parse() != Ok(s.rank()) || n.parse() != Ok(tr.step) {
        return Ok(());
    }
    if parts.get(2) == Some(&"error") {
        return Err(TrainError::Distributed(format!(
            "injected error (VIC_FAIL_RANK={spec})"
        )));
    }
    panic!("injected failure (VIC_FAIL_RANK={spec})");
}
