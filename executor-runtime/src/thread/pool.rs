//! The Thread backend: the pool behind one `pool!(Thread => { ... })` block.
//!
//! Each block owns its pool. Worker threads start lazily, one per `submit` that finds no idle
//! worker, up to `max_workers` (as Python's `ThreadPoolExecutor` does), and all of them are joined
//! when the block is left. A pool per block is what makes nesting safe: a task that opens its own
//! `pool!` block gets fresh workers, so no pool ever waits on work queued behind itself.
//!
//! Tasks may borrow from the enclosing function, like `std::thread::scope`, and the lifetimes work
//! the same way. [`ThreadScope<'scope>`] is the pool; `submit` takes `&'scope self` and accepts
//! closures that live for `'scope`, so a task may itself capture the scope and submit more work.
//! The block's [`JoinGuard`] (shared with the Process backend) holds that `&'scope` borrow and
//! joins every task in its `Drop`; because its `Drop` mentions `'scope`, the borrow checker makes
//! `'scope` last until the join, which rejects tasks that borrow locals declared inside the block. The pool itself has no `Drop` and keeps its
//! jobs with the lifetime erased, so that dropping it puts no constraint on `'scope`. Both are locals
//! of the macro expansion that user code cannot name, so the guard cannot be leaked.
//!
//! The Auto backend is this pool with a moving limit: workers start lazily up to `limit`, which the
//! governor raises and lowers (`crate::thread::governor`); a worker above it parks after its task
//! (`auto`). On Thread the limit is `max_workers` and never moves.
//!
//! The queue (`job_queue`) is lock-free; a worker that finds it empty spins, yields twice, and
//! sleeps on a condition variable only after a round in which nothing was submitted; a `submit`
//! wakes a sleeper only when no idle worker that is awake will take the task, and each sleeper
//! once (`sleep`). So a busy pool makes no system call per task: one fresh block of 20,000 tiny
//! tasks on 2 workers, results read in order, makes at most 0.011 `futex` and `sched_yield` calls
//! a task, where it made up to 0.64 (`BENCHMARKS.md`, "System calls of one fresh block").

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::panic;
use std::ptr::NonNull;
use std::sync::atomic::{self, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle, Thread};

use crossbeam_utils::CachePadded;

use crate::task::completion::Completion;
use crate::task::error::{Panic, TaskError};
use crate::task::future::{Future, Task};
use crate::task::memory;
use crate::thread::asymmetric_fence;
use crate::thread::governor::Policy;
use crate::thread::job::{Job, JobRef, ThreadTask};

mod auto;
mod sleep;
#[cfg(test)]
mod tests;
mod worker;
use crate::block::join_guard::{JoinGuard, Pool};
use crate::block::options::{default_thread_workers, PoolOptions};
use crate::thread::job_queue::JobQueue;
use auto::AutoSizing;

/// The default cap of an `Auto` pool: generous, because the governor, not the cap, sizes it.
const DEFAULT_AUTO_MAX_WORKERS: usize = 256;

/// Workers that take the block's tasks in batches (`job_queue`): the first 64 of a Thread pool;
/// any more take them one at a time (each batch is a deque that every idle worker looks at).
/// Auto's workers take them one at a time too: a worker parked by the governor must hold none.
const BATCHING_WORKERS: usize = 64;

/// Pool ids start at 1; 0 means "not a worker".
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// State shared by the guard and the workers.
struct Shared {
    id: u64,
    queue: JobQueue<JobRef>,
    max_workers: usize,
    name_prefix: String,
    /// Workers started so far.
    spawned: AtomicUsize,
    /// How many workers may take tasks: `max_workers` on Thread; on Auto, the governor's target.
    limit: AtomicUsize,
    /// Auto only: set (under `sleep_lock`) when `limit` is lowered below the workers taking tasks,
    /// cleared (under it too) by a worker that finds the pool within it again. Workers read this
    /// flag, on a cache line of its own that is seldom written, before each task, rather than the
    /// counters, which share a line with ones written all the time.
    over_limit: CachePadded<AtomicBool>,
    /// Auto only: workers parked because the pool had more than `limit`, waiting on `unpark`.
    parked: AtomicUsize,
    unpark: Condvar,
    /// The worker threads, joined by `ThreadScope::join`; `None` once joined, so that nothing
    /// starts a worker after the join (the governor could otherwise).
    threads: Mutex<Option<Vec<JoinHandle<()>>>>,
    /// `Some` on the Auto backend: its bounds and its workers' gauges, read by the governor.
    auto: Option<AutoSizing>,
    /// Workers holding no task (spinning, yielding or asleep); see `sleep`. On a line of its own:
    /// workers write it all the time, and the counts beside it are read on every submit.
    idle: CachePadded<AtomicUsize>,
    /// Workers asleep on `wake`, or about to be, that no waker has yet granted a wake-up.
    sleepers: AtomicUsize,
    /// Wake-ups granted and not yet taken by a sleeper (see `sleep`); the lock also orders
    /// Auto's limit changes against its parking workers.
    sleep_lock: Mutex<usize>,
    wake: Condvar,
    /// Wake-ups granted, and times a worker went to sleep, over the pool's life: what the pool's
    /// system calls per task come from (read by tests).
    wakes: AtomicUsize,
    sleeps: AtomicUsize,
    /// Set when the block is left and no task remains: workers exit.
    shutdown: AtomicBool,
    /// Whether the block's own submits may use the light side of the fence they share with
    /// workers going to sleep (`asymmetric_fence`); `false` where the heavy side is missing.
    light_submits: bool,
    /// Tasks taken off the queue and finished, one counter per worker so workers never contend.
    finished: Mutex<Vec<Arc<CachePadded<AtomicUsize>>>>,
    /// Tasks taken off the queue by an early exit of the block (cancelled, see `cancel_futures`).
    taken_at_exit: AtomicUsize,
    /// Run by each worker before its first task.
    initializer: Option<crate::block::options::ThreadInitializer>,
    /// Set when an initializer panicked: the pool runs no more tasks, and fails them with this.
    broken: OnceLock<String>,
    /// The thread waiting in `join`, woken when a worker runs out of work.
    joiner: OnceLock<Thread>,
    /// Tasks that panicked, kept to report the ones whose future nobody read.
    panicked: Mutex<Vec<JobRef>>,
}

impl Shared {
    fn all_finished(&self) -> bool {
        // Read the finished counts first: if they add up to the submitted count read afterwards,
        // then at that moment no task was queued or running, and only a running task (or the
        // joining thread itself) could submit another.
        let finished: usize = {
            let counters = self.finished.lock().unwrap_or_else(|e| e.into_inner());
            counters
                .iter()
                .map(|c| c.load(Ordering::SeqCst))
                .sum::<usize>()
                + self.taken_at_exit.load(Ordering::SeqCst)
        };
        finished == self.queue.pushed()
    }

    /// Runs a popped job (or drops a cancelled one) and keeps a panicked one for the report. In a
    /// broken pool (an initializer panicked) the job fails instead of running.
    fn run(&self, job: JobRef) {
        let panicked = match self.broken.get() {
            None => job.run(),
            Some(why) => job.fail(TaskError::WorkerStart(format!(
                "the pool's initializer panicked: {why}"
            ))),
        };
        if let Some(panicked) = panicked {
            self.panicked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(panicked);
        }
    }

    fn pop(&self) -> Option<JobRef> {
        self.queue.pop()
    }

    fn wake_joiner(&self) {
        // Pairs with the fence in `join`: either the joiner sees this worker's finished count, or
        // this worker sees the joiner and wakes it.
        atomic::fence(Ordering::SeqCst);
        if let Some(joiner) = self.joiner.get() {
            joiner.unpark();
        }
    }
}

/// The pool of one `pool!(Thread => { ... })` or `pool!(Auto => { ... })` block.
///
/// `'scope` is the lifetime of the block's borrow of the pool, and every task must live that long
/// (as with `std::thread::Scope`). It is invariant.
#[doc(hidden)]
pub struct ThreadScope<'scope> {
    shared: Arc<Shared>,
    cancel_on_early_exit: bool,
    joined: AtomicBool,
    _invariant: PhantomData<&'scope mut &'scope ()>,
}

impl<'scope> ThreadScope<'scope> {
    /// Opens a pool.
    ///
    /// # Safety
    /// The caller must call [`ThreadScope::join_guard`] at once and let the guard be dropped (or
    /// call [`JoinGuard::finish`]) before anything the tasks borrow goes away: the guard must not be
    /// leaked (`mem::forget`, a reference cycle), because worker threads run the tasks and only the
    /// guard joins them. The `pool!` macro upholds this by keeping the pool and its guard in locals
    /// that user code cannot name.
    pub unsafe fn new(options: PoolOptions) -> Self {
        // SAFETY: forwarded: the caller upholds `new`'s contract, which is `open`'s.
        unsafe { Self::open(options, false) }
    }

    /// Opens an `Auto` pool: on threads, as [`ThreadScope::new`], with as many workers as the
    /// governor finds the work wants, between `min_workers` (default 1) and `max_workers` (default
    /// 256). It starts with one worker per core.
    ///
    /// # Safety
    /// As for [`ThreadScope::new`].
    ///
    /// # Panics
    /// If `min_workers` is above `max_workers`.
    #[track_caller]
    pub unsafe fn new_auto(options: PoolOptions) -> Self {
        // SAFETY: forwarded, as in `new`.
        unsafe { Self::open(options, true) }
    }

    /// # Safety
    /// As for [`ThreadScope::new`].
    #[track_caller]
    unsafe fn open(options: PoolOptions, auto: bool) -> Self {
        let id = NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed);
        let max_workers = match (auto, options.max_workers) {
            (_, Some(n)) => n,
            (false, None) => default_thread_workers(),
            (true, None) => DEFAULT_AUTO_MAX_WORKERS,
        };
        let auto = auto.then(|| {
            let min = options.min_workers.unwrap_or(1);
            assert!(
                min <= max_workers,
                "pool! option `min_workers` ({min}) must not be above `max_workers` ({max_workers})"
            );
            AutoSizing::new(Policy {
                cores: crate::block::options::cpus(),
                min,
                max: max_workers,
            })
        });
        let limit = auto
            .as_ref()
            .map_or(max_workers, |auto| auto.policy.initial_target());
        let cancel_on_early_exit = options.cancels_on_early_exit();
        let name_prefix = options
            .thread_name_prefix
            .unwrap_or_else(|| format!("executor-{id}"));
        let scope = ThreadScope {
            shared: Arc::new(Shared {
                id,
                queue: JobQueue::new(if auto.is_some() {
                    0
                } else {
                    max_workers.min(BATCHING_WORKERS)
                }),
                max_workers,
                name_prefix,
                spawned: AtomicUsize::new(0),
                limit: AtomicUsize::new(limit),
                over_limit: CachePadded::new(AtomicBool::new(false)),
                parked: AtomicUsize::new(0),
                unpark: Condvar::new(),
                threads: Mutex::new(Some(Vec::new())),
                auto,
                idle: CachePadded::new(AtomicUsize::new(0)),
                sleepers: AtomicUsize::new(0),
                sleep_lock: Mutex::new(0),
                wake: Condvar::new(),
                wakes: AtomicUsize::new(0),
                sleeps: AtomicUsize::new(0),
                shutdown: AtomicBool::new(false),
                light_submits: asymmetric_fence::register(),
                finished: Mutex::new(Vec::new()),
                taken_at_exit: AtomicUsize::new(0),
                initializer: options.thread_initializer.clone(),
                broken: OnceLock::new(),
                joiner: OnceLock::new(),
                panicked: Mutex::new(Vec::new()),
            }),
            cancel_on_early_exit,
            joined: AtomicBool::new(false),
            _invariant: PhantomData,
        };
        // An Auto pool is put under the governor once its first worker has started
        // (`auto_worker_started`), so that the governor never takes the one thread that worker
        // needs.
        scope
    }

    /// The guard that joins this pool when the block ends.
    pub fn join_guard(&'scope self) -> JoinGuard<'scope, Self> {
        JoinGuard::new(self)
    }

    /// Starts `call` on the pool; `submit(f, args...)` in a block becomes this.
    pub fn submit<F, R>(&'scope self, call: F) -> Future<R>
    where
        F: FnOnce() -> R + Send + 'scope,
        R: Send + 'scope,
    {
        let task = memory::allocate(ThreadTask {
            completion: Completion::new(),
            func: UnsafeCell::new(Some(call)),
            pool_id: self.shared.id,
        });
        let job: NonNull<dyn Job + 'scope> = task;
        let handle: NonNull<dyn Task<R> + 'scope> = task;
        // SAFETY: (lifetime erasure) these only erase `'scope` from the trait objects' types. The
        // closure (the only part that borrows `'scope` data) is reached through the queue entry by a
        // worker, and through the future only while the task is pending (`run_here_if_pending`).
        // Every worker is joined, and every task has stopped being pending with its closure
        // consumed or dropped, before the `JoinGuard` finishes dropping, which the borrow checker
        // places before the end of `'scope` (a worker the Auto governor starts is joined too: it
        // starts none once the join has taken the thread handles, see `spawn_worker`). After that
        // only the completion is read (its type `R` is still named by the future), and freeing the
        // task drops an empty closure slot, which touches no `'scope` data.
        let (job, handle) = unsafe {
            (
                std::mem::transmute::<NonNull<dyn Job + 'scope>, NonNull<dyn Job>>(job),
                std::mem::transmute::<NonNull<dyn Task<R> + 'scope>, NonNull<dyn Task<R>>>(handle),
            )
        };
        // The completion starts with both references set: the queue entry takes one, the future
        // the other.
        let job = JobRef(job);

        let pusher = self.shared.queue.push(job);
        // Start a worker when no idle one is there for this task. On Auto, also when more tasks
        // are queued than idle workers: two submits right after each other both see the same
        // idle worker, and a first task that blocks until the second runs would wait for it (the
        // governor would start one too, a tick later). Not on Thread: with a fast submitter and
        // a large `max_workers`, tasks queue up for a moment while idle workers wake, and it
        // would start every worker it may for tasks as small as `a + b` (20,000 of them: 2.5 ms
        // on 2 workers, 10 ms with 128 started); Auto's target bounds what it starts.
        // Once Thread has started all its workers, the submit reads no count the workers write
        // (the deque still reads its front, which steals move) unless one sleeps: `idle` changes
        // whenever a worker runs out of tasks, which in a block of tiny tasks is all the time.
        let shared = &self.shared;
        if shared.auto.is_some() || shared.spawned.load(Ordering::Relaxed) < shared.max_workers {
            let idle = shared.idle.load(Ordering::SeqCst);
            let below_limit = || shared.taking() < shared.limit.load(Ordering::Relaxed);
            if idle == 0 || (shared.auto.is_some() && below_limit() && shared.queue.len() > idle) {
                Shared::spawn_worker(shared);
            }
        }
        self.shared.wake_for_queued(pusher);
        // SAFETY: `handle` is a task in task memory holding `FUTURE_REF`; the join keeps the
        // borrowed data alive while the task may still use it (see above).
        unsafe { Future::from_raw(handle) }
    }

    /// `map(f, items)` in a block becomes this: `f` on each item, results in input order, with
    /// at most `AHEAD_PER_WORKER` (32) tasks per worker in flight (on Auto, per worker of its
    /// current target, not of its cap).
    pub fn map<I, F, R>(
        &'scope self,
        f: F,
        items: I,
    ) -> crate::thread::map::ThreadMap<'scope, I::IntoIter, F, R>
    where
        I: IntoIterator,
        I::Item: Send + 'scope,
        F: Fn(I::Item) -> R + Clone + Send + 'scope,
        R: Send + 'scope,
    {
        crate::thread::map::ThreadMap::new(self, items.into_iter(), f)
    }

    /// `map_unordered(f, items)` in a block becomes this: `f` on each item, each result paired
    /// with its item (a clone kept here), in the order the tasks finish; in flight as `map`.
    pub fn map_unordered<I, F, R>(
        &'scope self,
        f: F,
        items: I,
    ) -> crate::thread::map::ThreadMapUnordered<'scope, I::IntoIter, F, R>
    where
        I: IntoIterator,
        I::Item: Clone + Send + 'scope,
        F: Fn(I::Item) -> R + Clone + Send + 'scope,
        R: Send + 'scope,
    {
        crate::thread::map::ThreadMapUnordered::new(self, items.into_iter(), f)
    }

    /// How many tasks a `map` keeps in flight.
    pub(crate) fn map_ahead(&self) -> usize {
        crate::block::map::AHEAD_PER_WORKER * self.shared.limit.load(Ordering::Relaxed).max(1)
    }
}

impl Pool for ThreadScope<'_> {
    fn cancels_on_early_exit(&self) -> bool {
        self.cancel_on_early_exit
    }

    /// Cancels the tasks still queued (the block was left early): each is marked cancelled and
    /// its closure dropped here, before the borrowed data it may hold goes away.
    fn cancel_pending(&self) {
        let shared = &self.shared;
        while let Some(job) = shared.pop() {
            job.job().cancel();
            // Only a task that already ran (inline, on a worker waiting for it) can have panicked.
            shared.run(job);
            shared.taken_at_exit.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits until every submitted task has finished, then stops and joins the workers. Returns the
    /// messages of panics whose futures were dropped unread.
    fn join(&self) -> Vec<Panic> {
        if self.joined.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        let shared = &self.shared;
        let _ = shared.joiner.set(thread::current());
        atomic::fence(Ordering::SeqCst);
        while !shared.all_finished() {
            thread::park();
        }
        shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _lock = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
            shared.unpark.notify_all();
        }
        let threads = shared
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        for handle in threads {
            // The worker loop catches every task panic, so a worker only fails on a bug here.
            if let Err(payload) = handle.join() {
                panic::resume_unwind(payload);
            }
        }
        let panicked =
            std::mem::take(&mut *shared.panicked.lock().unwrap_or_else(|e| e.into_inner()));
        panicked
            .iter()
            // SAFETY: every task is finished (joined above) and each `JobRef` holds the queue reference.
            .filter_map(|job| unsafe { job.job().unread_panic() })
            .collect()
    }
}
