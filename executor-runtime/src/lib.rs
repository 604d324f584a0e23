//! The runtime of [`concurrent-futures`](https://docs.rs/concurrent-futures): pools, futures and workers.
//!
//! Users depend on the `concurrent-futures` crate, which re-exports what is public here; the `pool!` macro
//! expands to calls into [`__private`], which is not part of the stable API.
//!
//! # Layout: layers, then one folder per backend
//!
//! Each folder is a layer or a backend, and imports only the layers above it in this list, never
//! a backend (the test `executor-runtime/tests/layers.rs` fails otherwise):
//! - `task`: one call's life as its caller sees it: the completion shared by a task and its
//!   future, [`Future`], [`TaskError`], [`wait`] and [`as_completed`], [`stop_requested`];
//! - `block`: what every block has: its options, the guard that joins it, [`current_worker`],
//!   `map`'s window;
//! - `remote`: what every backend whose calls run in other processes shares: call encoding,
//!   frames and protocol, the block's call queue and its pool (`RemoteScope`: submit, map,
//!   cancel, join), the window of calls in flight, serving calls in a worker;
//! - `thread`: the Thread backend, and Auto (the same pool, sized by its `governor`);
//! - `process`: the Process backend: worker processes, their links, the worker's side;
//! - `mpi` (feature `mpi`): the Mpi backend: the driver thread, the ranks, the worker's side.
//!
//! This file wires them: the public items, the `__private` items the macro expands to, and the
//! one function that runs before `main` and lets each remote backend claim the process as its
//! worker.
//!
//! # How the Process backend finds its workers and their functions
//!
//! *How a process is told it is a worker.* The pool starts a worker with `posix_spawn` of its own
//! executable (never `fork`), with one end of a Unix socket pair at descriptor 3 (and a
//! shared-memory ring for large payloads at 4) and the variable `__EXECUTOR_WORKER_FD=3,4`. A
//! function in the executable's `.init_array` (this crate puts it there, so every program linked
//! with it has it) runs before `main`: when the variable names an inherited
//! socket, it removes the variable, reads the parent's hello, serves calls until the socket closes
//! and exits, so `main` (or the test harness) never runs in a worker. Otherwise it readies the
//! Thread pool's fence (`thread::asymmetric_fence`: two `membarrier` calls) and returns. There is
//! nothing to call, register or annotate.
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

mod block;
#[cfg(any(test, feature = "fuzzing"))]
mod fuzzing;
#[cfg(feature = "mpi")]
mod mpi;
mod process;
mod remote;
mod task;
mod thread;

pub use block::identity::{current_worker, Backend, WorkerInfo};
pub use task::error::{Panic, PanicLocation, TaskError, WorkerDeath};
pub use task::future::Future;
pub use task::stop::stop_requested;
pub use task::waiting::{
    as_completed, wait, AsCompleted, ReturnWhen, WaitTimeout, Waitable, Waited, ALL_COMPLETED,
    FIRST_COMPLETED, FIRST_EXCEPTION,
};

/// What the `pool!` macro expands to. Not a stable API: use the macro.
#[doc(hidden)]
pub mod __private {
    pub use crate::block::join_guard::{JoinGuard, Pool};
    pub use crate::block::options::{CallOptions, PoolOptions, ThreadInitializer};
    #[cfg(any(test, feature = "fuzzing"))]
    pub use crate::fuzzing::{frames, parent_stream, values, worker_stream, Summary};
    #[cfg(feature = "mpi")]
    pub use crate::mpi::pool::{MpiBackend, MpiScope};
    pub use crate::process::pool::{NextStep, ProcessBackend, ProcessScope, ProcessState};
    pub use crate::remote::call::*;
    pub use crate::remote::map::{RemoteMap, RemoteMapUnordered, RemotePool};
    pub use crate::remote::queue::{CallQueue, QueueState};
    pub use crate::remote::scope::{RemoteBackend, RemoteScope};
    pub use crate::remote::shape::*;
    pub use crate::remote::wire::VERSION as PROTOCOL_VERSION;
    pub use crate::thread::bind::*;
    pub use crate::thread::map::{ThreadMap, ThreadMapUnordered};
    pub use crate::thread::pool::ThreadScope;
    /// The rsmpi crate, for `benches/mpi.rs`'s floor (a ping-pong in a process with no pool).
    #[cfg(feature = "mpi")]
    pub use mpi;
}

/// Runs before `main` in every program linked with this crate (the loader runs the functions in
/// `.init_array` first): each remote backend in turn may find that this process was started as one
/// of its workers, and then serves calls and exits, so `main` never runs in a worker; otherwise
/// each returns at once. Process goes first: a Process worker started from a rank of an MPI job
/// inherits the launcher's variables, and must not take itself for a rank. Then it readies the
/// Thread pool's fence (`thread::asymmetric_fence`), two system calls.
#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static ENTER_WORKER_BEFORE_MAIN: extern "C" fn() = enter_worker_if_asked;

extern "C" fn enter_worker_if_asked() {
    process::worker::enter_if_asked();
    #[cfg(feature = "mpi")]
    mpi::worker::enter_if_asked();
    // Here the process still has one thread, which makes registering cheap (see the module).
    thread::asymmetric_fence::register_before_main();
}
