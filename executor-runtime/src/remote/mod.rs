//! The remote-call layer: everything shared by the backends whose calls run in other processes
//! started from the same executable (Process, Mpi). A backend that uses it says only how calls
//! reach its workers and how a process becomes one of them.
//!
//! On the block's side:
//! - `call`: turning `submit(f, args...)` into a call another process can make (function and
//!   trampoline offsets, encoded arguments);
//! - `queue`: each call as a job, the block's queue, its counts;
//! - `scope`: the block's pool, [`RemoteScope`](scope::RemoteScope): `submit`, `map`, cancelling
//!   and joining, over a [`RemoteBackend`](scope::RemoteBackend);
//! - `shape`: how each argument crosses (owned, or a borrowed `&str`/`&[u8]`);
//! - `map`: `map(f, items, chunksize)` in chunks;
//! - `window`: how many calls are kept in flight to one worker.
//!
//! On the wire and the worker's side:
//! - `wire`: frames and the value encoding;
//! - `buffer`: the fresh vectors large payloads are read into;
//! - `tail`: a large byte vector or string crossing in a buffer of its own, and the UTF-8 check
//!   of a string's bytes as they arrive;
//! - `custom_error`: the message of an error a type's own `Serialize` raised, which postcard drops;
//! - `protocol`: a call's and an outcome's fixed fields, written and parsed once;
//! - `serve`: running one call in a worker and writing its outcome;
//! - `executable`: which program a worker runs, and where its code lies.
//!
//! The entry hook, the function in `.init_array` that lets each remote backend claim a process
//! before `main` (`process::worker::enter_if_asked`, `mpi::worker::enter_if_asked`), is wired in
//! the crate root, the one place that names every backend.
//!
//! It imports only the task and block layers.

pub(crate) mod buffer;
pub(crate) mod call;
pub(crate) mod custom_error;
pub(crate) mod executable;
pub(crate) mod map;
pub(crate) mod protocol;
pub(crate) mod queue;
pub(crate) mod scope;
pub(crate) mod serve;
pub(crate) mod shape;
pub(crate) mod tail;
pub(crate) mod window;
pub(crate) mod wire;
