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
//! The queue counts the jobs pushed, for the pool's join and its idle workers. The owner's count
//! is written by the owner alone, with a plain store: a locked add on every push was a full
//! fence, which on the 2-vCPU AMD EPYC VM made the submitting thread wait for its earlier stores
//! to reach the workers' cores (see `asymmetric_fence`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;

/// A multi-producer, multi-consumer FIFO queue with a fast path for one owning producer.
pub(crate) struct JobQueue<T> {
    owner: OwnerOnly<Worker<T>>,
    from_owner: Stealer<T>,
    from_others: Injector<T>,
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
    /// A queue owned by the calling thread.
    pub(crate) fn new() -> Self {
        let owner = Worker::new_fifo();
        let from_owner = owner.stealer();
        JobQueue {
            owner: OwnerOnly::new(owner),
            from_owner,
            from_others: Injector::new(),
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

    /// Takes the oldest job of the owner's, or else of the others'.
    pub(crate) fn pop(&self) -> Option<T> {
        loop {
            let from_owner = self.from_owner.steal();
            if let Steal::Success(job) = from_owner {
                return Some(job);
            }
            let from_others = self.from_others.steal();
            if let Steal::Success(job) = from_others {
                return Some(job);
            }
            if from_owner.is_empty() && from_others.is_empty() {
                return None;
            }
        }
    }

    /// How many jobs are queued (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.from_owner.len() + self.from_others.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.from_owner.is_empty() && self.from_others.is_empty()
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
        let queue = JobQueue::new();
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
        let queue = JobQueue::new();
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
