//! `map(f, items)` inside a block: results in input order, computed ahead within a bound.
//!
//! A map keeps at most `ahead` tasks (Thread) or chunks (Process) in flight, so mapping over a
//! long or endless iterator holds only that much in memory; it starts work as soon as it is
//! created and tops the window up as results are taken. On Process, items travel in chunks of
//! `chunksize`, one round trip per chunk, so tiny items do not pay a round trip each.

use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::TaskError;
use crate::future::Future;
use crate::remote::{self, RemoteCall};
use crate::thread_pool::ThreadScope;

/// How many tasks (Thread) or chunks (Process) a map keeps in flight per worker. Enough that the
/// reader rarely waits for a worker, and a worker rarely waits for the reader (with one or two per
/// worker, tiny items cost a wake-up each); bounded, so
/// an endless input holds a fixed amount of memory.
pub(crate) const AHEAD_PER_WORKER: usize = 32;

/// The results of `map(f, items)` on the Thread backend, in input order.
pub struct ThreadMap<'scope, I, F, R> {
    scope: &'scope ThreadScope<'scope>,
    items: I,
    f: F,
    in_flight: VecDeque<Future<R>>,
}

impl<'scope, I, F, R> ThreadMap<'scope, I, F, R>
where
    I: Iterator,
    I::Item: Send + 'scope,
    F: Fn(I::Item) -> R + Clone + Send + 'scope,
    R: Send + 'scope,
{
    pub(crate) fn new(scope: &'scope ThreadScope<'scope>, items: I, f: F) -> Self {
        let mut map = ThreadMap {
            scope,
            items,
            f,
            in_flight: VecDeque::new(),
        };
        map.top_up();
        map
    }

    fn top_up(&mut self) {
        // Asked each time: an Auto pool's worker count, and so its window, changes as it runs.
        let ahead = self.scope.map_ahead();
        while self.in_flight.len() < ahead {
            let Some(item) = self.items.next() else {
                break;
            };
            let f = self.f.clone();
            self.in_flight.push_back(self.scope.submit(move || f(item)));
        }
    }
}

impl<'scope, I, F, R> Iterator for ThreadMap<'scope, I, F, R>
where
    I: Iterator,
    I::Item: Send + 'scope,
    F: Fn(I::Item) -> R + Clone + Send + 'scope,
    R: Send + 'scope,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.in_flight.pop_front()?;
        self.top_up();
        Some(next.result())
    }
}

/// A chunk's results: one per item, a panic message for an item that panicked.
type ChunkFuture<R> = Future<Vec<Result<R, String>>>;

/// A pool whose calls run in other processes (Process, Mpi): what `map` needs from it.
#[doc(hidden)]
pub trait RemotePool {
    /// Queues a call, as `submit` does.
    fn submit_remote<R>(&self, call: RemoteCall<R>) -> Future<R>
    where
        R: DeserializeOwned + Send + 'static;
}

/// The results of `map(f, items, chunksize)` on the Process and Mpi backends, in input order.
pub struct ProcessMap<'p, P, I, T, R> {
    scope: &'p P,
    items: I,
    f: fn(T) -> R,
    chunksize: usize,
    /// Each chunk's future, and how many items it holds.
    in_flight: VecDeque<(ChunkFuture<R>, usize)>,
    ready: std::vec::IntoIter<Result<R, TaskError>>,
    ahead: usize,
}

impl<'p, P, I, T, R> ProcessMap<'p, P, I, T, R>
where
    P: RemotePool,
    I: Iterator<Item = T>,
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(
        scope: &'p P,
        items: I,
        f: fn(T) -> R,
        chunksize: usize,
        ahead: usize,
    ) -> Self {
        assert!(chunksize > 0, "map: `chunksize` must be at least 1, got 0");
        let mut map = ProcessMap {
            scope,
            items,
            f,
            chunksize,
            in_flight: VecDeque::new(),
            ready: Vec::new().into_iter(),
            ahead: ahead.max(1),
        };
        map.top_up();
        map
    }

    fn top_up(&mut self) {
        while self.in_flight.len() < self.ahead {
            let chunk: Vec<T> = self.items.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            let call = remote::chunk_call(self.f, chunk);
            self.in_flight
                .push_back((self.scope.submit_remote(call), len));
        }
    }
}

impl<P, I, T, R> Iterator for ProcessMap<'_, P, I, T, R>
where
    P: RemotePool,
    I: Iterator<Item = T>,
    T: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(result) = self.ready.next() {
                return Some(result);
            }
            let (chunk, len) = self.in_flight.pop_front()?;
            self.top_up();
            let results: Vec<Result<R, TaskError>> = match chunk.result() {
                Ok(items) => items
                    .into_iter()
                    .map(|item| item.map_err(TaskError::Panicked))
                    .collect(),
                // The whole chunk failed (its worker died, or it could not cross): each of its
                // items gets the error, so the results stay aligned with the input.
                Err(error) => (0..len).map(|_| Err(error.clone())).collect(),
            };
            self.ready = results.into_iter();
        }
    }
}
