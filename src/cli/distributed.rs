//! `vic run --distributed`: joining the MPI job this process was started in, as diagnostics
//! (the training itself is `vic::train::distributed`).

use crate::exit::{flag_error, train_error};
use vic::train::Trainer;

/// Join the job: every rank computes its share of each global batch; rank 0 writes.
pub fn join(tr: &mut Trainer) -> Result<(), u8> {
    let comm = vic::train::distributed::connect().map_err(|msg| {
        flag_error(
            msg,
            if cfg!(feature = "mpi") {
                "start vic under `mpirun -n N vic run MODEL --distributed`"
            } else {
                "rebuild with `cargo build --release --features mpi` (needs Open MPI: libopenmpi-dev, and libclang) and start it with `mpirun -n N vic run MODEL --distributed`"
            },
        )
    })?;
    tr.distribute(comm)
        .map_err(|e| train_error(&e, "cannot train this model distributed"))
}
