//! Waiting on many futures: [`wait`] and [`as_completed`], as in `concurrent.futures`.
//!
//! Both register one shared signal with every pending future (the future's task reports its index
//! there when it finishes), so a wait wakes once per finished task and never polls. Before either
//! blocks, a worker of the futures' own pool runs one of their tasks that has not started, as
//! `Future::result` does: a task that waits on tasks queued behind it in a full pool would
//! otherwise wait for ever.

use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::task::completion::{Signal, Waiter};
use crate::task::future::Future;

/// When [`wait`] returns.
///
/// The Python names are there too: [`FIRST_COMPLETED`], [`FIRST_EXCEPTION`], [`ALL_COMPLETED`].
///
/// ```
/// use concurrent_futures::{ReturnWhen, ALL_COMPLETED};
/// assert_eq!(ALL_COMPLETED, ReturnWhen::AllCompleted);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any future finishes (or is cancelled).
    FirstCompleted,
    /// As soon as any future finishes with an error (a panic, a dead worker, ...); if none does,
    /// when all have finished. A cancelled future does not count as an error here, as in Python.
    FirstException,
    /// When every future has finished.
    AllCompleted,
}

/// Python's `concurrent.futures.FIRST_COMPLETED`.
pub const FIRST_COMPLETED: ReturnWhen = ReturnWhen::FirstCompleted;
/// Python's `concurrent.futures.FIRST_EXCEPTION`.
pub const FIRST_EXCEPTION: ReturnWhen = ReturnWhen::FirstException;
/// Python's `concurrent.futures.ALL_COMPLETED`.
pub const ALL_COMPLETED: ReturnWhen = ReturnWhen::AllCompleted;

/// What [`wait`] and [`as_completed`] take: a [`Future`], or a future with a key of yours beside
/// it, `(key, future)`, which comes back with it: the input the task was given, a URL, an index.
/// Python's idiom is a dict from future to input; here the key travels with the future.
///
/// ```
/// use concurrent_futures::{as_completed, pool};
///
/// fn double(x: u64) -> u64 {
///     2 * x
/// }
///
/// let mut pairs = pool!(Thread => {
///     let keyed: Vec<_> = [3, 1, 2].into_iter().map(|x| (x, submit(double, x))).collect();
///     as_completed(keyed, None)
///         .map(|done| {
///             let (x, future) = done.unwrap();
///             (x, future.result().unwrap())
///         })
///         .collect::<Vec<_>>()
/// });
/// pairs.sort();
/// assert_eq!(pairs, [(1, 2), (2, 4), (3, 6)]);
/// ```
pub trait Waitable {
    /// What the future's task returns.
    type Output;

    /// The future to wait on.
    fn future(&self) -> &Future<Self::Output>;
}

impl<R> Waitable for Future<R> {
    type Output = R;

    fn future(&self) -> &Future<R> {
        self
    }
}

impl<K, R> Waitable for (K, Future<R>) {
    type Output = R;

    fn future(&self) -> &Future<R> {
        &self.1
    }
}

/// What [`wait`] gives back: the futures (or `(key, future)` pairs, see [`Waitable`]) that finished
/// and the ones that did not, each in the order they were given.
#[derive(Debug)]
pub struct Waited<F> {
    /// Finished: a value, an error, or cancelled.
    pub done: Vec<F>,
    /// Not finished when the wait returned.
    pub not_done: Vec<F>,
}

/// A wait that ran out of time.
///
/// ```
/// use std::time::Duration;
/// use concurrent_futures::WaitTimeout;
/// assert_eq!(
///     WaitTimeout(Duration::from_millis(50)).to_string(),
///     "the wait timed out after 50ms with futures still pending"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeout(pub Duration);

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the wait timed out after {:?} with futures still pending",
            self.0
        )
    }
}

impl std::error::Error for WaitTimeout {}

/// Waits until `futures` meet `when`, or `timeout` passes (`None`: no limit), and gives them back
/// split into finished and not finished. Python's `concurrent.futures.wait`. A timeout is not an
/// error here: the futures come back, some not done.
///
/// ```
/// use std::time::Duration;
/// use concurrent_futures::{pool, wait, FIRST_COMPLETED};
///
/// pool!(Thread(max_workers = 2) => {
///     let quick = submit(|| 1);
///     let slow = submit(|| { std::thread::sleep(Duration::from_millis(2000)); 2 });
///     let waited = wait(vec![slow, quick], FIRST_COMPLETED, None);
///     assert_eq!(waited.done.len(), 1);
///     assert_eq!(waited.not_done.len(), 1);
///     let first = waited.done.into_iter().next().unwrap();
///     assert_eq!(first.result(), Ok(1));
/// });
/// ```
pub fn wait<F: Waitable>(
    futures: impl IntoIterator<Item = F>,
    when: ReturnWhen,
    timeout: Option<Duration>,
) -> Waited<F> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let items: Vec<F> = futures.into_iter().collect();
    let futures: Vec<&Future<F::Output>> = items.iter().map(Waitable::future).collect();
    let signal = Signal::for_current_thread();
    for (index, future) in futures.iter().enumerate() {
        // Whether it registered or had already finished, the scan below sees the state.
        future
            .completion()
            .register(Waiter::Signal(Arc::clone(&signal), index));
    }
    loop {
        signal.take_finished();
        let finished = futures.iter().filter(|f| f.done()).count();
        let failed = when == ReturnWhen::FirstException
            && futures
                .iter()
                .any(|f| f.done() && !f.cancelled() && f.exception().is_some());
        let met = match when {
            ReturnWhen::FirstCompleted => finished > 0,
            ReturnWhen::FirstException => failed || finished == futures.len(),
            ReturnWhen::AllCompleted => finished == futures.len(),
        };
        if met || futures.is_empty() {
            break;
        }
        if futures.iter().any(|f| f.run_here_if_pending()) {
            continue; // ran one here: look again before blocking
        }
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                thread::park_timeout(deadline - now);
            }
        }
    }
    let (done, not_done) = items.into_iter().partition(|f| f.future().done());
    Waited { done, not_done }
}

/// Yields `futures` as they finish, in the order they finish (those already finished first, in
/// the order given). Python's `concurrent.futures.as_completed`.
///
/// With a `timeout`, measured from this call: when it passes with futures still pending, the
/// iterator yields one `Err(WaitTimeout)` and ends; the pending futures are dropped with it (their
/// tasks still run, and the block still waits for them), or can be taken back with
/// [`AsCompleted::into_pending`].
///
/// ```
/// use std::time::Duration;
/// use concurrent_futures::{as_completed, pool};
///
/// let order = pool!(Thread(max_workers = 3) => {
///     let futures: Vec<_> = [600u64, 10, 300]
///         .into_iter()
///         .map(|ms| submit(move || { std::thread::sleep(Duration::from_millis(ms)); ms }))
///         .collect();
///     as_completed(futures, None)
///         .map(|f| f.unwrap().result().unwrap())
///         .collect::<Vec<_>>()
/// });
/// assert_eq!(order, [10, 300, 600]);
/// ```
pub fn as_completed<F: Waitable>(
    futures: impl IntoIterator<Item = F>,
    timeout: Option<Duration>,
) -> AsCompleted<F> {
    let mut set = AsCompleted {
        remaining: 0,
        futures: Vec::new(),
        signal: Signal::for_current_thread(),
        ready: Vec::new(),
        deadline: timeout.map(|t| (Instant::now() + t, t)),
        ended: false,
    };
    for future in futures {
        let index = set.futures.len();
        if !set.register(&future, index) {
            set.ready.push(index);
        }
        set.futures.push(Some(future));
    }
    set.remaining = set.futures.len();
    set.ready.reverse(); // popped from the back: keep the given order
    set
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<F> {
    futures: Vec<Option<F>>,
    remaining: usize,
    signal: Arc<Signal>,
    /// Indices of finished futures not yielded yet, next at the back.
    ready: Vec<usize>,
    deadline: Option<(Instant, Duration)>,
    ended: bool,
}

impl<F: Waitable> AsCompleted<F> {
    /// Adds a future to those being waited on (`map_unordered` keeps its window full this way).
    /// One that has already finished comes out after those already waiting to come out.
    pub(crate) fn push(&mut self, item: F) {
        let index = self.futures.len();
        if !self.register(&item, index) {
            // Finished already: in line after those found finished before it (a window's worth
            // of indices at most, so the shift costs nothing).
            self.ready.insert(0, index);
        }
        self.futures.push(Some(item));
        self.remaining += 1;
    }

    /// Asks `item`'s future to report to this set's signal as `index`; `false` if it has already
    /// finished (and will not report).
    fn register(&self, item: &F, index: usize) -> bool {
        item.future()
            .completion()
            .register(Waiter::Signal(Arc::clone(&self.signal), index))
    }

    /// How many futures have not come out yet.
    pub(crate) fn len(&self) -> usize {
        self.remaining
    }

    /// The futures not yielded yet, in the order given.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures::{as_completed, pool};
    ///
    /// pool!(Thread(max_workers = 1) => {
    ///     let slow = submit(|| std::thread::sleep(Duration::from_millis(200)));
    ///     let mut finished = as_completed(vec![slow], Some(Duration::from_millis(1)));
    ///     assert!(finished.next().unwrap().is_err()); // timed out
    ///     let pending = finished.into_pending();
    ///     assert_eq!(pending.len(), 1);
    ///     pending.into_iter().for_each(|f| f.result().unwrap());
    /// });
    /// ```
    pub fn into_pending(self) -> Vec<F> {
        self.futures.into_iter().flatten().collect()
    }
}

impl<F: Waitable> Iterator for AsCompleted<F> {
    type Item = Result<F, WaitTimeout>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended || self.remaining == 0 {
            return None;
        }
        loop {
            let mut finished = self.signal.take_finished();
            finished.reverse();
            finished.append(&mut self.ready);
            self.ready = finished;
            while let Some(index) = self.ready.pop() {
                if let Some(future) = self.futures[index].take() {
                    self.remaining -= 1;
                    return Some(Ok(future));
                }
            }
            if self
                .futures
                .iter()
                .flatten()
                .any(|f| f.future().run_here_if_pending())
            {
                continue; // ran one here: its signal is waiting
            }
            match self.deadline {
                None => thread::park(),
                Some((deadline, timeout)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        self.ended = true;
                        return Some(Err(WaitTimeout(timeout)));
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
    }
}

impl<F> fmt::Debug for AsCompleted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}
