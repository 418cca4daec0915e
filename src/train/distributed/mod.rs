//! Data-parallel training: each global batch split over ranks, gradients summed across them.
//!
//! Input: a [`Collective`] (MPI ranks with `--features mpi`; NCCL on CUDA devices with
//! `--features nccl`). Output: a [`Shard`] that [`crate::train::Trainer`] consults at three
//! points of a step: which rows of the global batch this rank computes ([`Shard::rows`]), the
//! sums of the forward statistics and of the gradients over ranks ([`Shard::stats`],
//! [`Shard::grads`]), and a periodic check that every rank holds the same parameters.
//! Invariants:
//! - the global batch, its noise and its order are the single process's: rank `r` computes the
//!   contiguous rows [`share`] gives it (the fused runtime's split over its workers), with the
//!   noise of those rows drawn from the single process's stream (the fused runtime draws the
//!   whole block and keeps its rows); so N ranks compute the single process's step, with the
//!   gradient's sum over rows taken in another order;
//! - every rank applies the same Adam update to the same summed gradient, so parameters and
//!   optimiser state stay bit-identical across ranks; [`Shard::check`] verifies it (every
//!   [`CHECK_EVERY`] steps, or `VIC_CHECK_EVERY`) and fails all ranks together if not;
//! - every collective is entered by every rank in the same order: one agreement per loop
//!   iteration ([`Shard::any`]), then the step's collectives; a rank that fails or panics ends
//!   the whole job ([`finish`], the panic hook of [`connect`]) instead of leaving the others
//!   waiting in a collective.

#[cfg(feature = "mpi")]
mod mpi_world;
#[cfg(feature = "nccl")]
mod nccl;
mod trainer;

pub use trainer::follow;

use std::ops::Range;

/// Steps between parameter checks across ranks (`VIC_CHECK_EVERY` overrides it; 0: never).
/// A check fingerprints every parameter on the host: about a millisecond for W4's 0.42 M.
pub const CHECK_EVERY: u64 = 100;

/// Sums and agreements across the ranks of one job. Every method is collective: every rank
/// calls it, in the same order, with buffers of the same length.
pub trait Collective {
    /// This process's rank in `0..size()`.
    fn rank(&self) -> usize;
    /// Ranks in the job.
    fn size(&self) -> usize;
    /// Element-wise sum over ranks, in place.
    fn sum_f32(&self, buf: &mut [f32]);
    /// Element-wise sum over ranks, in place.
    fn sum_f64(&self, buf: &mut [f64]);
    /// The minimum and maximum of `x` over ranks.
    fn min_max(&self, x: u64) -> (u64, u64);
    /// The transport, for reports (`"MPI, 2 ranks"`).
    fn describe(&self) -> String;
}

/// Rows `[start, end)` of a batch of `total` rows that rank `rank` of `size` computes:
/// contiguous blocks, the first `total % size` one row longer (the fused runtime's split).
pub fn share(total: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let (q, r) = (total / size, total % size);
    let start = rank * q + rank.min(r);
    start..start + q + usize::from(rank < r)
}

/// A 64-bit FNV-1a fingerprint of parameter bits (identical values ⇔ identical prints, up to
/// collisions).
pub fn fingerprint<'a>(values: impl IntoIterator<Item = &'a [f32]>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for x in v {
            for b in x.to_bits().to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// This process's part of a data-parallel job.
pub struct Shard {
    comm: Box<dyn Collective>,
    /// Steps between parameter checks.
    pub check_every: u64,
}

impl Shard {
    /// A shard over `comm`'s ranks (parameter checks every `$VIC_CHECK_EVERY` steps, default
    /// [`CHECK_EVERY`]).
    pub fn new(comm: Box<dyn Collective>) -> Shard {
        Shard {
            comm,
            check_every: std::env::var("VIC_CHECK_EVERY")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(CHECK_EVERY),
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.comm.size()
    }

    /// Rank 0: the one that writes files and reports.
    pub fn is_lead(&self) -> bool {
        self.comm.rank() == 0
    }

    /// The transport and the job's size, for reports.
    pub fn describe(&self) -> String {
        self.comm.describe()
    }

    /// This rank's rows of a global batch of `total` rows.
    pub fn rows(&self, total: usize) -> Range<usize> {
        share(total, self.rank(), self.size())
    }

    /// Element-wise sums over ranks, in place.
    pub fn sums(&self, buf: &mut [f64]) {
        self.comm.sum_f64(buf);
    }

    /// Whether `flag` is set on any rank.
    pub fn any(&self, flag: bool) -> bool {
        self.comm.min_max(u64::from(flag)).1 > 0
    }

    /// The global ELBO per sequence and term means, from this rank's per-sequence ELBOs and
    /// term means over its `elbo.len()` rows, given the global batch of `total` rows.
    pub fn stats(&self, elbo: &[f32], terms: &mut [f64], total: usize) -> f64 {
        let b = elbo.len() as f64;
        let mut buf: Vec<f64> = std::iter::once(elbo.iter().map(|x| f64::from(*x)).sum())
            .chain(terms.iter().map(|t| t * b))
            .collect();
        self.comm.sum_f64(&mut buf);
        let n = total.max(1) as f64;
        for (t, s) in terms.iter_mut().zip(&buf[1..]) {
            *t = s / n;
        }
        buf[0] / n
    }

    /// Sum gradients over ranks, in place, as one contiguous buffer (one collective per step).
    pub fn grads<'a>(&self, grads: impl Iterator<Item = &'a mut Vec<f32>>) {
        let mut parts: Vec<&mut Vec<f32>> = grads.collect();
        let mut flat: Vec<f32> = Vec::with_capacity(parts.iter().map(|g| g.len()).sum());
        for g in &parts {
            flat.extend_from_slice(g);
        }
        self.comm.sum_f32(&mut flat);
        let mut at = 0;
        for g in parts.iter_mut() {
            let n = g.len();
            g.copy_from_slice(&flat[at..at + n]);
            at += n;
        }
    }

    /// Whether the parameters are compared across ranks after step `step` (every
    /// `check_every` steps).
    pub fn due(&self, step: u64) -> bool {
        self.check_every != 0 && step.is_multiple_of(self.check_every)
    }

    /// After step `step`: whether every rank holds parameters with the same fingerprint
    /// (`None` when not [`Shard::due`] or equal).
    pub fn check(&self, step: u64, print: u64) -> Option<(u64, u64)> {
        if !self.due(step) {
            return None;
        }
        let (lo, hi) = self.comm.min_max(print);
        (lo != hi).then_some((lo, hi))
    }
}

/// Join the job this process was started in (`mpirun`): the ranks, a panic hook that ends
/// the whole job after reporting, and [`finish`] to call on exit. Without `--features mpi`
/// (or outside MPI), an error message for the user.
pub fn connect() -> Result<Box<dyn Collective>, String> {
    #[cfg(feature = "nccl")]
    {
        nccl::connect()
    }
    #[cfg(all(feature = "mpi", not(feature = "nccl")))]
    {
        mpi_world::connect().map(|w| Box::new(w) as Box<dyn Collective>)
    }
    #[cfg(not(feature = "mpi"))]
    {
        Err("this vic was built without MPI, so it cannot run --distributed".into())
    }
}

/// End this process's part of the job with exit code `code`: a failure on any rank aborts
/// every rank (`MPI_Abort`, so none waits forever in a collective); success and an agreed
/// stop (130, Ctrl-C seen by [`Shard::any`]) finalise MPI.
/// Does nothing when [`connect`] was not called.
pub fn finish(code: u8) {
    #[cfg(feature = "mpi")]
    mpi_world::finish(code);
    #[cfg(not(feature = "mpi"))]
    let _ = code;
}

/// Ranks to run the fused runtime's workers on: the cores of this machine shared among the
/// ranks started on it (Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`), at least 1.
pub fn threads_per_rank() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let local = std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    (cores / local).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_in_order_like_the_fused_workers() {
        // 2 ranks of 5 rows: 3 + 2, as the fused runtime splits 5 rows over 2 workers.
        assert_eq!(share(5, 0, 2), 0..3);
        assert_eq!(share(5, 1, 2), 3..5);
        // 3 ranks of 7 rows: 3, 2, 2.
        assert_eq!(
            (0..3).map(|r| share(7, r, 3)).collect::<Vec<_>>(),
            vec![0..3, 3..5, 5..7]
        );
        // One rank: everything.
        assert_eq!(share(16, 0, 1), 0..16);
    }

    /// One process playing `n` ranks with given contributions: sums are the closed forms.
    struct Fake {
        rank: usize,
        others: Vec<f64>,
    }

    impl Collective for Fake {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.others.len() + 1
        }
        fn sum_f32(&self, buf: &mut [f32]) {
            let add: f64 = self.others.iter().sum();
            for x in buf {
                *x += add as f32;
            }
        }
        fn sum_f64(&self, buf: &mut [f64]) {
            let add: f64 = self.others.iter().sum();
            for x in buf {
                *x += add;
            }
        }
        fn min_max(&self, x: u64) -> (u64, u64) {
            let o = self.others.iter().map(|v| *v as u64);
            (
                o.clone().chain([x]).min().unwrap(),
                o.chain([x]).max().unwrap(),
            )
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    #[test]
    fn stats_are_global_means() {
        // This rank: 2 sequences with ELBO −1, −3, one term with mean 2 over them; the other
        // rank contributes 10 to every sum. Global batch 4: ELBO (−4 + 10)/4 = 1.5, term
        // (2·2 + 10)/4 = 3.5.
        let s = Shard::new(Box::new(Fake {
            rank: 0,
            others: vec![10.0],
        }));
        let mut terms = vec![2.0];
        let elbo = s.stats(&[-1.0, -3.0], &mut terms, 4);
        assert_eq!(elbo, 1.5);
        assert_eq!(terms, vec![3.5]);
    }

    #[test]
    fn grads_are_summed_in_place_across_parameters() {
        let s = Shard::new(Box::new(Fake {
            rank: 1,
            others: vec![1.0],
        }));
        let mut g = vec![vec![1.0f32, 2.0], vec![3.0]];
        s.grads(g.iter_mut());
        assert_eq!(g, vec![vec![2.0, 3.0], vec![4.0]]);
        assert!(!s.is_lead());
    }

    #[test]
    fn a_parameter_mismatch_is_found_and_agreement_is_quiet() {
        let mut s = Shard::new(Box::new(Fake {
            rank: 0,
            others: vec![7.0],
        }));
        s.check_every = 2;
        assert_eq!(s.check(1, 5), None, "not a check step");
        assert_eq!(s.check(2, 5), Some((5, 7)));
        assert_eq!(s.check(4, 7), None);
        assert!(s.any(false), "the other rank's flag (7 ≠ 0) counts");
    }

    #[test]
    fn fingerprints_see_one_bit() {
        let a = [1.0f32, 2.0];
        let b = [1.0f32, f32::from_bits(2.0f32.to_bits() + 1)];
        assert_ne!(fingerprint([&a[..]]), fingerprint([&b[..]]));
        assert_eq!(fingerprint([&a[..]]), fingerprint([&a[..]]));
        // The split into parameters counts.
        assert_ne!(fingerprint([&a[..1], &a[1..]]), fingerprint([&a[..]]));
    }
}
