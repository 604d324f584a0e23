//! The runtime of [`executor`](https://docs.rs/executor): pools, futures and workers.
//!
//! Users depend on the `executor` crate, which re-exports what is public here; the `pool!` macro
//! expands to calls into [`__private`], which is not part of the stable API.
//!
//! One module per concept:
//! - `completion`: the state machine and waiter list shared by a task and its future;
//! - `future`: [`Future`], the user's handle to one call;
//! - `error`: [`TaskError`], why a call gave no value;
//! - `waiting`: [`wait`] and [`as_completed`], waiting on many futures;
//! - `map`: `map(f, items)` inside a block, in order, with bounded work in flight;
//! - `join_guard`: the guard that joins a pool however its block is left;
//! - `job_queue`: the lock-free queue between submitters and workers;
//! - `thread_job`: a Thread task: the closure and its completion, and the queue's reference to it;
//! - `thread_pool`: the Thread backend, the guard of a `pool!(Thread => ...)` block and its workers
//!   (also the Auto backend's, sized by the `governor`);
//! - `governor`: the Auto backend's one thread per process that measures its pools' workers and
//!   sets how many each runs;
//! - `worker`: [`current_worker`], where a task runs;
//! - `options`: the `name = value` options of a block;
//! - `call`: turning `submit(f, args...)` into a closure with no arguments;
//! - `process_pool`: the Process backend on the parent's side: the queue, the guard, the join;
//! - `process_link`: one worker process and the parent threads that send it calls and read outcomes;
//! - `worker_process`: the worker's side: becoming a worker before `main`, serving calls;
//! - `memory_limit`: capping a worker's memory, and recognising a task that went over the cap;
//! - `spawn`: starting a worker process (`posix_spawn`) and reaping it;
//! - `remote`: turning `submit(f, args...)` into a call another process can make;
//! - `wire`: the frames and value encoding between a pool and its workers;
//! - `mpi_pool` (feature `mpi`): the Mpi backend's block: its queue, its join;
//! - `mpi_driver` (feature `mpi`): the one thread per process that talks to the MPI workers;
//! - `mpi_workers` (feature `mpi`): the driver's view of its workers: calls out, outcomes in; its
//!   `lifecycle`: watching, losing, spawning and stopping them;
//! - `mpi_worker` (feature `mpi`): an MPI rank becoming a worker before `main`, serving calls;
//! - `mpi_transport` (feature `mpi`): the MPI calls themselves (through rsmpi's `ffi`).

//!
//! # How the Process backend finds its workers and their functions
//!
//! *How a process is told it is a worker.* The pool starts a worker with `posix_spawn` of its own
//! executable (never `fork`), with one end of a Unix socket pair at descriptor 3 and the variable
//! `__EXECUTOR_WORKER_FD=3`. A function in the executable's `.init_array` (this crate puts it there,
//! so every program linked with it has it) runs before `main`: when the variable names an inherited
//! socket, it removes the variable, reads the parent's hello, serves calls until the socket closes
//! and exits, so `main` (or the test harness) never runs in a worker. Otherwise it does nothing.
//! There is nothing to call, register or annotate.
//!
//! *How a worker finds the function.* `submit(f, args...)` coerces `f` to a function pointer and
//! takes the address of a generic *trampoline* instantiated for the call's argument and result
//! types (it decodes the arguments, calls the pointer, catches a panic, encodes the result). Both
//! are sent as offsets from the executable's program headers: the loader moves the whole executable
//! at once, so the same offsets name the same code in the worker. The hello carries the identity of
//! the parent's executable (device, inode, size, modification time), and a worker whose executable
//! differs refuses to serve; functions outside the executable (in a shared library) are refused at
//! `submit`.

#![warn(missing_docs)]

mod call;
mod completion;
mod error;
mod future;
mod fuzzing;
mod governor;
mod job_queue;
mod join_guard;
mod map;
mod memory_limit;
#[cfg(feature = "mpi")]
mod mpi_driver;
#[cfg(feature = "mpi")]
mod mpi_pool;
#[cfg(feature = "mpi")]
mod mpi_transport;
#[cfg(feature = "mpi")]
mod mpi_worker;
#[cfg(feature = "mpi")]
mod mpi_workers;
mod options;
mod process_link;
mod process_pool;
mod remote;
mod spawn;
mod thread_job;
mod thread_pool;
mod waiting;
mod wire;
mod worker;
mod worker_process;

pub use error::{TaskError, WorkerDeath};
pub use future::Future;
pub use waiting::{
    as_completed, wait, AsCompleted, ReturnWhen, WaitTimeout, Waited, ALL_COMPLETED,
    FIRST_COMPLETED, FIRST_EXCEPTION,
};
pub use worker::{current_worker, Backend, WorkerInfo};

/// What the `pool!` macro expands to. Not a stable API: use the macro.
#[doc(hidden)]
pub mod __private {
    pub use crate::call::*;
    pub use crate::fuzzing::{frames, parent_stream, values, worker_stream, Summary};
    pub use crate::join_guard::{JoinGuard, Pool};
    pub use crate::map::{ProcessMap, RemotePool, ThreadMap};
    #[cfg(feature = "mpi")]
    pub use crate::mpi_pool::MpiScope;
    pub use crate::options::{PoolOptions, ThreadInitializer};
    pub use crate::process_pool::ProcessScope;
    pub use crate::remote::*;
    pub use crate::thread_pool::ThreadScope;
    /// The rsmpi crate, for `benches/mpi.rs`'s floor (a ping-pong in a process with no pool).
    #[cfg(feature = "mpi")]
    pub use mpi;
}
