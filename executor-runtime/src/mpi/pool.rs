//! The Mpi backend on the side that opens blocks: the pool behind one `pool!(Mpi => { ... })`.
//!
//! The workers are MPI ranks, which belong to the process rather than to a block: launched ranks
//! exist for the whole job, and spawned ones are kept for the life of the process (spawning costs
//! a few hundred milliseconds), so a second block, or one nested in another, reuses them. One
//! driver thread per process (`mpi::driver`) makes every MPI call; a block only queues its calls
//! (`crate::remote::queue`) and waits for them. `max_workers` caps how many workers serve a block
//! at once (default: all the ranks of a launched job; the number of CPUs when the pool spawns its
//! workers).
//!
//! Calls are encoded at `submit` exactly as on the Process backend (`crate::remote::call`), and
//! cross in the same frames (`crate::remote::protocol`), so any block that compiles under
//! `Process` compiles under `Mpi`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::block::options::{CallOptions, PoolOptions, ProcessInitializer};
use crate::mpi::driver::{self, Driver};
use crate::remote::queue::{CallQueue, QueueState, Queued, RemoteJobRef};
use crate::remote::scope::{RemoteBackend, RemoteScope};
use crate::task::error::TaskError;

/// The pool of one `pool!(Mpi => { ... })` block.
#[doc(hidden)]
pub type MpiScope = RemoteScope<MpiBackend>;

/// One open block, as the driver sees it: its calls and its options.
pub(crate) type Block = CallQueue<MpiBackend>;

static NEXT_BLOCK_ID: AtomicU64 = AtomicU64::new(1);

/// The Mpi backend's side of a block: what the driver reads of it without taking its lock.
#[doc(hidden)]
pub struct MpiBackend {
    pub(crate) id: u64,
    /// The most workers serving this block at once; `None`: as many as there are.
    pub(crate) max_workers: Option<usize>,
    /// `retries = n`: how often a call whose worker was lost runs again (a call's own
    /// `.retries(n)` overrides it).
    pub(crate) retries: Option<u32>,
    /// How many calls wait in the queue, readable without the lock (the driver polls it).
    pub(crate) queued: AtomicUsize,
    /// How many workers have calls of this block in flight (kept by the driver).
    pub(crate) in_use: AtomicUsize,
    /// What each worker runs once before this block's first call on it (`initializer`).
    pub(crate) initializer: Option<Arc<ProcessInitializer>>,
    /// The block is broken (its initializer failed): its calls fail with `QueueState::broken`.
    pub(crate) broken: AtomicBool,
    /// The process's driver, or why MPI could not be started.
    driver: Result<&'static Driver, String>,
}

impl RemoteBackend for MpiBackend {
    type State = ();
    type Wake = ();

    /// The first block of the process starts MPI (and, without a launcher, spawns the workers
    /// when the first call is queued).
    fn open(options: &PoolOptions) -> (Self, (), Option<String>) {
        let driver = driver::driver();
        let broken = match (
            &driver,
            options.process_initializer.as_ref().map(|i| &i.arguments),
        ) {
            (Err(why), _) => Some(why.clone()),
            // Every worker would fail it: fail the calls at once instead.
            (Ok(_), Some(Err(why))) => {
                Some(format!("the pool's initializer cannot be sent: {why}"))
            }
            (Ok(_), _) => None,
        };
        let backend = MpiBackend {
            id: NEXT_BLOCK_ID.fetch_add(1, Ordering::Relaxed),
            max_workers: options.max_workers,
            retries: options.retries,
            queued: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            initializer: options.process_initializer.clone(),
            broken: AtomicBool::new(broken.is_some()),
            driver,
        };
        (backend, (), broken)
    }

    fn opened(block: &Arc<Block>) {
        if let Ok(driver) = block.backend.driver {
            driver.open(Arc::clone(block));
        }
    }

    fn queued(block: &Block, _: &mut QueueState<()>) -> Option<()> {
        block.backend.queued.fetch_add(1, Ordering::SeqCst);
        Some(())
    }

    fn wake(block: &Arc<Block>, (): ()) {
        if let Ok(driver) = block.backend.driver {
            driver.wake();
        }
    }

    fn cancelled(block: &Block, count: usize) {
        block.backend.queued.fetch_sub(count, Ordering::SeqCst);
    }

    fn workers(block: &Block) -> usize {
        block.backend.max_workers.unwrap_or_else(|| {
            block
                .backend
                .driver
                .as_ref()
                .map_or(1, |driver| driver.default_workers())
        })
    }

    /// The workers stay for the next block.
    fn close(block: &Arc<Block>) {
        if let Ok(driver) = block.backend.driver {
            driver.close(block.backend.id);
        }
    }
}

impl MpiBackend {
    /// How often a call with `options` may run again: its own retries, or the block's.
    pub(crate) fn retries_of(&self, options: &CallOptions) -> u32 {
        options.retries.or(self.retries).unwrap_or(0)
    }
}

impl Block {
    /// Takes the oldest queued calls, at most `most`, under one lock.
    pub(crate) fn pop(&self, most: usize) -> Vec<Queued> {
        let mut state = self.lock();
        let count = most.min(state.queue.len());
        let taken: Vec<Queued> = state.queue.drain(..count).collect();
        self.backend.queued.fetch_sub(count, Ordering::SeqCst);
        taken
    }

    /// Puts calls that were sent to a worker that died before running them back at the front.
    pub(crate) fn requeue(&self, jobs: Vec<RemoteJobRef>) {
        let mut state = self.lock();
        for job in jobs.into_iter().rev() {
            state.queue.push_front(Queued { job, claimed: true });
            self.backend.queued.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The block's initializer failed (as Python's `BrokenProcessPool`): its queued calls, and those
    /// submitted later, fail with `TaskError::WorkerStart(why)`.
    pub(crate) fn break_with(&self, why: String) {
        log::warn!("executor: Mpi block {}: {why}", self.backend.id);
        self.lock().broken = Some(why.clone());
        self.backend.broken.store(true, Ordering::SeqCst);
        self.fail_queued(&TaskError::WorkerStart(why));
    }

    /// Fails every queued call with `error` (no worker can run them).
    pub(crate) fn fail_queued(&self, error: &TaskError) {
        let queued: Vec<Queued> = {
            let mut state = self.lock();
            self.backend.queued.store(0, Ordering::SeqCst);
            state.queue.drain(..).collect()
        };
        self.fail(queued, error);
    }
}
