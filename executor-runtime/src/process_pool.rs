//! The Process backend: the pool behind one `pool!(Process => { ... })` block, on the parent's side.
//!
//! Each block owns its workers, started lazily (one more whenever queued calls outnumber idle
//! workers, up to `max_workers`, by default the number of CPUs) by re-executing the current binary
//! (see `worker_process` for how the child becomes a worker before `main`).
//!
//! Calls wait in one queue. Each worker has a *link* (`process_link`): a writer thread that sends it
//! calls and a reader thread that receives outcomes, in order. A link keeps up to a *window* of calls
//! in flight, so that tiny calls are pipelined rather than paying a round trip each; the window
//! starts at 1 and adapts to the measured run time of calls (about 1 ms of work in flight), so long
//! calls are never stuck behind each other on one worker while another is idle.
//!
//! A worker that dies (crash, abort, signal, `exit`) is noticed by its reader at once (the socket
//! closes). The call it was running resolves with [`TaskError::WorkerDied`], saying how it died;
//! the calls queued behind it go back to the front of the queue, and a replacement starts.
//!
//! Arguments are encoded when `submit` runs, so a call borrows nothing once submitted and the pool
//! needs no lifetime tricks: [`ProcessScope::new`] is safe.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::completion::{Completion, QUEUE_REF};
use crate::error::{drop_payload, panic_message, TaskError};
use crate::future::{Future, Task};
use crate::join_guard::{JoinGuard, Pool};
use crate::options::PoolOptions;
use crate::process_link;
use crate::remote::{CallStatus, RemoteCall};
use crate::wire;
use crate::worker_process::{executable_identity, WORKER_ENV};

/// Pool ids, for log lines.
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// After this many worker starts in a row fail (or are refused), queued calls fail instead of waiting.
const START_ATTEMPTS: usize = 3;

/// What a link sends for one call; shared so a writer can send it without holding the pool lock.
pub(crate) struct Request {
    pub(crate) function: isize,
    pub(crate) trampoline: isize,
    pub(crate) arguments: wire::Parts,
}

impl Request {
    /// Appends the frame header and fixed fields of this call's message, numbered `id`; returns
    /// whether its arguments follow. Arguments over the frame limit are left out: the worker then
    /// reports them missing, which fails this call alone.
    pub(crate) fn write_call_head(&self, id: u64, out: &mut Vec<u8>) -> bool {
        let len = self.arguments.len();
        let fits = len <= wire::MAX_FRAME - crate::worker_process::CALL_FIELDS;
        let (len, tail) = if fits {
            (len, self.arguments.raw_tail_len())
        } else {
            (0, 0)
        };
        let _ = wire::write_header(
            out,
            wire::Kind::Call,
            crate::worker_process::CALL_FIELDS + len,
        );
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(self.trampoline as i64).to_le_bytes());
        out.extend_from_slice(&(self.function as i64).to_le_bytes());
        out.extend_from_slice(&(tail as u64).to_le_bytes());
        fits
    }
}

/// A call as the pool sees it, with its result type erased.
pub(crate) trait Job: Send + Sync {
    /// Claims a pending call for sending (it becomes "running"); `false` if it was cancelled.
    fn try_dispatch(&self) -> bool;

    fn request(&self) -> Arc<Request>;

    /// Resolves a dispatched call. Returns `(panicked, free)`: a panicked call keeps the queue
    /// reference (to report it if nobody reads it); otherwise the reference is released, and
    /// `free` says whether it was the last.
    ///
    /// # Safety
    /// The call must have been dispatched (claimed) and not resolved yet, and the caller must hold
    /// the queue reference.
    unsafe fn resolve(&self, outcome: Outcome<'_>) -> (bool, bool);

    /// See `thread_pool::Job::unread_panic`.
    ///
    /// # Safety
    /// Finished, and the caller holds the queue reference.
    unsafe fn unread_panic(&self) -> Option<String>;

    /// # Safety
    /// The caller must hold the queue reference.
    unsafe fn release_queue_ref(&self) -> bool;

    /// Cancels the call if it has not been sent.
    fn cancel(&self) -> bool;
}

/// How a dispatched call ended.
pub(crate) enum Outcome<'a> {
    /// The worker answered: a status and the encoded result or message.
    Answered(CallStatus, &'a [u8]),
    /// No answer: the error says why.
    Failed(TaskError),
}

struct ProcessTask<R> {
    completion: Completion<R>,
    request: Arc<Request>,
}

impl<R: DeserializeOwned + Send + 'static> Job for ProcessTask<R> {
    fn try_dispatch(&self) -> bool {
        self.completion.try_start()
    }

    fn request(&self) -> Arc<Request> {
        Arc::clone(&self.request)
    }

    unsafe fn resolve(&self, outcome: Outcome<'_>) -> (bool, bool) {
        let outcome = match outcome {
            // The user's `Deserialize` runs here, on a pool thread: a panic in it must not take
            // the thread down with the call unresolved.
            Outcome::Answered(CallStatus::Returned, bytes) => {
                match panic::catch_unwind(AssertUnwindSafe(|| wire::decode_whole::<R>(bytes))) {
                    Ok(decoded) => decoded.map_err(|why| {
                        TaskError::Transport(format!("could not decode the result: {why}"))
                    }),
                    Err(payload) => {
                        let message = panic_message(&*payload);
                        drop_payload(payload);
                        Err(TaskError::Transport(format!(
                            "decoding the result panicked: {message}"
                        )))
                    }
                }
            }
            Outcome::Answered(CallStatus::Panicked, bytes) => Err(TaskError::Panicked(
                String::from_utf8_lossy(bytes).into_owned(),
            )),
            Outcome::Answered(CallStatus::Transport, bytes) => Err(TaskError::Transport(
                String::from_utf8_lossy(bytes).into_owned(),
            )),
            Outcome::Failed(error) => Err(error),
        };
        let panicked = matches!(outcome, Err(TaskError::Panicked(_)));
        // SAFETY: the claim was handed to the caller with the queue reference (under the pool
        // lock), so this is the one completion of the call; forwarded from the caller.
        let free = unsafe { self.completion.complete(outcome, !panicked) };
        (panicked, free)
    }

    unsafe fn unread_panic(&self) -> Option<String> {
        // SAFETY: finished (the caller's contract).
        unsafe { self.completion.unread_panic() }
    }

    unsafe fn release_queue_ref(&self) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { self.completion.release(QUEUE_REF) }
    }

    fn cancel(&self) -> bool {
        self.completion.try_cancel()
    }
}

impl<R: Send> Task<R> for ProcessTask<R> {
    fn completion(&self) -> &Completion<R> {
        &self.completion
    }
}

/// A call as a job for a queue of calls to worker processes, and its future; the third value says
/// why the call cannot be sent, if it cannot (its job must then be failed, not sent).
pub(crate) fn new_job<R>(call: RemoteCall<R>) -> (JobRef, Future<R>, Option<String>)
where
    R: DeserializeOwned + Send + 'static,
{
    let (arguments, encode_error) = match call.arguments {
        Ok(bytes) => (bytes, None),
        Err(why) => (wire::Parts::default(), Some(why)),
    };
    let task = Box::new(ProcessTask::<R> {
        completion: Completion::new(),
        request: Arc::new(Request {
            function: call.function,
            trampoline: call.trampoline,
            arguments,
        }),
    });
    let task: *mut ProcessTask<R> = Box::into_raw(task);
    let job: *mut dyn Job = task;
    let handle: *mut dyn Task<R> = task;
    let job = JobRef(NonNull::new(job).expect("Box::into_raw is never null"));
    let handle = NonNull::new(handle).expect("Box::into_raw is never null");
    // SAFETY: `handle` is a boxed call holding `FUTURE_REF`; it borrows nothing (`R: 'static`).
    let future = unsafe { Future::from_raw(handle) };
    (job, future, encode_error)
}

/// The queue's reference to a boxed call. Dropping it releases the reference.
pub(crate) struct JobRef(NonNull<dyn Job>);

// SAFETY: `Job` is `Send + Sync`; a `JobRef` is the unique owner of the queue reference.
unsafe impl Send for JobRef {}

impl JobRef {
    pub(crate) fn job(&self) -> &dyn Job {
        // SAFETY: the queue reference keeps the call alive while this `JobRef` exists.
        unsafe { self.0.as_ref() }
    }

    /// Resolves the call and lets go of the reference; a panicked call's reference comes back.
    ///
    /// # Safety
    /// The call must have been dispatched by this pool and not resolved yet.
    pub(crate) unsafe fn resolve(self, outcome: Outcome<'_>) -> Option<JobRef> {
        // SAFETY: forwarded; this `JobRef` holds the queue reference.
        let (panicked, free) = unsafe { self.job().resolve(outcome) };
        if panicked {
            return Some(self);
        }
        let task = self.0;
        std::mem::forget(self);
        if free {
            // SAFETY: both references are gone; the call came from `Box::into_raw`.
            free_quietly(unsafe { Box::from_raw(task.as_ptr()) });
        }
        None
    }
}

impl Drop for JobRef {
    fn drop(&mut self) {
        // SAFETY: this `JobRef` holds the queue reference and is going away.
        if unsafe { self.job().release_queue_ref() } {
            // SAFETY: both references are gone; the call came from `Box::into_raw`.
            free_quietly(unsafe { Box::from_raw(self.0.as_ptr()) });
        }
    }
}

/// Frees a call on a pool thread. Freeing drops an unread result, which runs the user's `Drop`: a
/// panic there is contained rather than allowed to unwind through the thread.
fn free_quietly(job: Box<dyn Job>) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(job))) {
        drop_payload(payload);
    }
}

/// A call waiting to be sent.
pub(crate) struct Queued {
    pub(crate) job: JobRef,
    /// Already claimed (`try_dispatch`): it was sent to a worker that died before running it.
    pub(crate) claimed: bool,
}

/// One worker slot, as the pool's state sees it.
pub(crate) struct LinkState {
    /// Bumped when the slot gets a new worker, so the threads of a dead one recognise it is gone.
    pub(crate) generation: u64,
    pub(crate) alive: bool,
    pub(crate) pid: u32,
    /// Calls sent and not answered, oldest first, with their ids.
    pub(crate) in_flight: VecDeque<(u64, JobRef)>,
    /// How many calls may be in flight.
    pub(crate) window: usize,
    /// Moving average of the calls' run time in the worker, in nanoseconds.
    pub(crate) average_ns: f64,
    /// The worker accepted the handshake. Calls are claimed and sent only then, so a worker that
    /// never answers, or refuses, holds no call.
    pub(crate) ready: bool,
    /// Since when the oldest call in flight has been running (the worker runs them in order: from
    /// its sending to an idle worker, or from the answer to the call before it).
    pub(crate) head_since: Option<Instant>,
    /// The pool killed this worker because its call overran the timeout.
    pub(crate) timed_out: bool,
    /// Its reader is about to reap it: its pid may be reused from then on, so nothing signals it.
    pub(crate) reaping: bool,
    /// Calls sent to this worker (for `max_tasks_per_child`).
    pub(crate) sent: usize,
    /// It served its `max_tasks_per_child` and was told to exit.
    pub(crate) retiring: bool,
}

/// Everything behind the pool's lock.
pub(crate) struct State {
    pub(crate) queue: VecDeque<Queued>,
    pub(crate) links: Vec<LinkState>,
    pub(crate) submitted: usize,
    pub(crate) finished: usize,
    pub(crate) shutdown: bool,
    pub(crate) next_call_id: u64,
    /// Worker starts that failed in a row, and the last reason.
    pub(crate) start_failures: usize,
    pub(crate) start_error: Option<String>,
    pub(crate) panicked: Vec<JobRef>,
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// The timeout watcher runs (started with the first worker when there is a timeout).
    pub(crate) watching: bool,
}

/// See [`Shared::next_step`].
pub(crate) struct NextStep {
    start: Option<(usize, u64)>,
    stranded: Vec<Queued>,
    why: String,
}

/// State shared by the block and the link threads.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) max_workers: usize,
    /// The per-call timeout, if any (enforced by `process_link::watch_timeouts`).
    pub(crate) timeout: Option<Duration>,
    /// `RLIMIT_DATA` of each worker, if limited (see `memory_limit`).
    pub(crate) memory_limit: Option<u64>,
    /// Calls a worker serves before it is replaced, if limited.
    pub(crate) max_tasks_per_child: Option<usize>,
    /// Run by each worker before it answers the handshake.
    pub(crate) initializer: Option<Arc<crate::options::ProcessInitializer>>,
    pub(crate) executable: Result<(PathBuf, [u64; 5]), String>,
    pub(crate) state: Mutex<State>,
    /// Signalled on every change a waiter may care about: work queued, calls answered, shutdown.
    pub(crate) changed: Condvar,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts another worker if queued calls outnumber idle workers. Called with the lock held;
    /// the start itself (fork and exec) happens in `process_link::start`, after the lock is dropped.
    pub(crate) fn slot_to_start(&self, state: &mut State) -> Option<(usize, u64)> {
        if state.start_failures >= START_ATTEMPTS {
            return None;
        }
        let live = state.links.iter().filter(|l| l.alive).count();
        let idle = state
            .links
            .iter()
            .filter(|l| l.alive && !l.retiring && l.in_flight.is_empty())
            .count();
        if live >= self.max_workers || state.queue.len() <= idle {
            return None;
        }
        let slot = match state.links.iter().position(|l| !l.alive) {
            Some(slot) => slot,
            None => {
                state.links.push(LinkState {
                    generation: 0,
                    alive: false,
                    pid: 0,
                    in_flight: VecDeque::new(),
                    window: 1,
                    average_ns: 0.0,
                    ready: false,
                    head_since: None,
                    timed_out: false,
                    reaping: false,
                    sent: 0,
                    retiring: false,
                });
                state.links.len() - 1
            }
        };
        let link = &mut state.links[slot];
        link.generation += 1;
        link.alive = true;
        link.pid = 0;
        link.window = 1;
        link.average_ns = 0.0;
        link.ready = false;
        link.head_since = None;
        link.timed_out = false;
        link.reaping = false;
        link.sent = 0;
        link.retiring = false;
        Some((slot, link.generation))
    }

    /// Records a failed worker start.
    pub(crate) fn start_failed(&self, state: &mut State, why: String) {
        state.start_failures += 1;
        state.start_error = Some(why);
    }

    /// What to do after any change to the workers or the queue, decided under the lock and done
    /// after it is released with [`Shared::carry_out`]: start a worker if queued calls outnumber idle
    /// workers; and when starts keep failing and no worker is left, fail every queued call with the
    /// reason rather than let it wait forever.
    pub(crate) fn next_step(&self, state: &mut State) -> NextStep {
        let start = self.slot_to_start(state);
        let stranded = if start.is_none()
            && state.start_failures >= START_ATTEMPTS
            && !state.links.iter().any(|l| l.alive)
        {
            state.queue.drain(..).collect()
        } else {
            Vec::new()
        };
        NextStep {
            start,
            stranded,
            why: state.start_error.clone().unwrap_or_default(),
        }
    }

    /// Does what [`Shared::next_step`] decided; call without the lock.
    pub(crate) fn carry_out(self: &Arc<Self>, step: NextStep) {
        self.changed.notify_all();
        if !step.stranded.is_empty() {
            self.fail_unsent(step.stranded, &TaskError::WorkerStart(step.why));
        }
        if let Some((slot, generation)) = step.start {
            process_link::start(self, slot, generation);
        }
    }

    /// Resolves calls that were never sent (their pool cannot start workers) with `error`.
    pub(crate) fn fail_unsent(&self, jobs: Vec<Queued>, error: &TaskError) {
        let mut count = 0;
        let mut panicked = Vec::new();
        for Queued { job, claimed } in jobs {
            count += 1;
            if !claimed && !job.job().try_dispatch() {
                continue; // cancelled: dropping the reference is all there is to do
            }
            // SAFETY: claimed just above, and `job` holds the queue reference.
            if let Some(job) = unsafe { job.resolve(Outcome::Failed(error.clone())) } {
                panicked.push(job);
            }
        }
        let mut state = self.lock();
        state.finished += count;
        state.panicked.extend(panicked);
        drop(state);
        self.changed.notify_all();
    }
}

/// The pool of one `pool!(Process => { ... })` block.
#[doc(hidden)]
pub struct ProcessScope {
    shared: Arc<Shared>,
    cancel_on_early_exit: bool,
    joined: std::sync::atomic::AtomicBool,
}

impl ProcessScope {
    /// Opens a pool; no worker starts until the first `submit`.
    ///
    /// # Panics
    /// In a process that was started as a worker but did not become one (the worker entry did not
    /// run): starting workers from there would start workers without end.
    pub fn new(options: PoolOptions) -> Self {
        assert!(
            std::env::var_os(WORKER_ENV).is_none(),
            "pool!(Process): this process was started as a worker but did not become one \
             (the executor runtime's start-up function did not run); refusing to start more workers"
        );
        let id = NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed);
        let cancel_on_early_exit = options.cancels_on_early_exit();
        let max_workers = options.max_workers.unwrap_or_else(crate::options::cpus);
        let initializer_error = options
            .process_initializer
            .as_ref()
            .and_then(|init| init.arguments.as_ref().err().cloned());
        let executable = std::env::current_exe()
            .map(on_disk)
            .map_err(|e| format!("cannot find the current executable: {e}"))
            .and_then(|path| {
                executable_identity()
                    .map(|identity| (path, identity))
                    .map_err(|e| format!("cannot identify the current executable: {e}"))
            })
            .and_then(|found| match initializer_error {
                // Every worker would refuse: fail the calls at once instead.
                Some(why) => Err(format!("the pool's initializer cannot be sent: {why}")),
                None => Ok(found),
            });
        ProcessScope {
            shared: Arc::new(Shared {
                id,
                max_workers,
                timeout: options.timeout,
                max_tasks_per_child: options.max_tasks_per_child,
                memory_limit: options.memory_limit,
                initializer: options.process_initializer.clone(),
                executable,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    links: Vec::new(),
                    submitted: 0,
                    finished: 0,
                    shutdown: false,
                    next_call_id: 0,
                    start_failures: 0,
                    start_error: None,
                    panicked: Vec::new(),
                    threads: Vec::new(),
                    watching: false,
                }),
                changed: Condvar::new(),
            }),
            joined: std::sync::atomic::AtomicBool::new(false),
            cancel_on_early_exit,
        }
    }

    /// The guard that joins this pool when the block ends.
    pub fn join_guard(&self) -> JoinGuard<'_, Self> {
        JoinGuard::new(self)
    }

    /// Queues a call; `submit(f, args...)` in a `pool!(Process => ...)` block becomes this.
    pub fn submit<R>(&self, call: RemoteCall<R>) -> Future<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let (job, future, encode_error) = new_job(call);
        let mut state = self.shared.lock();
        state.submitted += 1;
        // A call that cannot be sent fails at once, without a worker.
        let unsendable = match (encode_error, &self.shared.executable) {
            (Some(why), _) => Some(TaskError::Transport(why)),
            (None, Err(why)) => Some(TaskError::WorkerStart(why.clone())),
            (None, Ok(_)) => None,
        };
        if let Some(error) = unsendable {
            drop(state);
            let job = Queued {
                job,
                claimed: false,
            };
            self.shared.fail_unsent(vec![job], &error);
            return future;
        }
        state.queue.push_back(Queued {
            job,
            claimed: false,
        });
        // Only a writer whose worker has room in its window can send the call now; the others
        // are woken when an answer makes room. Waking them all on every submit costs more than the
        // call itself when calls are tiny.
        let room = state
            .links
            .iter()
            .any(|l| l.alive && l.ready && !l.retiring && l.in_flight.len() < l.window);
        let step = self.shared.next_step(&mut state);
        drop(state);
        if room || step.start.is_some() || !step.stranded.is_empty() {
            self.shared.carry_out(step);
        }
        future
    }

    /// `map(f, items[, chunksize])` in a block becomes this: `f` on each item, results in input
    /// order, items sent in chunks of `chunksize` (default 1), at most `AHEAD_PER_WORKER` chunks
    /// per worker in flight.
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
        let ahead = crate::map::AHEAD_PER_WORKER * self.shared.max_workers;
        crate::map::ProcessMap::new(self, items.into_iter(), f, chunksize, ahead)
    }
}

impl crate::map::RemotePool for ProcessScope {
    fn submit_remote<R>(&self, call: RemoteCall<R>) -> Future<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        self.submit(call)
    }
}

impl Pool for ProcessScope {
    fn cancels_on_early_exit(&self) -> bool {
        self.cancel_on_early_exit
    }

    /// Cancels the calls not yet sent to a worker (the block was left early).
    fn cancel_pending(&self) {
        let mut state = self.shared.lock();
        let queued = std::mem::take(&mut state.queue);
        for entry in queued {
            if !entry.claimed && entry.job.job().cancel() {
                state.finished += 1;
            } else {
                state.queue.push_back(entry);
            }
        }
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Waits for every call, then stops the workers and reaps them. Returns the messages of panics
    /// whose futures were dropped unread.
    fn join(&self) -> Vec<String> {
        if self.joined.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        let shared = &self.shared;
        let mut state = shared.lock();
        while state.finished < state.submitted {
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.shutdown = true;
        drop(state);
        shared.changed.notify_all();
        loop {
            let threads = std::mem::take(&mut shared.lock().threads);
            if threads.is_empty() {
                break;
            }
            for handle in threads {
                if let Err(payload) = handle.join() {
                    std::panic::resume_unwind(payload);
                }
            }
        }
        let panicked = std::mem::take(&mut shared.lock().panicked);
        panicked
            .iter()
            // SAFETY: every call is finished and each `JobRef` holds the queue reference.
            .filter_map(|job| unsafe { job.job().unread_panic() })
            .collect()
    }
}

/// The path of the executable on disk. When the file was replaced after the program started, Linux
/// names the running one `path (deleted)`; the workers start from `path`, the replacement, and the
/// handshake then tells the two apart.
pub(crate) fn on_disk(path: PathBuf) -> PathBuf {
    match path.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
        Some(original) => PathBuf::from(original),
        None => path,
    }
}

/// The environment entry that makes a child a worker: its socket's descriptor.
pub(crate) fn worker_env(fd: i32) -> (&'static str, OsString) {
    (WORKER_ENV, OsString::from(fd.to_string()))
}
