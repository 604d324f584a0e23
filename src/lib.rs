//! Python's `concurrent.futures` for Rust: run a batch of function calls concurrently inside a
//! block that waits for all of them.
//!
//! # The contract
//!
//! `pool!(BACKEND => BLOCK)` or `pool!(BACKEND(name = value, ...) => BLOCK)` is an expression whose
//! value is the value of `BLOCK`.
//!
//! - Inside `BLOCK`, every plain call `submit(f, a1, ..., an)` (up to 12 arguments, anywhere in the
//!   block: loops, closures, iterator chains, nested blocks, the arguments of macros such as
//!   `vec!`/`println!`) evaluates `f` and the arguments on the calling thread, starts `f(a1, ..., an)`
//!   on the pool, and evaluates to a [`Future<R>`](Future), where `R` is what `f` returns. `f` may be
//!   a function, a path (`module::f`, `Type::method`, `f::<T>`) or a closure.
//! - Leaving `BLOCK` in any way (falling off the end, `?`, `return`, `break`, `continue`, a panic)
//!   first waits for every task submitted in it, and every one of them runs (as with Python's
//!   `with` block and `std::thread::scope`); with the option `cancel_futures = true`, an early
//!   exit cancels the tasks not yet started instead. `?`, `return`, `break` and
//!   `continue` act on the enclosing function or loop, exactly as in a plain block: the body is not
//!   wrapped in a closure.
//! - Tasks may borrow anything that outlives the `pool!` expression, as with `std::thread::scope`;
//!   borrowing something that does not live long enough is a compile error.
//! - A panic in a task is caught: its [`Future::result`] is `Err(TaskError::Panicked(panic))`, whose
//!   [`Panic`] has the message, where it happened (file:line:column) and, with `RUST_BACKTRACE`
//!   set, the backtrace. The pool and the other tasks carry on. If a task panicked and its future was dropped without
//!   the result being read, the block panics when it finishes normally (as `std::thread::scope` does),
//!   and prints a warning when it is left early by `?`, `return`, `break` or a panic.
//! - Blocks nest, and a task may open a `pool!` block of its own: each block has its own workers.
//!
//! Backends: `Thread` (threads of this process), `Auto` (threads, as many as the work turns out
//! to want) and `Process` (worker processes started from this program's executable, for
//! isolation: a task that crashes takes down only its worker, and its future says how the worker
//! died). Options of all: `max_workers` (default `min(32, cpus + 4)` threads, as Python's
//! `ThreadPoolExecutor`; on `Auto` a cap, default 256; one process per CPU), `cancel_futures` and
//! `initializer`/`initargs`; of `Thread` and `Auto`: `thread_name_prefix`; of `Auto`:
//! `min_workers`; of `Process`: `timeout`, `retries`, `max_tasks_per_child` and `memory_limit`
//! (and, per call, `submit(call(f).timeout(d).retries(n), args...)`). On `Process`,
//! arguments and results must be `Serialize + Deserialize` (serde) or borrowed `&str`/`&[u8]`, and
//! `f` must capture nothing.
//!
//! # Example
//!
//! ```
//! use concurrent_futures::pool;
//!
//! fn word_count(text: &str) -> usize {
//!     text.split_whitespace().count()
//! }
//!
//! let pages = ["a b c", "d e", "f"];
//! let counts: Vec<usize> = pool!(Thread => {
//!     let work: Vec<_> = pages.iter().map(|p| submit(word_count, *p)).collect();
//!     work.into_iter().map(|f| f.result().unwrap()).collect()
//! });
//! assert_eq!(counts, [3, 2, 1]);
//! ```
//!
//! The same work on worker processes: change the word.
//!
//! ```
//! use concurrent_futures::{pool, TaskError};
//!
//! fn word_count(text: &str) -> usize {
//!     text.split_whitespace().count()
//! }
//!
//! fn crash() -> usize {
//!     std::process::abort()
//! }
//!
//! let pages = ["a b c", "d e", "f"];
//! let (counts, crashed) = pool!(Process => {
//!     let work: Vec<_> = pages.iter().map(|p| submit(word_count, *p)).collect();
//!     let crashed = submit(crash);
//!     let counts: Vec<usize> = work.into_iter().map(|f| f.result().unwrap()).collect();
//!     (counts, crashed.result())
//! });
//! assert_eq!(counts, [3, 2, 1]);
//! assert!(matches!(crashed, Err(TaskError::WorkerDied { .. })));
//! ```
//!
//! `Auto` is `Thread` without the worker count: it starts with one worker per core and, while
//! tasks are queued, adds workers when the busy ones spend their time waiting (on I/O, a lock, a
//! sleep) rather than computing; with computing tasks it stays at one worker per core. A task that
//! waits for a task queued behind it gets that task a worker (up to `max_workers`).
//!
//! ```
//! use std::sync::mpsc;
//! use std::time::Duration;
//! use concurrent_futures::pool;
//!
//! fn fetch(i: u32) -> u32 {
//!     std::thread::sleep(Duration::from_millis(50)); // stands for a slow server
//!     i
//! }
//!
//! let (sent, received) = mpsc::channel();
//! let (pages, message) = pool!(Auto(max_workers = 64) => {
//!     let pages: Vec<_> = (0..64).map(|i| submit(fetch, i)).collect();
//!     // Waits for a task submitted after it: Auto gives that task a worker.
//!     let waiter = submit(move || received.recv_timeout(Duration::from_secs(60)).unwrap());
//!     submit(move || sent.send("hello").unwrap());
//!     let pages: u32 = pages.into_iter().map(|f| f.result().unwrap()).sum();
//!     (pages, waiter.result().unwrap())
//! });
//! assert_eq!((pages, message), ((0..64).sum(), "hello"));
//! ```
//!
//! What only processes allow: a task that overruns is killed, and one that allocates too much
//! fails, each with its own error, while the rest of the work completes.
//!
//! ```
//! use std::time::Duration;
//! use concurrent_futures::{pool, TaskError};
//!
//! fn hang() -> u8 {
//!     loop {
//!         std::thread::park();
//!     }
//! }
//!
//! /// Fills `mib` MiB and sums them: work that needs the memory, so that no optimiser removes the
//! /// allocation (a `vec![..].len()` alone compiles to no allocation at all in release builds).
//! fn hoard(mib: usize) -> u64 {
//!     let mut block = vec![0u8; mib << 20];
//!     for (i, byte) in block.iter_mut().enumerate() {
//!         *byte = i as u8;
//!     }
//!     std::hint::black_box(&block).iter().map(|&b| u64::from(b)).sum()
//! }
//!
//! // A generous timeout: a worker that runs out of memory prints its report (with a backtrace,
//! // under `RUST_BACKTRACE=1`) before it aborts, which takes a loaded machine 100 ms or more.
//! let (hung, hoarded, fine) = pool!(Process(timeout = Duration::from_secs(1), memory_limit = 64 << 20) => {
//!     (submit(hang).result(), submit(hoard, 1024).result(), submit(hoard, 8).result())
//! });
//! assert!(matches!(hung, Err(TaskError::TimedOut { .. })));
//! assert!(matches!(hoarded, Err(TaskError::MemoryLimitExceeded { requested, .. }) if requested == 1 << 30));
//! // 8 MiB of the bytes 0, 1, ..., 255 over and over.
//! assert_eq!(fine, Ok((8 << 20) / 256 * (255 * 256 / 2)));
//! ```

//! # On MPI ranks (feature `mpi`)
//!
//! With the `mpi` feature (Open MPI and libclang installed), the same block runs each call on
//! another MPI rank: launched by `mpirun -n 3 ./app` (rank 0 runs `main`, ranks 1 and 2 are the
//! workers) or started alone (the block spawns its workers). See the README, "Running on a
//! cluster".
#![cfg_attr(
    feature = "mpi",
    doc = r#"
```no_run
use concurrent_futures::{current_worker, pool};

fn where_am_i(x: u64) -> (u64, Option<usize>, Option<String>) {
    let me = current_worker().unwrap();
    (x * x, me.rank(), me.host().map(str::to_string))
}

let answers = pool!(Mpi(max_workers = 2) => {
    let work: Vec<_> = (0..4).map(|x| submit(where_am_i, x)).collect();
    work.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>()
});
assert_eq!(answers[3].0, 9);
```
"#
)]

// The macro expands to `::concurrent_futures::...` paths; this makes them resolve inside this crate too.
extern crate self as concurrent_futures;

pub use concurrent_futures_macros::{backend, pool};
pub use concurrent_futures_runtime::{
    as_completed, current_worker, stop_requested, wait, AsCompleted, Backend, Future, Panic,
    PanicLocation, ReturnWhen, TaskError, WaitTimeout, Waitable, Waited, WorkerDeath, WorkerInfo,
    ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION,
};

#[doc(hidden)]
pub use concurrent_futures_runtime::__private;

#[cfg(test)]
mod tests {
    use crate::{current_worker, pool, Backend};

    fn where_am_i() -> Option<crate::WorkerInfo> {
        current_worker()
    }

    /// Unit tests need no set-up either: the test harness never runs in a worker.
    #[test]
    fn process_pools_work_in_unit_tests() {
        let info = pool!(Process(max_workers = 1) => { submit(where_am_i).result() })
            .unwrap()
            .expect("a call runs on a worker");
        assert_eq!(info.backend(), Backend::Process);
        assert_ne!(info.pid(), std::process::id());
    }
}
