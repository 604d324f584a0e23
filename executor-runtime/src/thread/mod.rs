//! The Thread backend, and Auto, which is the same pool sized by measurement.
//!
//! - `pool`: [`ThreadScope`](pool::ThreadScope), the pool of one block and its workers; its `auto`
//!   child holds what an Auto pool adds (parking workers above the target);
//! - `governor/`: Auto's one thread per process that measures the pools' workers and sets how many
//!   each runs (a sub-concept with a README of its own);
//! - `job`: a task, the closure and its completion, and the queue's reference to it;
//! - `job_queue`: the lock-free queue between submitters and workers;
//! - `asymmetric_fence`: the fence between a submit and a worker going to sleep, whose cost falls
//!   on the sleeper;
//! - `bind`: turning `submit(f, args...)` into a closure with no arguments;
//! - `map`: `map(f, items)`, one task per item.
//!
//! It imports only the task and block layers.

pub(crate) mod asymmetric_fence;
pub(crate) mod bind;
pub(crate) mod governor;
pub(crate) mod job;
pub(crate) mod job_queue;
pub(crate) mod map;
pub(crate) mod pool;
