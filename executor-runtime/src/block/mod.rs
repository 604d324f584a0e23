//! The block side: what every `pool!` block has, whatever runs its calls.
//!
//! - `options`: the `name = value` options of a block ([`PoolOptions`](options::PoolOptions));
//! - `join_guard`: the guard that joins a pool however its block is left;
//! - `identity`: [`current_worker`](identity::current_worker), where a task runs;
//! - `map`: what `map(f, items)` promises on every backend, and its window.
//!
//! It imports only the task layer.

pub(crate) mod identity;
pub(crate) mod join_guard;
pub(crate) mod map;
pub(crate) mod options;
