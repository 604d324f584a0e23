//! The Process backend: each call runs in a worker process that the block starts from its own
//! executable, so a call that crashes, aborts, leaks or hangs takes only its worker down.
//!
//! - `pool`: the block's side ([`ProcessScope`](pool::ProcessScope), a `RemoteScope`): its options,
//!   its workers as the pool sees them, when to start one;
//! - `link`: one worker process and the two parent threads that send it calls and read outcomes,
//!   the timeout watcher, and what happens when a worker dies;
//! - `worker`: the worker's side: becoming a worker before `main`, the handshake, serving calls,
//!   the watchdog that ends a worker whose parent is gone;
//! - `ring`: the shared-memory ring per worker that large argument and result tails cross;
//! - `spawn`: starting a worker process (`posix_spawn`, with its environment) and reaping it;
//! - `tunables`: the huge-page allocator setting a worker gets;
//! - `memory_limit`: capping a worker's memory, and recognising a call that went over the cap.
//!
//! It imports only the task, block and remote layers.

pub(crate) mod link;
pub(crate) mod memory_limit;
pub(crate) mod pool;
pub(crate) mod ring;
pub(crate) mod spawn;
pub(crate) mod tunables;
pub(crate) mod worker;
