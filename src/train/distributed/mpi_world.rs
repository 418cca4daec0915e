//! The MPI transport (rsmpi on the system's MPI): `MPI_Allreduce` over `MPI_COMM_WORLD`, and
//! the job's lifetime (initialise once, abort every rank on a failure, finalise on success).

use super::Collective;
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};
use std::sync::Mutex;

/// The MPI environment, from [`connect`] until [`finish`] (dropping it finalises MPI).
static UNIVERSE: Mutex<Option<mpi::environment::Universe>> = Mutex::new(None);

/// `MPI_COMM_WORLD`.
pub struct World {
    world: SimpleCommunicator,
}

impl World {
    pub fn rank(&self) -> usize {
        self.world.rank() as usize
    }
}

/// Initialise MPI (once per process) and install a panic hook that reports the panic with
/// the rank and then aborts the whole job.
pub fn connect() -> Result<World, String> {
    let mut slot = UNIVERSE.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_some() {
        return Ok(World {
            world: SimpleCommunicator::world(),
        });
    }
    let universe = mpi::initialize().ok_or("MPI was initialised outside vic")?;
    let world = universe.world();
    *slot = Some(universe);
    let (rank, size) = (world.rank(), world.size());
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        last_words(&format!(
            "vic: rank {rank} of {size} panicked; aborting every rank of the job"
        ));
        SimpleCommunicator::world().abort(101);
    }));
    Ok(World { world })
}

/// See [`super::finish`].
pub fn finish(code: u8) {
    let universe = UNIVERSE.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(universe) = universe else { return };
    // 130: every rank agreed to stop (Ctrl-C), so every rank finalises.
    if code != 0 && code != 130 {
        let world = SimpleCommunicator::world();
        last_words(&format!(
            "vic: rank {} of {} failed (exit code {code}); aborting every rank of the job",
            world.rank(),
            world.size()
        ));
        world.abort(i32::from(code));
    }
    drop(universe);
}

impl Collective for World {
    fn rank(&self) -> usize {
        World::rank(self)
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn sum_f32(&self, buf: &mut [f32]) {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
    }

    fn sum_f64(&self, buf: &mut [f64]) {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
    }

    fn min_max(&self, x: u64) -> (u64, u64) {
        let (mut lo, mut hi) = (0u64, 0u64);
        self.world
            .all_reduce_into(&x, &mut lo, SystemOperation::min());
        self.world
            .all_reduce_into(&x, &mut hi, SystemOperation::max());
        (lo, hi)
    }

    fn describe(&self) -> String {
        let (major, minor) = mpi::environment::version();
        format!(
            "MPI {major}.{minor} ({}), {} rank(s)",
            mpi::environment::library_version()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or("")
                .trim(),
            self.size()
        )
    }
}

/// The one line a rank prints before `MPI_Abort` ends every rank without unwinding: the job's
/// only trace of why (the process's edge, so the library's no-printing rule does not apply).
#[allow(clippy::print_stderr)]
fn last_words(msg: &str) {
    eprintln!("{msg}");
}
