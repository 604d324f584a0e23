//! The Mpi backend on the side that opens blocks: the pool behind one `pool!(Mpi => { ... })`.
//!
//! The workers are MPI ranks, which belong to the process rather than to a block: launched ranks
//! exist for the whole job, and spawned ones are kept for the life of the process (spawning costs
//! a few hundred milliseconds), so a second block, or one nested in another, reuses them. One
//! driver thread per process (`mpi_driver`) makes every MPI call; a block only queues its calls
//! and waits for them. `max_workers` caps how many workers serve a block at once (default: all
//! the ranks of a launched job; the number of CPUs when the pool spawns its workers).
//!
//! Calls are encoded at `submit` exactly as on the Process backend (`remote`), and cross in the
//! same frames (`wire`), so any block that compiles under `Process` compiles under `Mpi`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::de::DeserializeOwned;

use crate::error::TaskError;
use crate::future::Future;
use crate::join_guard::{JoinGuard, Pool};
use crate::mpi_driver::{self, Driver};
use crate::options::{PoolOptions, ProcessInitializer};
use crate::process_pool::{new_job, JobRef, Outcome, Queued};
use crate::remote::RemoteCall;

static NEXT_BLOCK_ID: AtomicU64 = AtomicU64::new(1);

/// One open block, as the driver sees it.
pub(crate) struct Block {
    pub(crate) id: u64,
    /// The most workers serving this block at once; `None`: as many as there are.
    pub(crate) max_workers: Option<usize>,
    pub(crate) state: Mutex<BlockState>,
    pub(crate) changed: Condvar,
    /// How many calls wait in the queue, readable without the lock (the driver polls it).
    pub(crate) queued: AtomicUsize,
    /// How many workers have calls of this block in flight (kept by the driver).
    pub(crate) in_use: AtomicUsize,
    /// What each worker runs once before this block's first call on it (`initializer`).
    pub(crate) initializer: Option<Arc<ProcessInitializer>>,
    /// The initializer failed: the block's calls fail with `BlockState::broken`'s reason.
    pub(crate) broken: AtomicBool,
}

/// Everything behind a block's lock.
pub(crate) struct BlockState {
    pub(crate) queue: VecDeque<Queued>,
    pub(crate) submitted: usize,
    pub(crate) finished: usize,
    /// Calls that panicked, kept to report a panic nobody read.
    pub(crate) panicked: Vec<JobRef>,
    /// Why the block is broken (its initializer failed), if it is.
    pub(crate) broken: Option<String>,
}

impl Block {
    pub(crate) fn lock(&self) -> MutexGuard<'_, BlockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the oldest queued calls, at most `most`, under one lock.
    pub(crate) fn pop(&self, most: usize) -> Vec<Queued> {
        let mut state = self.lock();
        let count = most.min(state.queue.len());
        let taken: Vec<Queued> = state.queue.drain(..count).collect();
        self.queued.fetch_sub(count, Ordering::SeqCst);
        taken
    }

    /// Puts calls that were sent to a worker that died before running them back at the front.
    pub(crate) fn requeue(&self, jobs: Vec<JobRef>) {
        let mut state = self.lock();
        for job in jobs.into_iter().rev() {
            state.queue.push_front(Queued { job, claimed: true });
            self.queued.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Counts calls finished (resolved or cancelled), keeps those that panicked, and wakes the
    /// block.
    pub(crate) fn finished(&self, count: usize, panicked: impl IntoIterator<Item = JobRef>) {
        let mut state = self.lock();
        state.finished += count;
        state.panicked.extend(panicked);
        drop(state);
        self.changed.notify_all();
    }

    /// Resolves a dispatched call with `outcome`, and counts it.
    ///
    /// # Safety
    /// The call must have been claimed (`try_dispatch`) and not resolved yet.
    pub(crate) unsafe fn resolve(&self, job: JobRef, outcome: Outcome<'_>) {
        // SAFETY: forwarded from the caller.
        let panicked = unsafe { job.resolve(outcome) };
        self.finished(1, panicked);
    }

    /// The block's initializer failed (as Python's `BrokenProcessPool`): its queued calls, and those
    /// submitted later, fail with `TaskError::WorkerStart(why)`.
    pub(crate) fn break_with(&self, why: String) {
        log::warn!("executor: Mpi block {}: {why}", self.id);
        self.lock().broken = Some(why.clone());
        self.broken.store(true, Ordering::SeqCst);
        self.fail_queued(&TaskError::WorkerStart(why));
    }

    /// Fails every queued call with `error` (no worker can run them).
    pub(crate) fn fail_queued(&self, error: &TaskError) {
        let queued: Vec<Queued> = {
            let mut state = self.lock();
            self.queued.store(0, Ordering::SeqCst);
            state.queue.drain(..).collect()
        };
        self.fail(queued, error);
    }

    fn fail(&self, jobs: Vec<Queued>, error: &TaskError) {
        for Queued { job, claimed } in jobs {
            if !claimed && !job.job().try_dispatch() {
                self.finished(1, None); // cancelled meanwhile: nothing to resolve
                continue;
            }
            // SAFETY: claimed just above (or before it was queued again), not resolved.
            unsafe { self.resolve(job, Outcome::Failed(error.clone())) };
        }
    }
}

/// The pool of one `pool!(Mpi => { ... })` block.
#[doc(hidden)]
pub struct MpiScope {
    block: Arc<Block>,
    driver: Result<&'static Driver, String>,
    cancel_on_early_exit: bool,
    joined: AtomicBool,
}

impl MpiScope {
    /// Opens a block; the first block of the process starts MPI (and, without a launcher, spawns
    /// the workers when the first call is queued).
    pub fn new(options: PoolOptions) -> Self {
        let block = Arc::new(Block {
            id: NEXT_BLOCK_ID.fetch_add(1, Ordering::Relaxed),
            max_workers: options.max_workers,
            state: Mutex::new(BlockState {
                queue: VecDeque::new(),
                submitted: 0,
                finished: 0,
                panicked: Vec::new(),
                broken: None,
            }),
            changed: Condvar::new(),
            queued: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            initializer: options.process_initializer.clone(),
            broken: AtomicBool::new(false),
        });
        if let Some(Err(why)) = options.process_initializer.as_ref().map(|i| &i.arguments) {
            // Every worker would fail it: fail the calls at once instead.
            block.lock().broken = Some(format!("the pool's initializer cannot be sent: {why}"));
            block.broken.store(true, Ordering::SeqCst);
        }
        let driver = mpi_driver::driver();
        if let Ok(driver) = driver {
            driver.open(Arc::clone(&block));
        }
        MpiScope {
            block,
            driver,
            cancel_on_early_exit: options.cancels_on_early_exit(),
            joined: AtomicBool::new(false),
        }
    }

    /// The guard that joins this pool when the block ends.
    pub fn join_guard(&self) -> JoinGuard<'_, Self> {
        JoinGuard::new(self)
    }

    /// Queues a call; `submit(f, args...)` in a `pool!(Mpi => ...)` block becomes this.
    pub fn submit<R>(&self, call: RemoteCall<R>) -> Future<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let (job, future, encode_error) = new_job(call);
        let unsendable = match (encode_error, &self.driver) {
            (Some(why), _) => Some(TaskError::Transport(why)),
            (None, Err(why)) => Some(TaskError::WorkerStart(why.clone())),
            (None, Ok(_)) => None,
        };
        let mut state = self.block.lock();
        state.submitted += 1;
        let unsendable = unsendable.or_else(|| state.broken.clone().map(TaskError::WorkerStart));
        if let Some(error) = unsendable {
            drop(state);
            let job = Queued {
                job,
                claimed: false,
            };
            self.block.fail(vec![job], &error);
            return future;
        }
        state.queue.push_back(Queued {
            job,
            claimed: false,
        });
        self.block.queued.fetch_add(1, Ordering::SeqCst);
        drop(state);
        if let Ok(driver) = self.driver {
            driver.wake();
        }
        future
    }

    /// `map(f, items[, chunksize])` in a block becomes this, as on Process: results in input
    /// order, items sent in chunks of `chunksize`, at most twice `max_workers` chunks in flight.
    ///
    /// # Panics
    /// If `chunksize` is 0.
    pub fn map<I, T, R>(
        &self,
        f: fn(T) -> R,
        items: I,
        chunksize: usize,
    ) -> crate::map::ProcessMap<'_, Self, I::IntoIter, T, R>
    where
        I: IntoIterator<Item = T>,
        T: serde::Serialize + DeserializeOwned + 'static,
        R: serde::Serialize + DeserializeOwned + Send + 'static,
    {
        let workers = self.block.max_workers.unwrap_or_else(|| {
            self.driver
                .as_ref()
                .map_or(1, |driver| driver.default_workers())
        });
        crate::map::ProcessMap::new(
            self,
            items.into_iter(),
            f,
            chunksize,
            crate::map::AHEAD_PER_WORKER * workers,
        )
    }
}

impl crate::map::RemotePool for MpiScope {
    fn submit_remote<R>(&self, call: RemoteCall<R>) -> Future<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        self.submit(call)
    }
}

impl Pool for MpiScope {
    fn cancels_on_early_exit(&self) -> bool {
        self.cancel_on_early_exit
    }

    /// Cancels the calls not yet sent to a worker (the block was left early).
    fn cancel_pending(&self) {
        let mut state = self.block.lock();
        let queued = std::mem::take(&mut state.queue);
        for entry in queued {
            if !entry.claimed && entry.job.job().cancel() {
                state.finished += 1;
                self.block.queued.fetch_sub(1, Ordering::SeqCst);
            } else {
                state.queue.push_back(entry);
            }
        }
        drop(state);
        self.block.changed.notify_all();
    }

    /// Waits for every call; the workers stay for the next block. Returns the messages of panics
    /// whose futures were dropped unread.
    fn join(&self) -> Vec<String> {
        if self.joined.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        let mut state = self.block.lock();
        while state.finished < state.submitted {
            state = self
                .block
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        let panicked = std::mem::take(&mut state.panicked);
        drop(state);
        if let Ok(driver) = self.driver {
            driver.close(self.block.id);
        }
        panicked
            .iter()
            // SAFETY: every call is finished and each `JobRef` holds the queue reference.
            .filter_map(|job| unsafe { job.job().unread_panic() })
            .collect()
    }
}
