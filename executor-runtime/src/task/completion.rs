//! The completion slot shared by a queued task and its [`Future`](crate::Future), and the two
//! references that keep the task's allocation alive.
//!
//! One atomic byte holds everything:
//! - the state: `PENDING → RUNNING → DONE`, or `PENDING → CANCELLED`;
//! - `HAS_WAITERS`: someone registered in the waiter list;
//! - `QUEUE_REF` and `FUTURE_REF`: which of the two owners (the queue entry, later the worker that
//!   popped it; and the future) still hold the task. Whoever clears the last one frees it.
//!
//! Keeping the references in the state byte lets the worker publish `DONE` and drop its reference in
//! one atomic step. The future's owner, which sees `DONE` only after that step, is then the last
//! owner and frees the allocation on the thread that made it: a task allocated on one thread and
//! freed on another costs a contended allocator lock (with glibc's malloc, half the cost of a tiny
//! task on a 2-core machine, measured). Where the owner had parked waiting, the worker wakes it
//! before it lets go, and may then be the one that frees the task.
//!
//! The waiter list, behind a mutex, is touched only when someone really waits. A completer's state
//! change and a registrant's flag change are read-modify-writes of the same atomic, so one of them
//! always sees the other: a waiter is never missed.
//!
//! Over 500 lines with its unit tests, which pin the state machine beside the code that
//! implements it.

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread};
use std::time::Instant;

use crate::task::error::{drop_payload, panic_message, Panic, TaskError};

pub(crate) const PENDING: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const DONE: u8 = 2;
pub(crate) const CANCELLED: u8 = 3;
const STATE_MASK: u8 = 0b0_0011;
const HAS_WAITERS: u8 = 0b0_0100;
/// Set while the completer runs done callbacks, before `DONE`: a callback added meanwhile runs at once.
const FINISHING: u8 = 0b10_0000;
/// Held by the queue entry, then by the worker that popped it.
pub(crate) const QUEUE_REF: u8 = 0b0_1000;
/// Held by the [`Future`](crate::Future).
pub(crate) const FUTURE_REF: u8 = 0b1_0000;
const REFS: u8 = QUEUE_REF | FUTURE_REF;

/// Spin steps of a wait before it parks (see `Completion::spin_until_finished`).
const SPIN_STEPS: u32 = 10;

/// A done callback: it gets the task's value or error.
pub(crate) type Callback<R> = Box<dyn FnOnce(Result<&R, &TaskError>) + Send>;

/// Someone to tell when the task finishes.
pub(crate) enum Waiter<R> {
    /// A thread parked in a blocking wait.
    Thread(Thread),
    /// A done callback (`Future::add_done_callback`).
    Callback(Callback<R>),
    /// A wait on many futures (`wait`, `as_completed`): the task's index in it.
    Signal(Arc<Signal>, usize),
}

/// Where the tasks of a wait on many futures report that they finished.
pub(crate) struct Signal {
    finished: Mutex<Vec<usize>>,
    waiter: Thread,
}

impl Signal {
    /// A signal that wakes the calling thread.
    pub(crate) fn for_current_thread() -> Arc<Signal> {
        Arc::new(Signal {
            finished: Mutex::new(Vec::new()),
            waiter: thread::current(),
        })
    }

    fn notify(&self, index: usize) {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(index);
        self.waiter.unpark();
    }

    /// The indices of the tasks that finished since the last call, in the order they did.
    pub(crate) fn take_finished(&self) -> Vec<usize> {
        std::mem::take(&mut *self.finished.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The error a done callback of a cancelled task sees.
static CANCELLED_ERROR: TaskError = TaskError::Cancelled;

/// Runs a done callback; a panic in it is reported, and goes no further.
fn run_callback<R>(callback: Callback<R>, outcome: Result<&R, &TaskError>) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| callback(outcome))) {
        let message = panic_message(&*payload);
        drop_payload(payload);
        log::error!("executor: a done callback panicked: {message}");
        eprintln!("warning: a done callback panicked: {message}");
    }
}

/// The state, waiters and outcome of one task.
pub(crate) struct Completion<R> {
    state: AtomicU8,
    /// Raised by `Future::stop` on Thread and Auto, where the running task reads it through
    /// `stop_requested()`. Here rather than in the Thread task: it fits in the padding after
    /// `state`, which makes the task of `add(a, b)` 72 bytes, an 80-byte glibc chunk, not 96.
    stop: AtomicBool,
    /// Boxed, and the error below too, to keep a task small: 20,000 tiny tasks are 20,000
    /// allocations, and their size decides how many fresh pages the allocator must fault in.
    #[allow(clippy::box_collection)] // the point: 8 bytes in the task instead of 24
    waiters: Mutex<Option<Box<Vec<Waiter<R>>>>>,
    /// Written once, by the thread that won [`Completion::try_start`], before the state becomes
    /// `DONE`; read only after the state is seen as `DONE` (acquire), by the future's owner.
    outcome: UnsafeCell<Option<Result<R, Box<TaskError>>>>,
}

// SAFETY: `outcome` is the only field that is not already `Sync`. It is written by exactly one
// thread (the one that won `try_start`, which the state machine guarantees is unique) before the
// release transition to `DONE`, and read only after an acquire load that observed `DONE`; so no
// read overlaps a write. Moving an `R` between threads through it needs `R: Send`.
unsafe impl<R: Send> Sync for Completion<R> {}

impl<R> Completion<R> {
    /// A pending task, held by both the queue and the future.
    pub(crate) const fn new() -> Self {
        Completion {
            state: AtomicU8::new(PENDING | REFS),
            stop: AtomicBool::new(false),
            waiters: Mutex::new(None),
            outcome: UnsafeCell::new(None),
        }
    }

    /// The flag `Future::stop` raises for a running Thread task (see the field).
    pub(crate) fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// The current state: one of `PENDING`, `RUNNING`, `DONE`, `CANCELLED`.
    pub(crate) fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire) & STATE_MASK
    }

    /// Whether the task is done or cancelled: nothing more will happen to it.
    pub(crate) fn is_finished(&self) -> bool {
        self.state() >= DONE
    }

    /// Whether the future was dropped.
    pub(crate) fn future_dropped(&self) -> bool {
        self.state.load(Ordering::Acquire) & FUTURE_REF == 0
    }

    /// Claims the task for running. Exactly one caller ever gets `true`, and only while the task
    /// is pending (not cancelled).
    pub(crate) fn try_start(&self) -> bool {
        self.transition(PENDING, RUNNING)
    }

    /// Marks a pending task cancelled; `false` if it already started or finished.
    pub(crate) fn try_cancel(&self) -> bool {
        if self.state() != PENDING {
            return false;
        }
        let cancelled = self.transition(PENDING, CANCELLED);
        if cancelled {
            self.wake_waiters();
        }
        cancelled
    }

    /// Stores the outcome, makes the task `DONE` and wakes whoever waits.
    ///
    /// With `release_queue_ref`, also gives up the queue's reference, in the same atomic step as
    /// the change to `DONE` when nobody waits. Returns `true` if the caller must then free the task
    /// (the future was already dropped).
    ///
    /// # Safety
    /// The caller must be the thread that won [`Completion::try_start`], and call this once; with
    /// `release_queue_ref`, it must hold the queue's reference.
    pub(crate) unsafe fn complete(
        &self,
        outcome: Result<R, TaskError>,
        release_queue_ref: bool,
    ) -> bool {
        // SAFETY: the caller won `try_start`, so no other thread writes `outcome`, and no reader
        // looks at it before the release below makes the state `DONE`.
        unsafe { *self.outcome.get() = Some(outcome.map_err(Box::new)) };
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert_eq!(current & STATE_MASK, RUNNING);
            if current & HAS_WAITERS != 0 {
                // Someone waits, perhaps with a callback: callbacks run before `DONE`, while the
                // future's owner cannot yet take the outcome they read.
                match self.state.compare_exchange_weak(
                    current,
                    current | FINISHING,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(actual) => {
                        current = actual;
                        continue;
                    }
                }
            }
            // Nobody waits: publish `DONE` and drop our reference in one step.
            let mut next = (current & !STATE_MASK) | DONE;
            if release_queue_ref {
                next &= !QUEUE_REF;
            }
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return release_queue_ref && next & REFS == 0,
                Err(actual) => current = actual,
            }
        }
        for callback in self.take_callbacks() {
            // SAFETY: the outcome was written above, and the owner cannot take it before `DONE`.
            run_callback(callback, unsafe { self.outcome_view() });
        }
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |state| {
                Some((state & !STATE_MASK & !FINISHING) | DONE)
            })
            .expect("the update always applies");
        // With waiters, we kept our reference until they are woken: the wake reads the task.
        self.wake_waiters();
        // SAFETY: forwarded from the caller.
        release_queue_ref && unsafe { self.release(QUEUE_REF) }
    }

    /// The outcome as a done callback sees it.
    ///
    /// # Safety
    /// The outcome must be written (the task is `DONE` or `FINISHING`) and not taken, and nobody
    /// may take it while the result is used.
    unsafe fn outcome_view(&self) -> Result<&R, &TaskError> {
        // SAFETY: forwarded from the caller.
        match unsafe { &*self.outcome.get() } {
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => Err(error),
            None => unreachable!("the outcome of a finished task is there until taken"),
        }
    }

    /// Adds a done callback, or runs it now if the task has finished (or is finishing).
    ///
    /// The caller must hold the future (so the outcome cannot be taken while the callback reads it).
    pub(crate) fn add_callback(&self, callback: Callback<R>) {
        let mut guard = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let previous = self.state.fetch_or(HAS_WAITERS, Ordering::AcqRel);
        if previous & STATE_MASK < DONE && previous & FINISHING == 0 {
            // The completer has not reached its callbacks yet; it will find this one (it takes the
            // list under the lock we hold, after seeing the flag we just set).
            guard
                .get_or_insert_with(Box::default)
                .push(Waiter::Callback(callback));
            return;
        }
        drop(guard);
        match previous & STATE_MASK {
            CANCELLED => run_callback(callback, Err(&CANCELLED_ERROR)),
            // SAFETY: `DONE` or `FINISHING`: written; the caller holds the future, so it is not taken.
            _ => run_callback(callback, unsafe { self.outcome_view() }),
        }
    }

    /// Runs `look` on the outcome of a finished task, on the calling thread.
    ///
    /// The caller must hold the future and have seen the task finished.
    pub(crate) fn add_callback_now(&self, look: impl FnOnce(Result<&R, &TaskError>)) {
        match self.state() {
            CANCELLED => look(Err(&CANCELLED_ERROR)),
            // SAFETY: `DONE` (acquire): written; the caller holds the future, so it is not taken.
            DONE => look(unsafe { self.outcome_view() }),
            state => unreachable!("add_callback_now on an unfinished task (state {state})"),
        }
    }

    /// Takes the callbacks out of the waiter list, leaving the other waiters.
    fn take_callbacks(&self) -> Vec<Callback<R>> {
        let mut guard = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = guard.as_mut() else {
            return Vec::new();
        };
        if !list.iter().any(|w| matches!(w, Waiter::Callback(_))) {
            return Vec::new();
        }
        let mut callbacks = Vec::new();
        for waiter in std::mem::take(&mut **list) {
            match waiter {
                Waiter::Callback(callback) => callbacks.push(callback),
                other => list.push(other),
            }
        }
        callbacks
    }

    /// Gives up one reference (`QUEUE_REF` or `FUTURE_REF`); `true` if it was the last, and the
    /// caller must free the task.
    ///
    /// # Safety
    /// The caller must hold that reference, and not touch the task afterwards except to free it.
    pub(crate) unsafe fn release(&self, reference: u8) -> bool {
        let previous = self.state.fetch_and(!reference, Ordering::AcqRel);
        debug_assert_ne!(previous & reference, 0, "a reference released twice");
        previous & REFS == reference
    }

    /// Takes the outcome of a finished task.
    ///
    /// # Safety
    /// The task must be finished ([`Completion::is_finished`] returned `true` on this thread), and
    /// the caller must be the only reader of the outcome (the future's owner, by value).
    pub(crate) unsafe fn take_outcome(&self) -> Result<R, TaskError> {
        match self.state() {
            CANCELLED => Err(TaskError::Cancelled),
            // SAFETY: the state is `DONE` (acquire), so the write happened before, and the caller
            // is the only reader.
            DONE => unsafe { (*self.outcome.get()).take() }
                .expect("the outcome of a finished task is taken once")
                .map_err(|error| *error),
            state => unreachable!("take_outcome on an unfinished task (state {state})"),
        }
    }

    /// The panic of a finished task whose future was dropped without its outcome being read: a
    /// failure nobody looked at, for the pool to report.
    ///
    /// # Safety
    /// The task must be finished.
    pub(crate) unsafe fn unread_panic(&self) -> Option<Panic> {
        if !self.future_dropped() {
            return None;
        }
        // SAFETY: finished (caller), and with the future gone this is the only reader.
        unsafe { self.untaken_panic() }
    }

    /// The panic of a finished task whose outcome was never taken.
    ///
    /// # Safety
    /// As for [`Completion::take_outcome`]: finished, and no concurrent reader.
    unsafe fn untaken_panic(&self) -> Option<Panic> {
        if self.state() != DONE {
            return None;
        }
        // SAFETY: `DONE` was observed with acquire ordering and the caller is the only reader.
        match unsafe { &*self.outcome.get() } {
            Some(Err(error)) => match &**error {
                TaskError::Panicked(panic) => Some(panic.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Blocks until the task is finished or the deadline passes; returns whether it finished.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        if self.spin_until_finished() {
            return true;
        }
        if !self.register(Waiter::Thread(thread::current())) {
            return true;
        }
        loop {
            if self.is_finished() {
                return true;
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        self.forget_current_thread();
                        return self.is_finished();
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
    }

    /// Spins, then yields twice, before the caller parks: a tiny task often finishes in less time
    /// than a park and its wake-up cost (two `futex` calls, and where the kernel must wake a halted
    /// virtual CPU, tens of µs). Step `k` spins `2^min(k, 6)` hints: 319 in all, 11 µs on AMD
    /// EPYC (family 25). crossbeam's `Backoff` yielded 4 times after 127 hints, and a caller reading
    /// results in order that caught up with the workers made a `sched_yield` call per result.
    fn spin_until_finished(&self) -> bool {
        for step in 0..SPIN_STEPS {
            if self.is_finished() {
                return true;
            }
            for _ in 0..1u32 << step.min(6) {
                std::hint::spin_loop();
            }
        }
        for _ in 0..2 {
            if self.is_finished() {
                return true;
            }
            thread::yield_now();
        }
        self.is_finished()
    }

    /// Adds a waiter; `false` (and the waiter dropped) if the task finished meanwhile.
    pub(crate) fn register(&self, waiter: Waiter<R>) -> bool {
        let mut guard = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let waiters = guard.get_or_insert_with(Box::default);
        waiters.push(waiter);
        let previous = self.state.fetch_or(HAS_WAITERS, Ordering::AcqRel);
        if previous & STATE_MASK >= DONE {
            // The completer changed the state before our flag was set, so it will not look at
            // the list: take our entry back.
            waiters.pop();
            return false;
        }
        true
    }

    /// Removes this thread's entries after a timed-out wait, so repeated polls do not grow the list.
    fn forget_current_thread(&self) {
        let me = thread::current().id();
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let Some(waiters) = waiters.as_mut() else {
            return;
        };
        waiters.retain(|waiter| match waiter {
            Waiter::Thread(thread) => thread.id() != me,
            _ => true,
        });
    }

    fn wake_waiters(&self) {
        // Drained in place, not taken: the list's memory is freed with the task, by the thread that
        // allocated it, not by the completing worker (a cross-thread free contends on glibc's arena).
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let mut callbacks = Vec::new();
        for waiter in waiters.iter_mut().flat_map(|list| list.drain(..)) {
            match waiter {
                Waiter::Thread(thread) => thread.unpark(),
                Waiter::Signal(signal, index) => signal.notify(index),
                // Only a cancel gets here with callbacks; a completion ran them before `DONE`.
                Waiter::Callback(callback) => callbacks.push(callback),
            }
        }
        drop(waiters);
        for callback in callbacks {
            run_callback(callback, Err(&CANCELLED_ERROR));
        }
    }

    /// Moves the state from `from` to `to`, keeping the other bits.
    fn transition(&self, from: u8, to: u8) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state & STATE_MASK == from).then_some((state & !STATE_MASK) | to)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn only_one_claim_wins() {
        let completion = Completion::<u32>::new();
        assert!(completion.try_start());
        assert!(!completion.try_start());
        assert!(!completion.try_cancel());
    }

    #[test]
    fn cancel_only_while_pending() {
        let completion = Completion::<u32>::new();
        assert!(completion.try_cancel());
        assert!(!completion.try_start());
        assert!(completion.is_finished());
        // SAFETY: finished, single reader.
        let outcome = unsafe { completion.take_outcome() };
        assert_eq!(outcome, Err(TaskError::Cancelled));
    }

    #[test]
    fn the_last_reference_released_frees() {
        let completion = Completion::<u32>::new();
        assert!(completion.try_start());
        // SAFETY: this thread won `try_start` and holds the queue reference.
        let freed = unsafe { completion.complete(Ok(1), true) };
        assert!(!freed, "the future still holds it");
        // SAFETY: this thread holds the future reference.
        let freed = unsafe { completion.release(FUTURE_REF) };
        assert!(freed, "the last owner frees");
    }

    #[test]
    fn completing_after_the_future_was_dropped_frees() {
        let completion = Completion::<u32>::new();
        // SAFETY: this thread holds the future reference.
        assert!(!unsafe { completion.release(FUTURE_REF) });
        assert!(completion.future_dropped());
        assert!(completion.try_start());
        // SAFETY: this thread won `try_start` and holds the queue reference.
        assert!(unsafe { completion.complete(Ok(1), true) });
    }

    #[test]
    fn a_parked_waiter_is_woken_by_completion() {
        let completion = Arc::new(Completion::<u32>::new());
        assert!(completion.try_start());
        let waiter = {
            let completion = completion.clone();
            thread::spawn(move || {
                completion.wait_until(None);
                // SAFETY: finished, and this thread is the only reader.
                unsafe { completion.take_outcome() }
            })
        };
        thread::sleep(Duration::from_millis(20));
        // SAFETY: this thread won `try_start`; no reference is released (the `Arc` owns it).
        assert!(!unsafe { completion.complete(Ok(7), false) });
        assert_eq!(waiter.join().unwrap(), Ok(7));
    }

    #[test]
    fn a_timed_wait_returns_false_and_leaves_no_waiter() {
        let completion = Completion::<u32>::new();
        let deadline = Instant::now() + Duration::from_millis(10);
        assert!(!completion.wait_until(Some(deadline)));
        assert!(completion
            .waiters
            .lock()
            .unwrap()
            .as_ref()
            .is_none_or(|list| list.is_empty()));
    }
}
