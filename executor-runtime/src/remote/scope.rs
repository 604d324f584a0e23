//! The pool of one block whose calls run in other processes, the same for every remote backend:
//! `submit` encodes a call and queues it, `map` sends chunks of items, leaving the block cancels
//! what was not sent (with `cancel_futures`) and waits for every call. A backend says only how
//! calls reach its workers ([`RemoteBackend`]): the Process backend's link threads take calls
//! from the queue; the Mpi backend's driver thread does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use serde::de::DeserializeOwned;

use crate::block::join_guard::{JoinGuard, Pool};
use crate::block::map::AHEAD_PER_WORKER;
use crate::block::options::{CallOptions, PoolOptions};
use crate::remote::call::RemoteCall;
use crate::remote::map::{RemoteMap, RemoteMapUnordered, RemotePool};
use crate::remote::queue::{new_job, CallQueue, QueueState, Queued, StopCall};
use crate::task::error::{Panic, TaskError};
use crate::task::future::Future;

/// How calls reach the workers of one remote backend: what the shared [`RemoteScope`] asks of it.
/// The backend's value holds the block's options and its handle on the workers; its
/// [`State`](RemoteBackend::State) lives under the queue's lock.
#[doc(hidden)]
pub trait RemoteBackend: Send + Sync + Sized + 'static {
    /// What the backend keeps under the queue's lock (the Process backend: its worker links).
    type State: Send;
    /// What a `submit` decided, under the lock, to do once the lock is released.
    type Wake;

    /// Opens a block: the backend's side, its state, and why no call can be sent, if none can
    /// (every call then fails with `TaskError::WorkerStart` and that reason).
    fn open(options: &PoolOptions) -> (Self, Self::State, Option<String>);

    /// The block's queue exists; a backend whose workers are served by a thread of the process
    /// (Mpi's driver) hands it over here.
    fn opened(queue: &Arc<CallQueue<Self>>);

    /// A call was queued (the lock is held): what, if anything, to do after unlocking.
    fn queued(queue: &CallQueue<Self>, state: &mut QueueState<Self::State>) -> Option<Self::Wake>;

    /// Does what [`queued`](RemoteBackend::queued) decided; called without the lock.
    fn wake(queue: &Arc<CallQueue<Self>>, wake: Self::Wake);

    /// `Future::stop` on the started call whose task is at `job` (the lock is held; a call back
    /// in the queue was already dealt with): stop it if this backend can, and return whether it
    /// will resolve with `TaskError::Stopped`. By default a running call cannot be stopped (the
    /// Mpi backend: a rank cannot be killed without ending the MPI job).
    fn stop(
        _queue: &CallQueue<Self>,
        _state: &mut QueueState<Self::State>,
        _job: *const (),
    ) -> bool {
        false
    }

    /// A call with these options is about to be queued (the Process backend starts its timeout
    /// watcher for a call with a timeout of its own).
    fn call_options(_queue: &CallQueue<Self>, _options: &CallOptions) {}

    /// `count` queued calls were cancelled and taken out of the queue (the lock is held).
    fn cancelled(queue: &CallQueue<Self>, count: usize);

    /// How many workers serve the block, which sizes `map`'s window.
    fn workers(queue: &CallQueue<Self>) -> usize;

    /// Every call has finished: stop what serves the block (the Process backend stops and reaps
    /// its workers; the Mpi backend keeps them for the next block).
    fn close(queue: &Arc<CallQueue<Self>>);
}

/// The pool of one `pool!(Process => ...)` or `pool!(Mpi => ...)` block.
#[doc(hidden)]
pub struct RemoteScope<B: RemoteBackend> {
    queue: Arc<CallQueue<B>>,
    cancel_on_early_exit: bool,
    joined: AtomicBool,
}

impl<B: RemoteBackend> RemoteScope<B> {
    /// Opens a pool; how soon workers start is the backend's (the Process backend starts them as
    /// calls are queued; the Mpi backend's outlive the block).
    pub fn new(options: PoolOptions) -> Self {
        let (backend, state, broken) = B::open(&options);
        let queue = Arc::new(CallQueue::new(backend, state, broken));
        B::opened(&queue);
        RemoteScope {
            queue,
            cancel_on_early_exit: options.cancels_on_early_exit(),
            joined: AtomicBool::new(false),
        }
    }

    /// The guard that joins this pool when the block ends.
    pub fn join_guard(&self) -> JoinGuard<'_, Self> {
        JoinGuard::new(self)
    }

    /// Queues a call; `submit(f, args...)` in a `pool!(Process => ...)` or `pool!(Mpi => ...)`
    /// block becomes this.
    pub fn submit<R>(&self, call: RemoteCall<R>) -> Future<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        self.submit_with(call, CallOptions::new())
    }

    /// Queues a call with options of its own; `submit(call(f).timeout(d), args...)` becomes this.
    pub fn submit_with<R>(&self, call: RemoteCall<R>, options: CallOptions) -> Future<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let stopper: Weak<dyn StopCall> = Arc::downgrade(&self.queue) as Weak<dyn StopCall>;
        B::call_options(&self.queue, &options);
        let (job, future, encode_error) = new_job(call, options, stopper);
        let job = Queued {
            job,
            claimed: false,
        };
        let mut state = self.queue.lock();
        state.submitted += 1;
        // A call that cannot be sent fails at once, without a worker.
        let unsendable = match (encode_error, &state.broken) {
            (Some(why), _) => Some(TaskError::Transport(why)),
            (None, Some(why)) => Some(TaskError::WorkerStart(why.clone())),
            (None, None) => None,
        };
        if let Some(error) = unsendable {
            drop(state);
            self.queue.fail(vec![job], &error);
            return future;
        }
        state.queue.push_back(job);
        let wake = B::queued(&self.queue, &mut state);
        drop(state);
        if let Some(wake) = wake {
            B::wake(&self.queue, wake);
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
    ) -> RemoteMap<'_, Self, I::IntoIter, T, R>
    where
        I: IntoIterator<Item = T>,
        T: serde::Serialize + DeserializeOwned + 'static,
        R: serde::Serialize + DeserializeOwned + Send + 'static,
    {
        let ahead = AHEAD_PER_WORKER * B::workers(&self.queue);
        RemoteMap::new(self, items.into_iter(), f, chunksize, ahead)
    }
}

impl<B: RemoteBackend> RemoteScope<B> {
    /// `map_unordered(f, items[, chunksize])` in a block becomes this: as `map`, with each result
    /// paired with its item (a clone kept here), chunk by chunk in the order the chunks finish.
    ///
    /// # Panics
    /// If `chunksize` is 0.
    pub fn map_unordered<I, T, R>(
        &self,
        f: fn(T) -> R,
        items: I,
        chunksize: usize,
    ) -> RemoteMapUnordered<'_, Self, I::IntoIter, T, R>
    where
        I: IntoIterator<Item = T>,
        T: Clone + serde::Serialize + DeserializeOwned + 'static,
        R: serde::Serialize + DeserializeOwned + Send + 'static,
    {
        let ahead = AHEAD_PER_WORKER * B::workers(&self.queue);
        RemoteMapUnordered::new(self, items.into_iter(), f, chunksize, ahead)
    }
}

impl<B: RemoteBackend> RemotePool for RemoteScope<B> {
    fn submit_remote<R>(&self, call: RemoteCall<R>) -> Future<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        self.submit(call)
    }
}

impl<B: RemoteBackend> Pool for RemoteScope<B> {
    fn cancels_on_early_exit(&self) -> bool {
        self.cancel_on_early_exit
    }

    /// Cancels the calls not yet sent to a worker (the block was left early).
    fn cancel_pending(&self) {
        let mut state = self.queue.lock();
        let queued = std::mem::take(&mut state.queue);
        let mut cancelled = 0;
        for entry in queued {
            if !entry.claimed && entry.job.job().cancel() {
                cancelled += 1;
            } else {
                state.queue.push_back(entry);
            }
        }
        state.finished += cancelled;
        B::cancelled(&self.queue, cancelled);
        drop(state);
        self.queue.changed.notify_all();
    }

    /// Waits for every call, then lets the backend stop what served the block. Returns the
    /// messages of panics whose futures were dropped unread.
    fn join(&self) -> Vec<Panic> {
        if self.joined.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        let mut state = self.queue.lock();
        while state.finished < state.submitted {
            state = self
                .queue
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(state);
        B::close(&self.queue);
        let panicked = std::mem::take(&mut self.queue.lock().panicked);
        panicked
            .iter()
            // SAFETY: every call is finished and each `RemoteJobRef` holds the queue reference.
            .filter_map(|job| unsafe { job.job().unread_panic() })
            .collect()
    }
}
