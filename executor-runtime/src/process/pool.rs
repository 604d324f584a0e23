//! The Process backend: the pool behind one `pool!(Process => { ... })` block, on the parent's side.
//!
//! Each block owns its workers, started lazily (one more whenever queued calls outnumber idle
//! workers, up to `max_workers`, by default the number of CPUs) by re-executing the current binary
//! (see `process::worker` for how the child becomes a worker before `main`).
//!
//! Calls wait in the block's queue (`crate::remote::queue`). Each worker has a *link*
//! (`process::link`): a writer thread that sends it calls and a reader thread that receives
//! outcomes, in order. A link keeps up to a *window* of calls in flight, so that tiny calls are
//! pipelined rather than paying a round trip each; the window starts at 1 and adapts to the
//! measured run time of calls (about 1 ms of work in flight, `crate::remote::window`), so long
//! calls are never stuck behind each other on one worker while another is idle.
//!
//! A worker that dies (crash, abort, signal, `exit`) is noticed by its reader at once (the socket
//! closes). The call it was running resolves with [`TaskError::WorkerDied`], saying how it died;
//! the calls queued behind it go back to the front of the queue, and a replacement starts.
//!
//! Arguments are encoded when `submit` runs, so a call borrows nothing once submitted and the pool
//! needs no lifetime tricks: opening a `ProcessScope` is safe.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::block::options::{cpus, CallOptions, PoolOptions, ProcessInitializer};
use crate::process::link;
use crate::process::worker::WORKER_ENV;
use crate::remote::executable::executable_identity;
use crate::remote::queue::{CallQueue, QueueState, Queued, RemoteJobRef};
use crate::remote::scope::{RemoteBackend, RemoteScope};
use crate::remote::window::Window;
use crate::task::error::TaskError;

/// The pool of one `pool!(Process => { ... })` block.
#[doc(hidden)]
pub type ProcessScope = RemoteScope<ProcessBackend>;

/// The calls of one Process block and its workers, shared by the block and the link threads.
pub(crate) type ProcessQueue = CallQueue<ProcessBackend>;

/// Pool ids, for log lines.
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// After this many worker starts in a row fail (or are refused), queued calls fail instead of waiting.
const START_ATTEMPTS: usize = 3;

/// How long leaving a block waits for a worker to exit after its last answer and the end of its
/// input, before it kills it. An idle worker that reads the end of its input only flushes its
/// standard output and runs the process's exit handlers, which takes microseconds to a few
/// milliseconds; 2 s covers that on a loaded machine by a factor of hundreds, while a worker that
/// cannot exit (a leftover thread holds `stdout().lock()`, an `atexit` handler that never returns,
/// a worker stopped by `SIGSTOP`) delays the block by no more than that.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(2);

/// One worker slot, as the pool's state sees it.
pub(crate) struct LinkState {
    /// Bumped when the slot gets a new worker, so the threads of a dead one recognise it is gone.
    pub(crate) generation: u64,
    pub(crate) alive: bool,
    pub(crate) pid: u32,
    /// Calls sent and not answered, oldest first, with their ids.
    pub(crate) in_flight: VecDeque<(u64, RemoteJobRef)>,
    /// How many calls may be in flight.
    pub(crate) window: Window,
    /// The worker accepted the handshake. Calls are claimed and sent only then, so a worker that
    /// never answers, or refuses, holds no call.
    pub(crate) ready: bool,
    /// Since when the oldest call in flight has been running, for `timeout`: from when its last
    /// byte was written to an idle worker, or from the answer to the call before it (the worker
    /// runs them in order); `None` while it is still being written or its outcome is being read.
    pub(crate) head_since: Option<Instant>,
    /// Calls with a smaller id have been written out whole (their clock may start).
    pub(crate) written_below: u64,
    /// The head call's outcome is arriving (its header was read): its clock has stopped.
    pub(crate) receiving: bool,
    /// The pool killed this worker because its call overran the timeout.
    pub(crate) timed_out: bool,
    /// Its reader is about to reap it: its pid may be reused from then on, so nothing signals it.
    pub(crate) reaping: bool,
    /// Calls sent to this worker (for `max_tasks_per_child`).
    pub(crate) sent: usize,
    /// It served its `max_tasks_per_child` and was told to exit.
    pub(crate) retiring: bool,
    /// Leaving the block killed it: it had not exited [`EXIT_GRACE`] after the end of its input.
    pub(crate) overstayed: bool,
    /// Ids of calls in flight that `Future::stop` stopped: each resolves with
    /// `TaskError::Stopped`, whatever its worker answers. The worker is killed once one of them is
    /// the call it runs (the head of `in_flight`).
    pub(crate) stop_ids: Vec<u64>,
    /// The pool killed this worker to stop a call: a call other than a stopped one that it was
    /// running when it died (the stopped one's answer had already been sent) is innocent, and
    /// goes back to the queue.
    pub(crate) stop_killed: bool,
    /// The parent's end of the worker's socket (its reader's), or -1 before the reader has it.
    /// Open while the link is alive and not `reaping`.
    pub(crate) channel: i32,
    /// Why the writer found the worker's side of the shared-memory ring impossible (a count the
    /// ring's size rules out): the reader ends the link as a breach of the protocol.
    pub(crate) writer_found_breach: Option<String>,
}

impl LinkState {
    /// Whether the worker may be given calls: alive, past the handshake, and not retiring.
    pub(crate) fn serving(&self) -> bool {
        self.alive && self.ready && !self.retiring
    }

    /// Kills the worker if the call it runs (the head of `in_flight`) was stopped. Called with the
    /// pool's lock held.
    pub(crate) fn kill_if_head_stopped(&mut self, pool: u64, slot: usize) {
        let head_stopped = self
            .in_flight
            .front()
            .is_some_and(|(id, _)| self.stop_ids.contains(id));
        if !head_stopped || self.stop_killed || self.reaping || !self.alive || self.pid == 0 {
            return;
        }
        if self.channel >= 0 && answer_waiting(self.channel) {
            // The worker has finished the call and its answer is on its way: the reader resolves
            // it with `Stopped` when it arrives, and the worker, which may have started the next
            // call, lives on.
            return;
        }
        self.stop_killed = true;
        log::debug!(
            "executor: process pool {pool} kills worker {slot} (pid {}) to stop its call",
            self.pid
        );
        // SAFETY: `kill` only sends a signal. The pid is still our unreaped child's: its reader
        // marks the link `reaping` under the pool's lock, which the caller holds, before it reaps;
        // an exited but unreaped child keeps its pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// Whether bytes from the worker wait unread in the socket `fd`.
fn answer_waiting(fd: i32) -> bool {
    let mut waiting: libc::c_int = 0;
    // SAFETY: `FIONREAD` writes one `c_int` through the pointer, which points at a live `c_int`;
    // `fd` is open (the caller's contract: the link is alive and not being reaped, under the lock).
    let done = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut waiting as *mut libc::c_int) };
    done == 0 && waiting > 0
}

/// The Process backend's side of a block: its options and the executable its workers run.
#[doc(hidden)]
pub struct ProcessBackend {
    pub(crate) id: u64,
    pub(crate) max_workers: usize,
    /// The per-call timeout, if any (enforced by `link::watch_timeouts`).
    pub(crate) timeout: Option<Duration>,
    /// Some call may have a timeout (the block's, or one of its own): calls are timed, and the
    /// watcher runs.
    pub(crate) timed: AtomicBool,
    /// `retries = n`: how many times a call whose worker died or that timed out runs again.
    pub(crate) retries: Option<u32>,
    /// `RLIMIT_DATA` of each worker, if limited (see `memory_limit`).
    pub(crate) memory_limit: Option<u64>,
    /// Calls a worker serves before it is replaced, if limited.
    pub(crate) max_tasks_per_child: Option<usize>,
    /// Run by each worker before it answers the handshake.
    pub(crate) initializer: Option<Arc<ProcessInitializer>>,
    /// The executable's path (the workers' `argv[0]`: they run `/proc/self/exe`, the parent's own
    /// image, whatever the path now names) and identity (compared in the handshake).
    pub(crate) executable: Result<(PathBuf, [u64; 5]), String>,
}

/// The workers of a Process block, behind the block's lock.
#[doc(hidden)]
pub struct ProcessState {
    pub(crate) links: Vec<LinkState>,
    pub(crate) shutdown: bool,
    pub(crate) next_call_id: u64,
    /// Worker starts that failed in a row, and the last reason.
    pub(crate) start_failures: usize,
    pub(crate) start_error: Option<String>,
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// The timeout watcher runs (started with the first worker when there is a timeout).
    pub(crate) watching: bool,
}

/// What to do after a change to the workers or the queue: see `ProcessQueue::next_step`.
#[doc(hidden)]
pub struct NextStep {
    start: Option<(usize, u64)>,
    stranded: Vec<Queued>,
    why: String,
}

impl RemoteBackend for ProcessBackend {
    type State = ProcessState;
    type Wake = NextStep;

    /// In a process whose environment has `__EXECUTOR_WORKER_FD` (set for workers only) but that
    /// is not a worker, every call fails with `TaskError::WorkerStart` naming the variable:
    /// starting workers from there could start workers without end.
    fn open(options: &PoolOptions) -> (Self, ProcessState, Option<String>) {
        let initializer_error = options
            .process_initializer
            .as_ref()
            .and_then(|init| init.arguments.as_ref().err().cloned());
        let executable = stray_worker_variable()
            .map_or(Ok(()), Err)
            .and_then(|()| {
                std::env::current_exe()
                    .map_err(|e| format!("cannot find the current executable: {e}"))
            })
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
        let broken = executable.as_ref().err().cloned();
        let backend = ProcessBackend {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            max_workers: options.max_workers.unwrap_or_else(cpus),
            timeout: options.timeout,
            timed: AtomicBool::new(options.timeout.is_some()),
            retries: options.retries,
            max_tasks_per_child: options.max_tasks_per_child,
            memory_limit: options.memory_limit,
            initializer: options.process_initializer.clone(),
            executable,
        };
        let state = ProcessState {
            links: Vec::new(),
            shutdown: false,
            next_call_id: 0,
            start_failures: 0,
            start_error: None,
            threads: Vec::new(),
            watching: false,
        };
        (backend, state, broken)
    }

    fn opened(_: &Arc<ProcessQueue>) {
        // No worker starts until the first `submit`.
    }

    fn queued(queue: &ProcessQueue, state: &mut QueueState<ProcessState>) -> Option<NextStep> {
        // Only a writer whose worker has room in its window can send the call now; the others
        // are woken when an answer makes room. Waking them all on every submit costs more than the
        // call itself when calls are tiny.
        let room = state
            .backend
            .links
            .iter()
            .any(|l| l.serving() && l.in_flight.len() < l.window.calls());
        let step = queue.next_step(state);
        (room || step.start.is_some() || !step.stranded.is_empty()).then_some(step)
    }

    fn wake(queue: &Arc<ProcessQueue>, step: NextStep) {
        queue.carry_out(step);
    }

    /// Finds the call among those sent to a worker: it will resolve with `TaskError::Stopped`,
    /// and its worker is killed when (or as soon as) it is the call the worker runs. Its reader
    /// then requeues the calls sent behind it and the pool starts a replacement.
    fn stop(queue: &ProcessQueue, state: &mut QueueState<ProcessState>, job: *const ()) -> bool {
        for (slot, link) in state.backend.links.iter_mut().enumerate() {
            let found = link
                .in_flight
                .iter()
                .find(|(_, sent)| sent.address() == job)
                .map(|&(id, _)| id);
            let Some(id) = found else {
                continue;
            };
            if !link.stop_ids.contains(&id) {
                link.stop_ids.push(id);
            }
            link.kill_if_head_stopped(queue.backend.id, slot);
            return true;
        }
        false
    }

    fn call_options(queue: &ProcessQueue, options: &CallOptions) {
        if options.timeout.is_some() {
            // Before the call is queued: the writer that sends it times it.
            queue.backend.timed.store(true, Ordering::Release);
        }
    }

    fn cancelled(_: &ProcessQueue, _: usize) {}

    fn workers(queue: &ProcessQueue) -> usize {
        queue.backend.max_workers
    }

    /// Stops the workers (an idle one exits at the end of its input) and joins the link threads,
    /// which reap them. A worker still alive [`EXIT_GRACE`] later is killed, so leaving a block
    /// never waits on a worker that does not exit.
    fn close(queue: &Arc<ProcessQueue>) {
        queue.lock().backend.shutdown = true;
        queue.changed.notify_all();
        queue.stop_overstaying_workers(Instant::now() + EXIT_GRACE);
        loop {
            let threads = std::mem::take(&mut queue.lock().backend.threads);
            if threads.is_empty() {
                break;
            }
            for handle in threads {
                if let Err(payload) = handle.join() {
                    std::panic::resume_unwind(payload);
                }
            }
        }
    }
}

impl ProcessBackend {
    /// Whether calls are timed: the block has a `timeout`, or a call had one of its own.
    pub(crate) fn timed(&self) -> bool {
        self.timed.load(Ordering::Acquire)
    }

    /// The timeout of a call with these options: its own, or the block's.
    pub(crate) fn timeout_of(&self, options: &CallOptions) -> Option<Duration> {
        options.timeout.or(self.timeout)
    }

    /// How many times a call with these options may be retried: its own, or the block's.
    pub(crate) fn retries_of(&self, options: &CallOptions) -> u32 {
        options.retries.or(self.retries).unwrap_or(0)
    }
}

impl ProcessQueue {
    /// Waits until every worker has exited, and kills those still alive at `deadline` (called when
    /// every call is finished and the writers end the workers' input). A killed worker's reader
    /// then sees its channel close, reaps it and logs it.
    fn stop_overstaying_workers(&self, deadline: Instant) {
        /// How often to look again after the deadline, for a worker whose start was under way.
        const TICK: Duration = Duration::from_millis(50);
        let mut state = self.lock();
        loop {
            if !state.backend.links.iter().any(|l| l.alive) {
                return;
            }
            let now = Instant::now();
            let wait = if now < deadline {
                deadline - now
            } else {
                for (slot, link) in state.backend.links.iter_mut().enumerate() {
                    if !link.alive || link.reaping || link.overstayed || link.pid == 0 {
                        continue;
                    }
                    link.overstayed = true;
                    log::warn!(
                        "executor: process pool {} kills worker {slot} (pid {}): it did not exit \
                         within {EXIT_GRACE:?} of the end of its input",
                        self.backend.id,
                        link.pid
                    );
                    // SAFETY: `kill` only sends a signal. The pid is still our unreaped child's:
                    // its reader marks the link `reaping` under this lock, which we hold, before it
                    // reaps; an exited but unreaped child keeps its pid.
                    unsafe { libc::kill(link.pid as libc::pid_t, libc::SIGKILL) };
                }
                TICK
            };
            state = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Starts another worker if queued calls outnumber idle workers. Called with the lock held;
    /// the start itself (fork and exec) happens in `link::start`, after the lock is dropped.
    pub(crate) fn slot_to_start(
        &self,
        state: &mut QueueState<ProcessState>,
    ) -> Option<(usize, u64)> {
        let queued = state.queue.len();
        let state = &mut state.backend;
        if state.start_failures >= START_ATTEMPTS {
            return None;
        }
        let live = state.links.iter().filter(|l| l.alive).count();
        let idle = state
            .links
            .iter()
            .filter(|l| l.alive && !l.retiring && l.in_flight.is_empty())
            .count();
        if live >= self.backend.max_workers || queued <= idle {
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
                    window: Window::new(),
                    ready: false,
                    head_since: None,
                    written_below: 0,
                    receiving: false,
                    timed_out: false,
                    reaping: false,
                    sent: 0,
                    retiring: false,
                    overstayed: false,
                    stop_ids: Vec::new(),
                    stop_killed: false,
                    channel: -1,
                    writer_found_breach: None,
                });
                state.links.len() - 1
            }
        };
        let link = &mut state.links[slot];
        link.generation += 1;
        link.alive = true;
        link.pid = 0;
        link.window = Window::new();
        link.ready = false;
        link.head_since = None;
        link.written_below = 0;
        link.receiving = false;
        link.timed_out = false;
        link.reaping = false;
        link.sent = 0;
        link.retiring = false;
        link.overstayed = false;
        link.stop_ids.clear();
        link.stop_killed = false;
        link.channel = -1;
        link.writer_found_breach = None;
        Some((slot, link.generation))
    }

    /// Records a failed worker start.
    pub(crate) fn start_failed(&self, state: &mut QueueState<ProcessState>, why: String) {
        state.backend.start_failures += 1;
        state.backend.start_error = Some(why);
    }

    /// What to do after any change to the workers or the queue, decided under the lock and done
    /// after it is released with [`ProcessQueue::carry_out`]: start a worker if queued calls outnumber idle
    /// workers; and when starts keep failing and no worker is left, fail every queued call with the
    /// reason rather than let it wait forever.
    pub(crate) fn next_step(&self, state: &mut QueueState<ProcessState>) -> NextStep {
        let start = self.slot_to_start(state);
        let stranded = if start.is_none()
            && state.backend.start_failures >= START_ATTEMPTS
            && !state.backend.links.iter().any(|l| l.alive)
        {
            state.queue.drain(..).collect()
        } else {
            Vec::new()
        };
        NextStep {
            start,
            stranded,
            why: state.backend.start_error.clone().unwrap_or_default(),
        }
    }

    /// Does what [`ProcessQueue::next_step`] decided; call without the lock.
    pub(crate) fn carry_out(self: &Arc<Self>, step: NextStep) {
        self.changed.notify_all();
        if !step.stranded.is_empty() {
            self.fail(step.stranded, &TaskError::WorkerStart(step.why));
        }
        if let Some((slot, generation)) = step.start {
            link::start(self, slot, generation);
        }
    }
}

/// Why this process must not start workers, if `__EXECUTOR_WORKER_FD` is in its environment: the
/// pool sets it only for its workers, which remove it before `main`, so here it was inherited by
/// mistake (or the worker entry did not run), and workers started from here would inherit it too.
fn stray_worker_variable() -> Option<String> {
    let value = std::env::var_os(WORKER_ENV)?;
    Some(format!(
        "the environment variable {WORKER_ENV} is set (to {value:?}), but this process is not a \
         Process worker (the descriptor it names is not a socket from a pool); the pool sets it \
         only for its workers, so it refuses to start workers from here. Unset {WORKER_ENV} \
         before starting the program (for example `env -u {WORKER_ENV} ...`)"
    ))
}
