//! The calls of one block whose workers are other processes, on the block's side: each call as
//! a job (its encoded request and its completion), the queue they wait in, and the counts that the
//! block's join waits on. Shared by every remote backend; what a backend adds (how calls reach its
//! workers) lives in its own state, under the same lock (`RemoteBackend::State`).

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use serde::de::DeserializeOwned;

use crate::block::options::CallOptions;
use crate::remote::call::{self, CallStatus, RemoteCall};
use crate::remote::protocol::CallHead;
use crate::remote::scope::RemoteBackend;
use crate::remote::tail::Tail;
use crate::remote::wire;
use crate::task::completion::{Completion, QUEUE_REF};
use crate::task::error::{drop_payload, panic_message, Panic, TaskError};
use crate::task::future::{Future, Task};
use crate::task::memory;

/// What a link sends for one call; shared so a writer can send it without holding the pool lock.
pub(crate) struct Request {
    pub(crate) function: isize,
    pub(crate) trampoline: isize,
    pub(crate) arguments: wire::Parts,
}

impl Request {
    /// Appends the frame header and fixed fields of this call's message, numbered `id`; returns
    /// whether its arguments follow. Arguments over the frame limit do not get here (`submit`
    /// fails such a call, see `protocol::check_arguments_len`); were they to, they would be left
    /// out, so that the frame stays well formed, and the worker would fail this call alone.
    pub(crate) fn write_call_head(&self, id: u64, out: &mut Vec<u8>) -> bool {
        let head = CallHead {
            id,
            trampoline: self.trampoline as i64,
            function: self.function as i64,
            tail_len: self.arguments.raw_tail_len() as u64,
            text: self.arguments.raw_tail_is_text(),
        };
        if head.write(self.arguments.len(), out) {
            return true;
        }
        let empty = CallHead {
            tail_len: 0,
            text: false,
            ..head
        };
        empty.write(0, out);
        false
    }
}

/// A call as the pool sees it, with its result type erased.
pub(crate) trait RemoteJob: Send + Sync {
    /// Claims a pending call for sending (it becomes "running"); `false` if it was cancelled.
    fn try_dispatch(&self) -> bool;

    /// What to send for the call; `None` once it is resolved (its arguments are freed then).
    fn request(&self) -> Option<Arc<Request>>;

    /// Resolves a dispatched call. Returns `(panicked, free)`: a panicked call keeps the queue
    /// reference (to report it if nobody reads it); otherwise the reference is released, and
    /// `free` says whether it was the last.
    ///
    /// # Safety
    /// The call must have been dispatched (claimed) and not resolved yet, and the caller must hold
    /// the queue reference.
    unsafe fn resolve(&self, outcome: Outcome<'_>) -> (bool, bool);

    /// See `crate::thread::job::Job::unread_panic`.
    ///
    /// # Safety
    /// Finished, and the caller holds the queue reference.
    unsafe fn unread_panic(&self) -> Option<Panic>;

    /// # Safety
    /// The caller must hold the queue reference.
    unsafe fn release_queue_ref(&self) -> bool;

    /// Cancels the call if it has not been sent.
    fn cancel(&self) -> bool;

    /// Counts one more retry if fewer than `budget` were made; whether it may run again.
    fn try_retry(&self, budget: u32) -> bool;

    /// The call's own options.
    fn options(&self) -> CallOptions;
}

/// How a dispatched call ended.
pub(crate) enum Outcome<'a> {
    /// The worker answered: a status and the encoded result or message, and the result's raw tail
    /// (a large byte vector or string, read into a vector of its own; see `call::CallOutput`).
    Answered(CallStatus, &'a [u8], Option<Tail>),
    /// No answer: the error says why.
    Failed(TaskError),
}

struct RemoteTask<R> {
    completion: Completion<R>,
    /// Until the call is resolved: then its arguments are freed, not kept as long as its future.
    /// (A program that submits 200 calls with 1 MiB arguments and reads their results afterwards
    /// kept all 200 MiB alive, and its allocator gave each new argument fresh pages: after a
    /// block of tiny tasks, 1 MiB arguments cloned into `submit` on Mpi ran at 1.4 GB/s, with
    /// 513,000 page faults in 10 blocks, against 4.8 where the allocator kept its memory.)
    request: Mutex<Option<Arc<Request>>>,
    /// The function's name, for a worker's death to name the call (see `RemoteCall::named`).
    name: Option<&'static str>,
    /// The call's own options (`submit(call(f).timeout(d), ...)`); unset ones are the block's.
    options: CallOptions,
    /// The block's queue, to stop the call once it has started (`Future::stop`).
    stopper: Weak<dyn StopCall>,
    /// Times the call was retried (sent again after its worker died, it timed out or panicked).
    retried: AtomicU32,
    /// A stop of the started call succeeded: it will resolve with `TaskError::Stopped`.
    stopping: AtomicBool,
}

/// How a started call's future reaches its block to stop it (`Future::stop`), with the block's
/// backend erased.
pub(crate) trait StopCall: Send + Sync {
    /// Stops the started call whose task is at `job`; whether it will resolve with
    /// `TaskError::Stopped`.
    fn stop_call(&self, job: *const ()) -> bool;
}

impl<B: RemoteBackend> StopCall for CallQueue<B> {
    fn stop_call(&self, job: *const ()) -> bool {
        let mut state = self.lock();
        // Sent to a worker that died before running it, and back in the queue: it has not run,
        // and never will.
        let requeued = state
            .queue
            .iter()
            .position(|entry| entry.claimed && entry.job.address() == job);
        if let Some(index) = requeued {
            let entry = state.queue.remove(index).expect("found just above");
            drop(state);
            self.fail(vec![entry], &TaskError::Stopped);
            return true;
        }
        B::stop(self, &mut state, job)
    }
}

impl<R: DeserializeOwned + Send + 'static> RemoteJob for RemoteTask<R> {
    fn try_dispatch(&self) -> bool {
        self.completion.try_start()
    }

    fn request(&self) -> Option<Arc<Request>> {
        self.request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    unsafe fn resolve(&self, outcome: Outcome<'_>) -> (bool, bool) {
        let outcome = match outcome {
            // The user's `Deserialize` runs here, on a pool thread: a panic in it must not take
            // the thread down with the call unresolved.
            Outcome::Answered(CallStatus::Returned, bytes, tail) => {
                let decode = || wire::decode_with_tail::<R>(bytes, tail);
                match panic::catch_unwind(AssertUnwindSafe(decode)) {
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
            Outcome::Answered(CallStatus::Panicked, bytes, _) => {
                Err(TaskError::Panicked(call::decode_panic(bytes)))
            }
            Outcome::Answered(CallStatus::Transport, bytes, _) => Err(TaskError::Transport(
                String::from_utf8_lossy(bytes).into_owned(),
            )),
            // The backend knows the worker; the call knows its function.
            Outcome::Failed(TaskError::WorkerDied { pid, death, call }) => {
                Err(TaskError::WorkerDied {
                    pid,
                    death,
                    call: call.or(self.name),
                })
            }
            Outcome::Failed(error) => Err(error),
        };
        let panicked = matches!(outcome, Err(TaskError::Panicked(_)));
        // Resolved: never sent again, so its arguments may go (once a send still reading them is
        // done with its own reference). Freed after the future has its outcome, so that freeing a
        // large argument does not delay it; taken out first, since once completed the task may be
        // freed by its future's thread.
        let request = self
            .request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // SAFETY: the claim was handed to the caller with the queue reference (under the pool
        // lock), so this is the one completion of the call; forwarded from the caller.
        let free = unsafe { self.completion.complete(outcome, !panicked) };
        drop(request);
        (panicked, free)
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

    fn try_retry(&self, budget: u32) -> bool {
        self.retried
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |retried| {
                (retried < budget).then_some(retried + 1)
            })
            .is_ok()
    }

    fn options(&self) -> CallOptions {
        self.options
    }
}

impl<R: Send> Task<R> for RemoteTask<R> {
    fn completion(&self) -> &Completion<R> {
        &self.completion
    }

    fn stop_started(&self) -> bool {
        // A stop that succeeded stays promised. The link takes a stopped call out of its list
        // of calls in flight and resolves it after letting the queue go; a second `stop` in
        // between found it nowhere, and returned `false` for a call about to resolve with
        // `Stopped` (`tests/stop.rs` failed so in a CI run of 2026-12-01).
        if self.stopping.load(Ordering::Acquire) {
            return true;
        }
        let Some(queue) = self.stopper.upgrade() else {
            return false; // the block has ended: the call is finished
        };
        let stopped = queue.stop_call((self as *const Self).cast());
        if stopped {
            self.stopping.store(true, Ordering::Release);
        }
        stopped
    }

    fn attempts(&self) -> Option<u32> {
        Some(1 + self.retried.load(Ordering::Acquire))
    }
}

/// A call as a job for a queue of calls to worker processes, and its future; the third value says
/// why the call cannot be sent, if it cannot (its job must then be failed, not sent).
pub(crate) fn new_job<R>(
    call: RemoteCall<R>,
    options: CallOptions,
    stopper: Weak<dyn StopCall>,
) -> (RemoteJobRef, Future<R>, Option<String>)
where
    R: DeserializeOwned + Send + 'static,
{
    let (arguments, encode_error) = match call.arguments {
        Ok(bytes) => (bytes, None),
        Err(why) => (wire::Parts::default(), Some(why)),
    };
    let task = memory::allocate(RemoteTask::<R> {
        completion: Completion::new(),
        request: Mutex::new(Some(Arc::new(Request {
            function: call.function,
            trampoline: call.trampoline,
            arguments,
        }))),
        name: call.name,
        options,
        stopper,
        retried: AtomicU32::new(0),
        stopping: AtomicBool::new(false),
    });
    let job = RemoteJobRef(task);
    let handle: NonNull<dyn Task<R>> = task;
    // SAFETY: `handle` is a call in task memory holding `FUTURE_REF`; it borrows nothing
    // (`R: 'static`).
    let future = unsafe { Future::from_raw(handle) };
    (job, future, encode_error)
}

/// The queue's reference to a call in task memory. Dropping it releases the reference.
pub(crate) struct RemoteJobRef(NonNull<dyn RemoteJob>);

// SAFETY: `RemoteJob` is `Send + Sync`; a `RemoteJobRef` is the unique owner of the queue reference.
unsafe impl Send for RemoteJobRef {}

impl RemoteJobRef {
    pub(crate) fn job(&self) -> &dyn RemoteJob {
        // SAFETY: the queue reference keeps the call alive while this `RemoteJobRef` exists.
        unsafe { self.0.as_ref() }
    }

    /// The address of the call's task, which names it to `StopCall::stop_call`.
    pub(crate) fn address(&self) -> *const () {
        self.0.as_ptr().cast_const().cast()
    }

    /// Resolves the call and lets go of the reference; a panicked call's reference comes back.
    ///
    /// # Safety
    /// The call must have been dispatched by this pool and not resolved yet.
    pub(crate) unsafe fn resolve(self, outcome: Outcome<'_>) -> Option<RemoteJobRef> {
        // SAFETY: forwarded; this `RemoteJobRef` holds the queue reference.
        let (panicked, free) = unsafe { self.job().resolve(outcome) };
        if panicked {
            return Some(self);
        }
        let task = self.0;
        std::mem::forget(self);
        if free {
            // SAFETY: both references are gone; the call came from `memory::allocate`.
            unsafe { free_quietly(task) };
        }
        None
    }
}

impl Drop for RemoteJobRef {
    fn drop(&mut self) {
        // SAFETY: this `RemoteJobRef` holds the queue reference and is going away.
        if unsafe { self.job().release_queue_ref() } {
            // SAFETY: both references are gone; the call came from `memory::allocate`.
            unsafe { free_quietly(self.0) };
        }
    }
}

/// Frees a call on a pool thread. Freeing drops an unread result, which runs the user's `Drop`: a
/// panic there is contained rather than allowed to unwind through the thread.
///
/// # Safety
/// As [`memory::free`]: `job` came from `memory::allocate`, is freed once and not used afterwards.
unsafe fn free_quietly(job: NonNull<dyn RemoteJob>) {
    // SAFETY: forwarded from the caller.
    let freed = panic::catch_unwind(AssertUnwindSafe(|| unsafe { memory::free(job) }));
    if let Err(payload) = freed {
        drop_payload(payload);
    }
}

/// A call waiting to be sent.
pub(crate) struct Queued {
    pub(crate) job: RemoteJobRef,
    /// Already claimed (`try_dispatch`): it was sent to a worker that died before running it.
    pub(crate) claimed: bool,
}

/// The calls of one block, and what its backend keeps beside them under the same lock.
#[doc(hidden)]
pub struct CallQueue<B: RemoteBackend> {
    /// The backend's side of the block: its options and how it reaches its workers.
    pub(crate) backend: B,
    state: Mutex<QueueState<B::State>>,
    /// Signalled on every change a waiter may care about: work queued, calls answered, shutdown.
    pub(crate) changed: Condvar,
}

/// Everything behind a block's lock.
#[doc(hidden)]
pub struct QueueState<S> {
    /// Calls waiting to be sent, oldest first.
    pub(crate) queue: VecDeque<Queued>,
    pub(crate) submitted: usize,
    /// Calls resolved or cancelled; the join waits until it reaches `submitted`.
    pub(crate) finished: usize,
    /// Calls that panicked, kept to report a panic nobody read.
    pub(crate) panicked: Vec<RemoteJobRef>,
    /// Why no call of this block can be sent (no worker can be had), if so: each fails at once
    /// with `TaskError::WorkerStart`.
    pub(crate) broken: Option<String>,
    /// The backend's own state (its workers, as it sees them).
    pub(crate) backend: S,
}

impl<B: RemoteBackend> CallQueue<B> {
    pub(crate) fn new(backend: B, state: B::State, broken: Option<String>) -> Self {
        CallQueue {
            backend,
            state: Mutex::new(QueueState {
                queue: VecDeque::new(),
                submitted: 0,
                finished: 0,
                panicked: Vec::new(),
                broken,
                backend: state,
            }),
            changed: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, QueueState<B::State>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts calls finished (resolved or cancelled), keeps those that panicked, and wakes the
    /// waiters.
    pub(crate) fn finished(&self, count: usize, panicked: impl IntoIterator<Item = RemoteJobRef>) {
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
    pub(crate) unsafe fn resolve(&self, job: RemoteJobRef, outcome: Outcome<'_>) {
        // SAFETY: forwarded from the caller.
        let panicked = unsafe { job.resolve(outcome) };
        self.finished(1, panicked);
    }

    /// Resolves calls that were not sent (or were sent to a worker that died before running
    /// them) with `error`, and counts them; calls cancelled meanwhile are only counted.
    pub(crate) fn fail(&self, jobs: Vec<Queued>, error: &TaskError) {
        let mut count = 0;
        let mut panicked = Vec::new();
        for Queued { job, claimed } in jobs {
            count += 1;
            if !claimed && !job.job().try_dispatch() {
                continue; // cancelled: dropping the reference is all there is to do
            }
            // SAFETY: claimed just above (or before it was queued again), and `job` holds the
            // queue reference.
            if let Some(job) = unsafe { job.resolve(Outcome::Failed(error.clone())) } {
                panicked.push(job);
            }
        }
        self.finished(count, panicked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoStop;

    impl StopCall for NoStop {
        fn stop_call(&self, _job: *const ()) -> bool {
            false
        }
    }

    /// A call's arguments go once it is resolved and no send reads them any more, though its
    /// future lives on: a program that reads its results after submitting every call does not
    /// keep every argument alive until then.
    #[test]
    fn a_resolved_calls_arguments_are_freed_while_its_future_lives() {
        let mut arguments = wire::Parts::default();
        arguments.push_value(vec![7u8; 1 << 20]).unwrap();
        let call = RemoteCall::<u64> {
            function: 0,
            trampoline: 0,
            arguments: Ok(arguments),
            name: Some("length"),
            _result: std::marker::PhantomData,
        };
        let stopper: Weak<dyn StopCall> = Weak::<NoStop>::new();
        let (job, future, why) = new_job(call, CallOptions::default(), stopper);
        assert!(why.is_none());
        assert!(job.job().try_dispatch());
        // A send still in progress holds a reference of its own.
        let sending = job
            .job()
            .request()
            .expect("unresolved: its request is there");
        let arguments = Arc::downgrade(&sending);
        let mut result = Vec::new();
        wire::encode_into(&(1u64 << 20), &mut result).unwrap();
        // SAFETY: dispatched just above and not resolved; `job` holds the queue reference.
        let kept = unsafe { job.resolve(Outcome::Answered(CallStatus::Returned, &result, None)) };
        assert!(kept.is_none());
        assert!(arguments.upgrade().is_some(), "the send still reads them");
        drop(sending);
        assert!(
            arguments.upgrade().is_none(),
            "freed once resolved and sent, with the future unread"
        );
        assert_eq!(future.result(), Ok(1 << 20));
    }
}
