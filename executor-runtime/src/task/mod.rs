//! The task side: one call's life as its caller sees it, the same on every backend.
//!
//! - `completion`: the state machine and waiter list shared by a task and its future;
//! - `future`: [`Future`](future::Future), the user's handle to one call;
//! - `error`: [`TaskError`](error::TaskError), why a call gave no value;
//! - `panic`: [`Panic`](panic::Panic), a task's panic with where it happened, and `catch`;
//! - `waiting`: `wait` and `as_completed`, waiting on many futures;
//! - `stop`: the flag behind cooperative stopping ([`stop_requested`](stop::stop_requested));
//! - `memory`: where a task's one allocation comes from and goes back to (kept for the next block).
//!
//! The bottom layer: it imports nothing else of the crate.

pub(crate) mod completion;
pub(crate) mod error;
pub(crate) mod future;
pub(crate) mod memory;
pub(crate) mod panic;
pub(crate) mod stop;
pub(crate) mod waiting;
