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
//! governor raises and lowers (`crate::governor`); a worker above it parks after its task
//! (`auto`). On Thread the limit is `max_workers` and never moves.
//!
//! The queue (`job_queue`) is lock-free; a worker that finds it empty yields a few times, then
//! sleeps on a condition variable. A `submit` wakes a sleeper only when one is asleep, so a busy
//! pool makes no system calls per task.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{self, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle, Thread};

use crossbeam_utils::CachePadded;

use crate::completion::Completion;
use crate::error::{drop_payload, panic_message, TaskError};
use crate::future::{Future, Task};
use crate::governor::{self, Governed, Policy, WorkerGauge};
use crate::thread_job::{Job, JobRef, ThreadTask};

mod auto;
use crate::job_queue::JobQueue;
use crate::join_guard::{JoinGuard, Pool};
use crate::options::{default_thread_workers, PoolOptions};
use crate::worker::{self, Backend, WorkerInfo};
use auto::AutoSizing;

/// The default cap of an `Auto` pool: generous, because the governor, not the cap, sizes it.
const DEFAULT_AUTO_MAX_WORKERS: usize = 256;

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
    /// Workers not running a task (spinning or asleep).
    idle: AtomicUsize,
    /// Workers asleep on `wake`, or about to be.
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    /// Set when the block is left and no task remains: workers exit.
    shutdown: AtomicBool,
    /// Tasks pushed on the queue (written by submitters).
    submitted: CachePadded<AtomicUsize>,
    /// Tasks taken off the queue and finished, one counter per worker so workers never contend.
    finished: Mutex<Vec<Arc<CachePadded<AtomicUsize>>>>,
    /// Tasks taken off the queue by an early exit of the block (cancelled, see `cancel_futures`).
    taken_at_exit: AtomicUsize,
    /// Run by each worker before its first task.
    initializer: Option<crate::options::ThreadInitializer>,
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
        finished == self.submitted.load(Ordering::SeqCst)
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

    fn wake_one_sleeper(&self) {
        atomic::fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _lock = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_one();
        }
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
            AutoSizing {
                policy: Policy {
                    cores: crate::options::cpus(),
                    min,
                    max: max_workers,
                },
                gauges: Mutex::new(Vec::new()),
            }
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
                queue: JobQueue::new(),
                max_workers,
                name_prefix,
                spawned: AtomicUsize::new(0),
                limit: AtomicUsize::new(limit),
                over_limit: CachePadded::new(AtomicBool::new(false)),
                parked: AtomicUsize::new(0),
                unpark: Condvar::new(),
                threads: Mutex::new(Some(Vec::new())),
                auto,
                idle: AtomicUsize::new(0),
                sleepers: AtomicUsize::new(0),
                sleep_lock: Mutex::new(()),
                wake: Condvar::new(),
                shutdown: AtomicBool::new(false),
                submitted: CachePadded::new(AtomicUsize::new(0)),
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
        if scope.shared.auto.is_some() {
            let shared: Arc<dyn Governed> = scope.shared.clone();
            governor::govern(Arc::downgrade(&shared));
        }
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
        let task = Box::new(ThreadTask {
            completion: Completion::new(),
            func: UnsafeCell::new(Some(call)),
            pool_id: self.shared.id,
        });
        let task: *mut ThreadTask<F, R> = Box::into_raw(task);
        let job: *mut (dyn Job + 'scope) = task;
        let handle: *mut (dyn Task<R> + 'scope) = task;
        // SAFETY (lifetime erasure): these only erase `'scope` from the trait objects' types. The
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
                std::mem::transmute::<*mut (dyn Job + 'scope), *mut dyn Job>(job),
                std::mem::transmute::<*mut (dyn Task<R> + 'scope), *mut dyn Task<R>>(handle),
            )
        };
        // Both pointers come from `Box::into_raw`, so they are not null. The completion starts
        // with both references set: the queue entry takes one, the future the other.
        let job = JobRef(NonNull::new(job).expect("Box::into_raw is never null"));
        let handle = NonNull::new(handle).expect("Box::into_raw is never null");

        self.shared.submitted.fetch_add(1, Ordering::SeqCst);
        self.shared.queue.push(job);
        // Start a worker when no idle one is there for this task. On Auto, also when more tasks
        // are queued than idle workers: two submits right after each other both see the same
        // idle worker, and a first task that blocks until the second runs would wait for it (the
        // governor would start one too, a tick later). Not on Thread: with a fast submitter and
        // a large `max_workers`, tasks queue up for a moment while idle workers wake, and it
        // would start every worker it may for tasks as small as `a + b` (20,000 of them: 2.5 ms
        // on 2 workers, 10 ms with 128 started); Auto's target bounds what it starts.
        let shared = &self.shared;
        let idle = shared.idle.load(Ordering::SeqCst);
        let below_limit = || shared.taking() < shared.limit.load(Ordering::Relaxed);
        if idle == 0 || (shared.auto.is_some() && below_limit() && shared.queue.len() > idle) {
            Shared::spawn_worker(shared);
        }
        self.shared.wake_one_sleeper();
        // SAFETY: `handle` is a boxed task holding `FUTURE_REF`; the join keeps the borrowed data
        // alive while the task may still use it (see above).
        unsafe { Future::from_raw(handle) }
    }

    /// `map(f, items)` in a block becomes this: `f` on each item, results in input order, with
    /// at most `AHEAD_PER_WORKER` (32) tasks per worker in flight (on Auto, per worker of its
    /// current target, not of its cap).
    pub fn map<I, F, R>(
        &'scope self,
        f: F,
        items: I,
    ) -> crate::map::ThreadMap<'scope, I::IntoIter, F, R>
    where
        I: IntoIterator,
        I::Item: Send + 'scope,
        F: Fn(I::Item) -> R + Clone + Send + 'scope,
        R: Send + 'scope,
    {
        crate::map::ThreadMap::new(self, items.into_iter(), f)
    }

    /// How many tasks a `map` keeps in flight.
    pub(crate) fn map_ahead(&self) -> usize {
        crate::map::AHEAD_PER_WORKER * self.shared.limit.load(Ordering::Relaxed).max(1)
    }
}

impl Shared {
    /// Starts a worker if the pool has fewer than `limit` taking tasks and fewer than
    /// `max_workers` started; returns whether it did.
    fn spawn_worker(shared: &Arc<Shared>) -> bool {
        let claimed = shared
            .spawned
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                let taking = n.saturating_sub(shared.parked.load(Ordering::SeqCst));
                (n < shared.max_workers && taking < shared.limit.load(Ordering::SeqCst))
                    .then_some(n + 1)
            });
        let Ok(index) = claimed else { return false };

        let counter = Arc::new(CachePadded::new(AtomicUsize::new(0)));
        shared
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(counter.clone());
        let gauge = shared.auto.as_ref().map(|auto| {
            let gauge = Arc::new(WorkerGauge::default());
            let mut gauges = auto.gauges.lock().unwrap_or_else(|e| e.into_inner());
            // Indices are claimed in order but pushed in any order: place each at its index.
            if gauges.len() <= index {
                gauges.resize_with(index + 1, Default::default);
            }
            gauges[index] = Arc::clone(&gauge);
            gauge
        });
        let name = format!("{}-{index}", shared.name_prefix);
        let worker_shared = Arc::clone(shared);
        let builder = thread::Builder::new().name(name.clone());
        // The join takes the handles (leaving `None`) under this lock, so a worker is either
        // started here and joined there, or not started at all; once the join has begun (every
        // task done), the governor starts none.
        let mut threads = shared.threads.lock().unwrap_or_else(|e| e.into_inner());
        let spawned = match threads.as_mut() {
            Some(threads) if !shared.shutdown.load(Ordering::SeqCst) => builder
                .spawn(move || worker_loop(&worker_shared, index, name, &counter, gauge))
                .map(|handle| {
                    threads.push(handle);
                    Some(())
                }),
            _ => Ok(None),
        };
        drop(threads);
        let error = match spawned {
            Ok(Some(())) => return true,
            Ok(None) => None, // joined: nothing left to run
            Err(error) => Some(error),
        };
        shared.spawned.fetch_sub(1, Ordering::SeqCst);
        let mut counters = shared.finished.lock().unwrap_or_else(|e| e.into_inner());
        counters.retain(|c| Arc::strong_count(c) > 1);
        drop(counters);
        if let Some(error) = error {
            // With at least one worker the task still runs, on fewer threads; with none it
            // never would, so say so rather than hang.
            assert!(
                shared.spawned.load(Ordering::SeqCst) > 0,
                "pool!: could not start a worker thread: {error}"
            );
        }
        false
    }

    /// Workers taking tasks: started and not parked.
    fn taking(&self) -> usize {
        self.spawned
            .load(Ordering::SeqCst)
            .saturating_sub(self.parked.load(Ordering::SeqCst))
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
    fn join(&self) -> Vec<String> {
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

/// The life of one worker thread: take a task, run it, repeat; sleep when there is none. On Auto,
/// it keeps its gauge, and parks while the pool has more workers than its target.
fn worker_loop(
    shared: &Shared,
    index: usize,
    name: String,
    finished: &AtomicUsize,
    gauge: Option<Arc<WorkerGauge>>,
) {
    if let Some(gauge) = &gauge {
        gauge.attach_current_thread();
    }
    worker::become_worker(
        shared.id,
        WorkerInfo::new(Backend::Thread, index, Some(name)),
    );
    if let Some(initializer) = &shared.initializer {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| (initializer.0)())) {
            let message = panic_message(&*payload);
            drop_payload(payload);
            log::error!("executor: a worker's initializer panicked: {message}; the pool is broken");
            let _ = shared.broken.set(message);
        }
    }
    let mut idle = false;
    loop {
        if let Some(gauge) = &gauge {
            if shared.over_limit.load(Ordering::Relaxed) {
                if idle {
                    shared.idle.fetch_sub(1, Ordering::SeqCst);
                    idle = false;
                    gauge.end_idle();
                }
                if shared.park_while_over_limit(gauge) {
                    return;
                }
                continue;
            }
        }
        if let Some(job) = shared.pop() {
            if idle {
                shared.idle.fetch_sub(1, Ordering::SeqCst);
                idle = false;
                if let Some(gauge) = &gauge {
                    gauge.end_idle();
                }
            }
            shared.run(job);
            finished.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        if !idle {
            shared.idle.fetch_add(1, Ordering::SeqCst);
            idle = true;
            if let Some(gauge) = &gauge {
                gauge.start_idle();
            }
        }
        shared.wake_joiner();
        if wait_for_work(shared) {
            return;
        }
    }
}

/// How often an idle worker yields before it sleeps. Yielding rather than spinning matters when
/// the submitting thread shares the cores with the workers (always, with `max_workers` = cores): a
/// spinning worker takes CPU time from the one thread that produces its work. Measured on 2 cores,
/// 20,000 tiny tasks: spinning (crossbeam's `Backoff`) cost about 7% over yielding.
const YIELDS_BEFORE_SLEEP: usize = 16;

/// Waits until the queue may have work (`false`) or the pool shuts down (`true`).
fn wait_for_work(shared: &Shared) -> bool {
    for _ in 0..YIELDS_BEFORE_SLEEP {
        if !shared.queue.is_empty() {
            return false;
        }
        thread::yield_now();
    }
    let mut lock = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
    shared.sleepers.fetch_add(1, Ordering::SeqCst);
    atomic::fence(Ordering::SeqCst);
    while shared.queue.is_empty() && !shared.shutdown.load(Ordering::SeqCst) {
        lock = shared.wake.wait(lock).unwrap_or_else(|e| e.into_inner());
    }
    shared.sleepers.fetch_sub(1, Ordering::SeqCst);
    shared.queue.is_empty() && shared.shutdown.load(Ordering::SeqCst)
}
