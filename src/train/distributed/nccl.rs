//! The NCCL transport for ranks on CUDA devices (`--features nccl`): MPI starts the job, gives
//! the ranks and carries NCCL's unique id from rank 0 to the others (as Horovod and
//! `torch.distributed` do); the gradient sum runs as `ncclAllReduce` on each rank's GPU. The
//! small forward statistics and agreements stay on MPI.
//!
//! A rank computes on dfdx's default device, the first GPU it sees, so each rank must see only
//! its own: `mpirun -n 8 sh -c 'CUDA_VISIBLE_DEVICES=$OMPI_COMM_WORLD_LOCAL_RANK exec vic run
//! … --distributed'`. A rank that sees several GPUs is refused (otherwise every rank would
//! compute on GPU 0).
//!
//! The reference runtime hands gradients to the optimiser on the host, so the sum stages them
//! host → device → NCCL → host. Type-checked only (`cargo check --features nccl,dfdx/ci-check`):
//! no GPU was available to run it.

use super::mpi_world::{self, World};
use super::Collective;
use cudarc::driver::CudaDevice;
use cudarc::nccl::{Comm, Id, ReduceOp};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, Root};
use std::sync::Arc;

/// A rank's GPU and its NCCL communicator, with MPI for everything else.
pub struct Nccl {
    mpi: World,
    dev: Arc<CudaDevice>,
    comm: Comm,
}

pub fn connect() -> Result<Box<dyn Collective>, String> {
    let mpi = mpi_world::connect()?;
    let (rank, size) = (mpi.rank(), Collective::size(&mpi));
    let visible = CudaDevice::count().map_err(|e| format!("CUDA devices: {e:?}"))?;
    if size > 1 && visible > 1 {
        return Err(format!(
            "rank {rank} sees {visible} GPUs; each rank must see only its own (it computes on the first): start the ranks with CUDA_VISIBLE_DEVICES=$OMPI_COMM_WORLD_LOCAL_RANK"
        ));
    }
    let dev = CudaDevice::new(0).map_err(|e| format!("CUDA device 0: {e:?}"))?;
    // Rank 0 creates the id; MPI broadcasts its bytes.
    let mut bytes = if rank == 0 {
        *Id::new().map_err(|e| format!("NCCL id: {e:?}"))?.internal()
    } else {
        [0; 128]
    };
    SimpleCommunicator::world()
        .process_at_rank(0)
        .broadcast_into(&mut bytes[..]);
    let comm = Comm::from_rank(dev.clone(), rank, size, Id::uninit(bytes))
        .map_err(|e| format!("NCCL communicator (rank {rank} of {size}): {e:?}"))?;
    Ok(Box::new(Nccl { mpi, dev, comm }))
}

impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn size(&self) -> usize {
        self.comm.world_size()
    }

    fn sum_f32(&self, buf: &mut [f32]) {
        // A CUDA or NCCL failure here is a fault of the device: panic, and the panic hook
        // aborts every rank.
        let send = self.dev.htod_sync_copy(buf).expect("gradients to the GPU");
        let mut recv = self
            .dev
            .alloc_zeros::<f32>(buf.len())
            .expect("gradient buffer on the GPU");
        self.comm
            .all_reduce(&send, &mut recv, &ReduceOp::Sum)
            .expect("ncclAllReduce");
        self.dev
            .dtoh_sync_copy_into(&recv, buf)
            .expect("gradients from the GPU");
    }

    fn sum_f64(&self, buf: &mut [f64]) {
        self.mpi.sum_f64(buf);
    }

    fn min_max(&self, x: u64) -> (u64, u64) {
        self.mpi.min_max(x)
    }

    fn describe(&self) -> String {
        format!(
            "NCCL on {} GPU rank(s), over {}",
            self.size(),
            self.mpi.describe()
        )
    }
}
