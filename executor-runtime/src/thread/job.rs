//! A task of the Thread (and Auto) backend as its pool sees it: the closure and its completion in
//! one allocation ([`ThreadTask`]), the worker's view of it ([`Job`]), and the queue's counted
//! reference to it ([`JobRef`]), whose lifetime is erased when it is queued (see
//! `ThreadScope::submit` for why that is sound).

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::block::identity;
use crate::task::completion::{Completion, CANCELLED, QUEUE_REF};
use crate::task::error::{drop_payload, Panic, TaskError};
use crate::task::future::Task;
use crate::task::memory;
use crate::task::panic as task_panic;
use crate::task::stop::with_stop_flag;

/// A queued task, as a worker sees it.
pub(crate) trait Job: Send + Sync {
    /// Runs the task, or, if it was cancelled, drops its closure. Called once, by the worker that
    /// popped the task, which holds the queue's reference.
    fn run(&self) -> RunEnd;

    /// Whether the task finished by panicking, its future is gone, and nobody read the outcome: a
    /// failure nobody looked at. Returns the panic.
    ///
    /// # Safety
    /// The task must be finished, and the caller must hold the queue's reference.
    unsafe fn unread_panic(&self) -> Option<Panic>;

    /// Gives up the queue's reference; `true` if the caller must free the task.
    ///
    /// # Safety
    /// The caller must hold the queue's reference.
    unsafe fn release_queue_ref(&self) -> bool;

    /// Cancels the task if it has not started.
    fn cancel(&self) -> bool;

    /// Resolves a task that has not started with `error` instead of running it (the pool is
    /// broken); otherwise as [`Job::run`].
    fn fail(&self, error: TaskError) -> RunEnd;
}

/// How [`Job::run`] left the queue's reference.
pub(crate) enum RunEnd {
    /// Released; `free` says whether it was the last reference.
    Released { free: bool },
    /// The task panicked: the reference is kept so the pool can report the panic if the future is
    /// dropped unread.
    Panicked,
}

/// The queue's reference to a task in task memory, with the task's borrow lifetime erased (see
/// `ThreadScope::submit`). Dropping it releases the reference.
pub(crate) struct JobRef(pub(crate) NonNull<dyn Job>);

// SAFETY: `Job` is `Send + Sync`; a `JobRef` is the unique owner of the queue reference.
unsafe impl Send for JobRef {}

impl JobRef {
    pub(crate) fn job(&self) -> &dyn Job {
        // SAFETY: the queue reference keeps the task alive while this `JobRef` exists.
        unsafe { self.0.as_ref() }
    }

    /// Runs the task and lets go of the reference; a panicked task's reference comes back.
    pub(crate) fn run(self) -> Option<JobRef> {
        let end = self.job().run();
        self.end(end)
    }

    /// Fails the task with `error` instead of running it (see [`Job::fail`]).
    pub(crate) fn fail(self, error: TaskError) -> Option<JobRef> {
        let end = self.job().fail(error);
        self.end(end)
    }

    fn end(self, end: RunEnd) -> Option<JobRef> {
        match end {
            RunEnd::Released { free } => {
                let task = self.0;
                std::mem::forget(self);
                if free {
                    // SAFETY: both references are gone; the task came from `memory::allocate`.
                    unsafe { memory::free(task) };
                }
                None
            }
            RunEnd::Panicked => Some(self),
        }
    }
}

impl Drop for JobRef {
    fn drop(&mut self) {
        // SAFETY: this `JobRef` holds the queue reference and is going away.
        if unsafe { self.job().release_queue_ref() } {
            // SAFETY: both references are gone; the task came from `memory::allocate`.
            unsafe { memory::free(self.0) };
        }
    }
}

/// One submitted call: the closure and its completion, in one allocation.
pub(crate) struct ThreadTask<F, R> {
    pub(crate) completion: Completion<R>,
    /// `Some` until taken by the one thread that runs the task, or that drops it after a cancel.
    pub(crate) func: UnsafeCell<Option<F>>,
    pub(crate) pool_id: u64,
}

// SAFETY: `func` is touched by exactly one thread: the one that wins `Completion::try_start` (to run
// it), or, for a cancelled task, the worker that pops it (the canceller never touches `func`). The
// closure moves to that thread, so `F: Send` is needed and enough; `Completion` is `Sync` for
// `R: Send`.
unsafe impl<F: Send, R: Send> Sync for ThreadTask<F, R> {}

impl<F, R> ThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    /// Runs the closure and completes the task; the caller won `try_start`. Returns whether it
    /// panicked and, if it released the queue reference, whether that was the last.
    fn run_claimed(&self, holds_queue_ref: bool) -> (bool, bool) {
        // SAFETY: the caller won `try_start`, so this thread alone touches `func`.
        let func =
            unsafe { (*self.func.get()).take() }.expect("a claimed task still has its closure");
        let outcome = with_stop_flag(self.completion.stop_flag(), || task_panic::catch(func))
            .map_err(TaskError::Panicked);
        let panicked = outcome.is_err();
        // A worker keeps the reference of a task that panicked, to report it if nobody reads it.
        let release = holds_queue_ref && !panicked;
        // SAFETY: this thread won `try_start` and completes once; with `release`, it holds the queue
        // reference.
        let free = unsafe { self.completion.complete(outcome, release) };
        (panicked, free)
    }
}

impl<F, R> Job for ThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn run(&self) -> RunEnd {
        if self.completion.try_start() {
            return match self.run_claimed(true) {
                (true, _) => RunEnd::Panicked,
                (false, free) => RunEnd::Released { free },
            };
        }
        if self.completion.state() == CANCELLED {
            // SAFETY: a cancelled task is never started and the canceller leaves `func` alone; this
            // worker popped the task's only queue entry, so it alone touches `func`.
            let func = unsafe { (*self.func.get()).take() };
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(func))) {
                drop_payload(payload);
            }
        }
        // Otherwise a waiting worker of this pool already ran it (`run_here_if_pending`).
        RunEnd::Released {
            // SAFETY: the worker calling `run` holds the queue reference.
            free: unsafe { self.completion.release(QUEUE_REF) },
        }
    }

    unsafe fn unread_panic(&self) -> Option<Panic> {
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

    fn fail(&self, error: TaskError) -> RunEnd {
        if !self.completion.try_start() {
            return self.run();
        }
        // SAFETY: this thread won `try_start`, so it alone touches `func`.
        let func = unsafe { (*self.func.get()).take() };
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(func))) {
            drop_payload(payload);
        }
        // SAFETY: this thread won `try_start` and holds the queue reference.
        let free = unsafe { self.completion.complete(Err(error), true) };
        RunEnd::Released { free }
    }
}

impl<F, R> Task<R> for ThreadTask<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    fn completion(&self) -> &Completion<R> {
        &self.completion
    }

    fn run_here_if_pending(&self) -> bool {
        if identity::current_pool_id() != self.pool_id || !self.completion.try_start() {
            return false;
        }
        self.run_claimed(false);
        true
    }

    /// A thread cannot be killed on its own: raises the flag `stop_requested()` reads, and leaves
    /// the task to return when it sees it.
    fn stop_started(&self) -> bool {
        self.completion.stop_flag().store(true, Ordering::Release);
        false
    }
}
