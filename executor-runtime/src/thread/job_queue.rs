//! The queue between a pool's submitters and its workers.
//!
//! Most submissions come from one thread, the one running the `pool!` block. That thread pushes on
//! a FIFO ring buffer it owns ([`crossbeam_deque::Worker`]) and workers steal from its front; any
//! other thread (a task that submits more work) pushes on a shared [`Injector`].
//!
//! Why not the injector alone: it stores jobs in linked blocks that are allocated by the pushing
//! thread and freed by the popping one. Under glibc's allocator a free from another thread takes the
//! owner's arena lock, which the submitting thread holds on every task allocation, and on a 2-core
//! machine that contention cost about 40% of the per-task time of 20,000 tiny tasks. The ring
//! buffer reuses its slots, so the submitting thread is the only one that allocates or frees.
//!
//! Workers take the owner's jobs in batches: a worker that finds its own batch empty takes about
//! half of the owner's ring (at most 32 jobs) in one step, runs the first and moves the rest into a
//! deque of its own, from which it takes them without touching the shared ring. Stealing each job
//! from the ring on its own made the two workers and the submitting thread contend for the ring's
//! ends on every job: 20,000 tiny tasks back to back cost 0.093–0.097 µs a task with single steals
//! and 0.044–0.058 with batches, and half the CPU time (2-vCPU Intel Xeon VM, the two builds
//! alternating, medians of 100 blocks, four pairs). A worker's batch stays in reach of the others:
//! one with nothing of its own, in the ring or in the injector takes half of another's batch, so a
//! batch never waits behind a long task while a worker is idle, and the queue counts as empty only
//! when every batch is.
//!
//! The queue counts the jobs pushed, for the pool's join and its idle workers. The owner's count
//! is written by the owner alone, with a plain store: a locked add on every push was a full
//! fence, which on the 2-vCPU AMD EPYC VM made the submitting thread wait for its earlier stores
//! to reach the workers' cores (see `asymmetric_fence`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;

/// A multi-producer, multi-consumer queue with a fast path for one owning producer: FIFO from each
/// producer, except that a job in a worker's batch may run after newer ones from the ring (another
/// worker takes from a batch only once the rings are empty).
pub(crate) struct JobQueue<T> {
    owner: OwnerOnly<Worker<T>>,
    from_owner: Stealer<T>,
    from_others: Injector<T>,
    /// Each batching worker's own deque, as the others see it: one slot per worker index, set
    /// when the worker starts.
    batches: Box<[OnceLock<Stealer<T>>]>,
    /// Steals from a worker's batch that took at least one job.
    #[cfg(test)]
    taken_from_batches: AtomicUsize,
    /// Jobs the owner pushed; written only by the owner.
    pushed_by_owner: CachePadded<AtomicUsize>,
    /// Jobs the other threads pushed.
    pushed_by_others: CachePadded<AtomicUsize>,
}

/// Which way a job went in: from the queue's owner, or from another thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pusher {
    Owner,
    Other,
}

impl<T> JobQueue<T> {
    /// A queue owned by the calling thread, whose workers of index below `batching` take jobs in
    /// batches (see [`JobQueue::batch_for`]).
    pub(crate) fn new(batching: usize) -> Self {
        let owner = Worker::new_fifo();
        let from_owner = owner.stealer();
        JobQueue {
            owner: OwnerOnly::new(owner),
            from_owner,
            from_others: Injector::new(),
            batches: (0..batching).map(|_| OnceLock::new()).collect(),
            #[cfg(test)]
            taken_from_batches: AtomicUsize::new(0),
            pushed_by_owner: CachePadded::new(AtomicUsize::new(0)),
            pushed_by_others: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Pushes `job`, counted first (so that a job is never taken before it is counted), and says
    /// who pushed it. Another thread's count is a sequentially consistent add; the owner's, a
    /// release store.
    pub(crate) fn push(&self, job: T) -> Pusher {
        match self.owner.get() {
            Some(ring) => {
                let count = &self.pushed_by_owner;
                count.store(count.load(Ordering::Relaxed) + 1, Ordering::Release);
                ring.push(job);
                Pusher::Owner
            }
            None => {
                self.pushed_by_others.fetch_add(1, Ordering::SeqCst);
                self.from_others.push(job);
                Pusher::Other
            }
        }
    }

    /// Jobs pushed so far, as the caller can know them: the owner sees all of its own pushes;
    /// another thread sees a push once it has synchronised with the pusher after it returned
    /// (a worker's look may be a little behind, which only its idle rounds read).
    pub(crate) fn pushed(&self) -> usize {
        self.pushed_by_owner.load(Ordering::Acquire) + self.pushed_by_others.load(Ordering::SeqCst)
    }

    /// The deque of the worker of index `index` for the batches it takes, registered so that the
    /// others can take from it; `None` if that worker does not batch (an index past the queue's
    /// `batching`, or one already given out).
    pub(crate) fn batch_for(&self, index: usize) -> Option<Worker<T>> {
        let slot = self.batches.get(index)?;
        let batch = Worker::new_fifo();
        slot.set(batch.stealer()).ok()?;
        Some(batch)
    }

    /// Takes a job for a worker that batches: from its own `batch`, else a batch of the owner's
    /// oldest (returning the first), else one of the others', else half of another worker's
    /// batch. Also says whether it moved jobs into `batch`, which an idle worker could take.
    pub(crate) fn pop_for(&self, batch: &Worker<T>) -> (Option<T>, bool) {
        if let Some(job) = batch.pop() {
            return (Some(job), false);
        }
        self.take(Some(batch))
    }

    /// Takes the oldest job of the owner's, or else of the others', or else one from a worker's
    /// batch (for a worker that does not batch, and for the block cancelling what is queued).
    pub(crate) fn pop(&self) -> Option<T> {
        self.take(None).0
    }

    /// `pop` and `pop_for`: with `into`, a steal from the owner's ring or another worker's batch
    /// moves about half of it into `into`, and the second value says whether `into` kept any.
    fn take(&self, into: Option<&Worker<T>>) -> (Option<T>, bool) {
        let kept = || into.is_some_and(|into| !into.is_empty());
        loop {
            let from_owner = steal(&self.from_owner, into);
            if let Steal::Success(job) = from_owner {
                return (Some(job), kept());
            }
            let from_others = self.from_others.steal();
            if let Steal::Success(job) = from_others {
                return (Some(job), false);
            }
            let from_batches = self.steal_from_batches(into);
            if let Steal::Success(job) = from_batches {
                return (Some(job), kept());
            }
            if from_owner.is_empty() && from_others.is_empty() && from_batches.is_empty() {
                return (None, false);
            }
        }
    }

    /// One job from the workers' batches (with `into`, half of a batch moved there); `Retry` if a
    /// batch was being taken from at the same time.
    fn steal_from_batches(&self, into: Option<&Worker<T>>) -> Steal<T> {
        let mut retry = false;
        for stealer in self.batches.iter().filter_map(OnceLock::get) {
            match steal(stealer, into) {
                Steal::Success(job) => {
                    #[cfg(test)]
                    self.taken_from_batches.fetch_add(1, Ordering::Relaxed);
                    return Steal::Success(job);
                }
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
        if retry {
            Steal::Retry
        } else {
            Steal::Empty
        }
    }

    /// How many times a job was taken from a worker's batch by another thread.
    #[cfg(test)]
    pub(crate) fn taken_from_batches(&self) -> usize {
        self.taken_from_batches.load(Ordering::Relaxed)
    }

    /// How many jobs are queued, in the rings and in the workers' batches (a snapshot).
    pub(crate) fn len(&self) -> usize {
        let batched: usize = self
            .batches
            .iter()
            .filter_map(OnceLock::get)
            .map(Stealer::len)
            .sum();
        self.from_owner.len() + self.from_others.len() + batched
    }

    /// Whether no job is queued, in the rings or in any worker's batch (a snapshot).
    pub(crate) fn is_empty(&self) -> bool {
        self.from_owner.is_empty()
            && self.from_others.is_empty()
            && self
                .batches
                .iter()
                .filter_map(OnceLock::get)
                .all(Stealer::is_empty)
    }
}

/// One job from `from`; with `into`, about half of `from`'s jobs taken at once, the rest moved
/// into `into`.
fn steal<T>(from: &Stealer<T>, into: Option<&Worker<T>>) -> Steal<T> {
    match into {
        Some(into) => from.steal_batch_and_pop(into),
        None => from.steal(),
    }
}

/// A value that only the thread that created it may touch, checked at run time.
struct OwnerOnly<T> {
    owner: u64,
    value: T,
}

// SAFETY: `get` hands out `&T` only on the thread whose key is `owner`, the thread that created the
// value; keys are never reused (a 64-bit counter), so no other thread ever obtains a reference, and
// sharing `&OwnerOnly<T>` between threads shares nothing of `T`. Moving the value to another thread
// (which needs `T: Send`, required here) only makes `get` return `None` everywhere.
unsafe impl<T: Send> Sync for OwnerOnly<T> {}

impl<T> OwnerOnly<T> {
    fn new(value: T) -> Self {
        OwnerOnly {
            owner: thread_key(),
            value,
        }
    }

    fn get(&self) -> Option<&T> {
        (thread_key() == self.owner).then_some(&self.value)
    }
}

/// A number that identifies the calling thread for the life of the process.
fn thread_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static KEY: Cell<u64> = const { Cell::new(0) };
    }
    KEY.with(|key| match key.get() {
        0 => {
            let fresh = NEXT.fetch_add(1, Ordering::Relaxed);
            key.set(fresh);
            fresh
        }
        known => known,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pushes_come_out_in_order() {
        let queue = JobQueue::new(0);
        for i in 0..1000 {
            queue.push(i);
        }
        let popped: Vec<i32> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(popped, (0..1000).collect::<Vec<_>>());
        assert!(queue.is_empty());
        assert_eq!(queue.pushed(), 1000);
    }

    #[test]
    fn pushes_from_other_threads_are_not_lost() {
        let queue = JobQueue::new(0);
        assert_eq!(queue.push(0), Pusher::Owner);
        std::thread::scope(|s| {
            for t in 1..=4 {
                let queue = &queue;
                s.spawn(move || {
                    for i in 0..100 {
                        assert_eq!(queue.push(t * 1000 + i), Pusher::Other);
                    }
                });
            }
        });
        assert_eq!(queue.pushed(), 401);
        let mut popped: Vec<i32> = std::iter::from_fn(|| queue.pop()).collect();
        popped.sort_unstable();
        let mut expected: Vec<i32> = (1..=4)
            .flat_map(|t| (0..100).map(move |i| t * 1000 + i))
            .collect();
        expected.push(0);
        expected.sort_unstable();
        assert_eq!(popped, expected);
    }

    #[test]
    fn only_the_creating_thread_is_the_owner() {
        let value = OwnerOnly::new(5);
        assert_eq!(value.get(), Some(&5));
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(value.get(), None));
        });
    }
}
