//! The Mpi backend (cargo feature `mpi`): each call runs on an MPI rank, launched by `mpirun` or
//! spawned by the pool, so the same block can move from one machine to a cluster.
//!
//! - `pool`: the block's side ([`MpiScope`](pool::MpiScope), a `RemoteScope`), which queues calls
//!   for the driver;
//! - `driver`: the one thread per process that makes every MPI call for the blocks;
//! - `ranks`: the driver's view of its worker ranks (calls out, outcomes in), and its `lifecycle`
//!   child: watching, losing, spawning and stopping them;
//! - `worker`: an MPI rank becoming a worker before `main`, serving calls;
//! - `comm`: the MPI calls themselves (through rsmpi's `ffi`).
//!
//! It imports only the task, block and remote layers.

pub(crate) mod comm;
pub(crate) mod driver;
pub(crate) mod pool;
pub(crate) mod ranks;
pub(crate) mod worker;
