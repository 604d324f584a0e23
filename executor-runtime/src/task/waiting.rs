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
/// use executor::{ReturnWhen, ALL_COMPLETED};
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

/// What [`wait`] gives back: the futures that finished and the ones that did not, each in the order
/// they were given.
#[derive(Debug)]
pub struct Waited<R> {
    /// Finished: a value, an error, or cancelled.
    pub done: Vec<Future<R>>,
    /// Not finished when the wait returned.
    pub not_done: Vec<Future<R>>,
}

/// A wait that ran out of time.
///
/// ```
/// use std::time::Duration;
/// use executor::WaitTimeout;
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
/// use executor::{pool, wait, FIRST_COMPLETED};
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
pub fn wait<R>(
    futures: impl IntoIterator<Item = Future<R>>,
    when: ReturnWhen,
    timeout: Option<Duration>,
) -> Waited<R> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let futures: Vec<Future<R>> = futures.into_iter().collect();
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
        if futures.iter().any(Future::run_here_if_pending) {
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
    let (done, not_done) = futures.into_iter().partition(|f| f.done());
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
/// use executor::{as_completed, pool};
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
pub fn as_completed<R>(
    futures: impl IntoIterator<Item = Future<R>>,
    timeout: Option<Duration>,
) -> AsCompleted<R> {
    let deadline = timeout.map(|t| (Instant::now() + t, t));
    let futures: Vec<Option<Future<R>>> = futures.into_iter().map(Some).collect();
    let signal = Signal::for_current_thread();
    let mut ready = Vec::new();
    for (index, future) in futures.iter().enumerate() {
        let future = future.as_ref().expect("all present");
        if !future
            .completion()
            .register(Waiter::Signal(Arc::clone(&signal), index))
        {
            ready.push(index);
        }
    }
    ready.reverse(); // popped from the back: keep the given order
    AsCompleted {
        remaining: futures.len(),
        futures,
        signal,
        ready,
        deadline,
        ended: false,
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<R> {
    futures: Vec<Option<Future<R>>>,
    remaining: usize,
    signal: Arc<Signal>,
    /// Indices of finished futures not yielded yet, next at the back.
    ready: Vec<usize>,
    deadline: Option<(Instant, Duration)>,
    ended: bool,
}

impl<R> AsCompleted<R> {
    /// The futures not yielded yet, in the order given.
    ///
    /// ```
    /// use std::time::Duration;
    /// use executor::{as_completed, pool};
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
    pub fn into_pending(self) -> Vec<Future<R>> {
        self.futures.into_iter().flatten().collect()
    }
}

impl<R> Iterator for AsCompleted<R> {
    type Item = Result<Future<R>, WaitTimeout>;

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
                .any(Future::run_here_if_pending)
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

impl<R> fmt::Debug for AsCompleted<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}
