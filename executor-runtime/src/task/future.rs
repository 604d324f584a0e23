//! The handle to one submitted call.

use std::fmt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::task::completion::{Completion, CANCELLED, DONE, FUTURE_REF, PENDING, RUNNING};
use crate::task::error::TaskError;
use crate::task::memory;

/// What a [`Future`] needs from the task behind it, whichever backend runs it.
///
/// A task lives in one allocation of task memory (`memory::allocate`) shared by two owners, the
/// queue and the future, counted in its [`Completion`]; the last to let go frees it
/// (`memory::free`) through its own `dyn` pointer.
pub(crate) trait Task<R>: Send + Sync {
    fn completion(&self) -> &Completion<R>;

    /// Runs the task on the calling thread if it has not started and this thread may run it.
    /// A worker that waits on a task queued in its own pool runs it rather than block: otherwise
    /// a full pool whose tasks wait on queued tasks would deadlock.
    fn run_here_if_pending(&self) -> bool {
        false
    }

    /// Asks the backend to stop the task, which has started (see [`Future::stop`]). Returns
    /// whether the task will resolve with [`TaskError::Stopped`] (a backend that kills its
    /// worker); a backend that cannot stop a running call by force returns `false`, after
    /// raising the task's cooperative flag if it has one.
    fn stop_started(&self) -> bool {
        false
    }

    /// How many times the started task was run, for a backend that retries (see
    /// [`Future::attempts`]); `None` for one that runs a task once.
    fn attempts(&self) -> Option<u32> {
        None
    }
}

/// The pending result of one `submit(f, args...)` call: Python's `concurrent.futures.Future`.
///
/// A `Future<R>` is created by `submit` inside a [`pool!`](../executor/macro.pool.html) block.
/// [`result`](Future::result) blocks until the call has finished and gives its value, or a
/// [`TaskError`] saying why there is none. The task runs whether or not anyone keeps its future:
/// dropping a `Future` neither cancels nor detaches the task, and the `pool!` block still waits for it.
///
/// ```
/// use concurrent_futures::pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let squares = pool!(Thread => {
///     let futures: Vec<_> = (1..=4).map(|x| submit(square, x)).collect();
///     futures.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>()
/// });
/// assert_eq!(squares, [1, 4, 9, 16]);
/// ```
#[must_use = "a future does nothing by itself: call `result()` to get the task's value"]
pub struct Future<R> {
    /// Owns the `FUTURE_REF` reference to a task in task memory.
    task: NonNull<dyn Task<R>>,
}

// SAFETY: a future only reads the task's completion, waits on it, cancels it, or (on a worker of the
// task's own pool) runs it; the `Task` trait is `Send + Sync`, and the value moves to the future's
// owner, so sending or sharing a future is sound when `R: Send`.
unsafe impl<R: Send> Send for Future<R> {}
// SAFETY: as above; no `&self` method hands out a reference to the value.
unsafe impl<R: Send> Sync for Future<R> {}

impl<R> Future<R> {
    /// Wraps a task, made by `memory::allocate`, with both references set.
    ///
    /// # Safety
    /// `task` must come from `memory::allocate` of a task whose completion holds `FUTURE_REF`, which
    /// this future takes over; it must stay valid for as long as any `'a` it borrows (the pool's
    /// join guarantees this before the borrowed data goes away).
    pub(crate) unsafe fn from_raw(task: NonNull<dyn Task<R>>) -> Self {
        Future { task }
    }

    fn task(&self) -> &dyn Task<R> {
        // SAFETY: this future holds `FUTURE_REF`, so the allocation lives until `drop` releases it.
        unsafe { self.task.as_ref() }
    }

    pub(crate) fn completion(&self) -> &Completion<R> {
        self.task().completion()
    }

    /// Blocks until the task has finished, then gives its value, or why there is none.
    ///
    /// ```
    /// use concurrent_futures::{pool, TaskError};
    ///
    /// let (good, bad) = pool!(Thread => {
    ///     let good = submit(|a: u32, b: u32| a + b, 2, 3);
    ///     let bad = submit(|| -> u32 { panic!("boom") });
    ///     (good.result(), bad.result())
    /// });
    /// assert_eq!(good, Ok(5));
    /// assert_eq!(bad.unwrap_err().panic().unwrap().message(), "boom");
    /// ```
    pub fn result(self) -> Result<R, TaskError> {
        self.wait_until(None);
        // SAFETY: `wait_until(None)` returns only once the task is finished, and `self` is the
        // only owner of the read side.
        unsafe { self.completion().take_outcome() }
    }

    /// Waits at most `timeout` for the task. On time-out the future comes back, still usable:
    /// `Err(future)`. Otherwise `Ok` holds what [`result`](Future::result) would give.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures::pool;
    ///
    /// pool!(Thread => {
    ///     let slow = submit(|| std::thread::sleep(Duration::from_millis(200)));
    ///     let slow = match slow.result_timeout(Duration::from_millis(1)) {
    ///         Ok(_) => unreachable!("200 ms of sleep cannot finish in 1 ms"),
    ///         Err(still_running) => still_running,
    ///     };
    ///     assert_eq!(slow.result(), Ok(()));
    /// });
    /// ```
    pub fn result_timeout(self, timeout: Duration) -> Result<Result<R, TaskError>, Future<R>> {
        if self.wait_timeout(timeout) {
            Ok(self.result())
        } else {
            Err(self)
        }
    }

    /// Waits at most `timeout` for the task to finish; `true` if it has. The future stays usable
    /// either way.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures::pool;
    ///
    /// pool!(Thread => {
    ///     let quick = submit(|| 1);
    ///     assert!(quick.wait_timeout(Duration::from_secs(10)));
    ///     assert!(quick.done());
    /// });
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Some(Instant::now() + timeout))
    }

    /// `true` once the task has finished: it ran to completion (a value or a panic) or was cancelled.
    ///
    /// ```
    /// use concurrent_futures::pool;
    ///
    /// pool!(Thread => {
    ///     let f = submit(|| 2 + 2);
    ///     f.wait_timeout(std::time::Duration::from_secs(10));
    ///     assert!(f.done());
    /// });
    /// ```
    pub fn done(&self) -> bool {
        self.completion().is_finished()
    }

    /// `true` while the task is running: started and not yet finished.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use concurrent_futures::pool;
    ///
    /// let (started_tx, started_rx) = mpsc::channel();
    /// let (release_tx, release_rx) = mpsc::channel::<()>();
    /// pool!(Thread => {
    ///     let f = submit(move || { started_tx.send(()).unwrap(); release_rx.recv().unwrap() });
    ///     started_rx.recv().unwrap();
    ///     assert!(f.running());
    ///     release_tx.send(()).unwrap();
    ///     f.result().unwrap();
    /// });
    /// ```
    pub fn running(&self) -> bool {
        self.completion().state() == RUNNING
    }

    /// Cancels the task if it has not started yet, and returns whether it is now cancelled. A task
    /// that is running or finished cannot be cancelled (`false`); cancelling a cancelled task
    /// returns `true` again. A cancelled task never runs, and its `result()` is
    /// `Err(TaskError::Cancelled)`.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use concurrent_futures::{pool, TaskError};
    ///
    /// let (release_tx, release_rx) = mpsc::channel::<()>();
    /// pool!(Thread(max_workers = 1) => {
    ///     let blocker = submit(move || release_rx.recv().unwrap());
    ///     let queued = submit(|| "never runs");
    ///     assert!(queued.cancel());
    ///     assert!(queued.cancelled());
    ///     release_tx.send(()).unwrap();
    ///     assert_eq!(queued.result(), Err(TaskError::Cancelled));
    ///     blocker.result().unwrap();
    /// });
    /// ```
    pub fn cancel(&self) -> bool {
        self.completion().try_cancel() || self.cancelled()
    }

    /// Stops the task: the stronger [`cancel`](Future::cancel). A task that has not started is
    /// cancelled, as `cancel` does; a running one is stopped where the backend can stop it.
    /// Returns `true` if the task was cancelled before it ran or is stopped (its `result()` is
    /// then `Err(TaskError::Cancelled)` or `Err(TaskError::Stopped)`), `false` if it ran, runs on,
    /// or finished otherwise. Calling it again gives the same answer.
    ///
    /// What happens to a running task depends on the backend:
    /// - **Process**: its worker process is killed (`SIGKILL`, as for a `timeout`) and a
    ///   replacement starts; the task resolves with [`TaskError::Stopped`], and the calls that
    ///   were sent to that worker behind it go back to the queue and run on another, so every
    ///   other call is unaffected. Like pebble's `future.cancel()`, unlike Python's
    ///   `concurrent.futures` (and loky), whose `cancel()` cannot reach a running task.
    /// - **Thread** and **Auto**: a thread cannot be killed on its own. `stop` raises the task's
    ///   flag, which the task reads with [`stop_requested`](crate::stop_requested), and returns
    ///   `false`: the task decides when to return, and its value is its result.
    /// - **Mpi**: ending one rank ends the whole MPI job, so a running call cannot be stopped:
    ///   `stop` cancels a queued call and returns `false` for a running one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures::{pool, TaskError};
    ///
    /// fn spin() -> u32 {
    ///     loop {
    ///         std::thread::sleep(Duration::from_millis(10));
    ///     }
    /// }
    ///
    /// fn double(x: u32) -> u32 {
    ///     2 * x
    /// }
    ///
    /// pool!(Process(max_workers = 1) => {
    ///     let stuck = submit(spin);
    ///     let after = submit(double, 21);
    ///     while !stuck.running() {
    ///         std::thread::sleep(Duration::from_millis(1));
    ///     }
    ///     assert!(stuck.stop());
    ///     assert_eq!(stuck.result(), Err(TaskError::Stopped));
    ///     assert_eq!(after.result(), Ok(42)); // on the replacement worker
    /// });
    /// ```
    pub fn stop(&self) -> bool {
        if self.cancel() {
            return true;
        }
        if self.completion().state() == RUNNING && self.task().stop_started() {
            return true;
        }
        self.cancelled() || (self.done() && self.exception() == Some(TaskError::Stopped))
    }

    /// How many times the task has been started: 0 before it starts (and for a cancelled task),
    /// 1 once it has, and more for a call retried after its worker died, it timed out, or it
    /// panicked (Process: `retries = n`, `.retries(n)`; see the README). For a finished call, the
    /// attempts it took; for one that failed, the attempts that failed.
    ///
    /// ```
    /// use concurrent_futures::pool;
    ///
    /// pool!(Process => {
    ///     let f = submit(u32::pow, 2, 5);
    ///     assert!(f.wait_timeout(std::time::Duration::from_secs(30)));
    ///     assert_eq!(f.attempts(), 1);
    ///     assert_eq!(f.result(), Ok(32));
    /// });
    /// ```
    pub fn attempts(&self) -> u32 {
        match self.completion().state() {
            PENDING | CANCELLED => 0,
            _ => self.task().attempts().unwrap_or(1),
        }
    }

    /// `true` if the task was cancelled.
    ///
    /// ```
    /// use concurrent_futures::pool;
    ///
    /// pool!(Thread => {
    ///     let f = submit(|| 1);
    ///     f.wait_timeout(std::time::Duration::from_secs(10));
    ///     assert!(!f.cancelled()); // it ran
    /// });
    /// ```
    pub fn cancelled(&self) -> bool {
        self.completion().state() == CANCELLED
    }

    /// Waits for the task, then gives its error without consuming the future: `None` if it
    /// produced a value (Python's `Future.exception()`).
    ///
    /// ```
    /// use concurrent_futures::{pool, TaskError};
    ///
    /// fn fails() -> u32 {
    ///     panic!("no")
    /// }
    ///
    /// pool!(Thread => {
    ///     let good = submit(|| 1);
    ///     let bad = submit(fails);
    ///     assert_eq!(good.exception(), None);
    ///     assert_eq!(bad.exception().unwrap().panic().unwrap().message(), "no");
    ///     assert_eq!(good.result(), Ok(1)); // still there
    ///     assert!(bad.result().is_err());
    /// });
    /// ```
    pub fn exception(&self) -> Option<TaskError> {
        self.wait_until(None);
        let error = std::cell::Cell::new(None);
        // The callback runs at once, on this thread: the task has finished.
        self.completion()
            .add_callback_now(|outcome| error.set(outcome.err().cloned()));
        error.into_inner()
    }

    /// Runs `callback` once the task has finished, with its value or its error (also for a task
    /// that panicked or was cancelled). If it has already finished, `callback` runs at once, on the
    /// calling thread; otherwise on the thread that finishes the task (a worker, or the thread that
    /// cancels it). A panic in `callback` is reported on stderr and through `log`, and goes no
    /// further: the pool and the task's result are unaffected. Python's `add_done_callback`.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use concurrent_futures::pool;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let value = pool!(Thread => {
    ///     let f = submit(|| 6 * 7);
    ///     f.add_done_callback(move |outcome| tx.send(outcome.ok().copied()).unwrap());
    ///     f.result().unwrap()
    /// });
    /// assert_eq!(value, 42);
    /// assert_eq!(rx.recv().unwrap(), Some(42));
    /// ```
    pub fn add_done_callback<F>(&self, callback: F)
    where
        F: FnOnce(Result<&R, &TaskError>) + Send + 'static,
    {
        self.completion().add_callback(Box::new(callback));
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let completion = self.completion();
        if completion.is_finished() {
            return true;
        }
        if self.run_here_if_pending() {
            return true;
        }
        completion.wait_until(deadline)
    }

    /// Runs the task on the calling thread, if it has not started and the caller is a worker of
    /// the pool it was submitted to (see [`Task::run_here_if_pending`]): what every wait does
    /// before it blocks, so that a worker waiting on its own pool never deadlocks. Whether it ran.
    pub(crate) fn run_here_if_pending(&self) -> bool {
        self.completion().state() == PENDING && self.task().run_here_if_pending()
    }
}

impl<R> Drop for Future<R> {
    fn drop(&mut self) {
        // SAFETY: this future holds `FUTURE_REF` and does not touch the task afterwards except to
        // free it.
        if unsafe { self.completion().release(FUTURE_REF) } {
            // SAFETY: both references are gone: nobody else can reach the task. It was made by
            // `memory::allocate`, and freeing it through the `dyn` pointer drops the concrete type.
            unsafe { memory::free(self.task) };
        }
    }
}

impl<R> fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.completion().state() {
            PENDING => "pending",
            RUNNING => "running",
            DONE => "done",
            _ => "cancelled",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}
