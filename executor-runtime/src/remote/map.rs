//! `map(f, items, chunksize)` inside a block whose calls run in other processes (Process, Mpi):
//! results in input order, items sent in chunks of `chunksize`, one round trip per chunk, so tiny
//! items do not pay a round trip each; at most `AHEAD_PER_WORKER` chunks per worker in flight (see
//! `crate::block::map`); and `map_unordered(f, items, chunksize)`, the same chunks with each
//! result paired with its input, chunk by chunk in the order the chunks finish.

use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::remote::call::{self, RemoteCall, WirePanic};
use crate::task::error::TaskError;
use crate::task::future::Future;
use crate::task::waiting::{as_completed, AsCompleted};

/// A chunk's results: one per item, the panic (message, location, backtrace) of an item that
/// panicked.
type ChunkFuture<R> = Future<Vec<Result<R, WirePanic>>>;

/// A pool whose calls run in other processes (Process, Mpi): what `map` needs from it.
#[doc(hidden)]
pub trait RemotePool {
    /// Queues a call, as `submit` does.
    fn submit_remote<R>(&self, call: RemoteCall<R>) -> Future<R>
    where
        R: DeserializeOwned + Send + 'static;
}

/// The results of `map(f, items, chunksize)` on the Process and Mpi backends, in input order.
pub struct RemoteMap<'p, P, I, T, R> {
    scope: &'p P,
    items: I,
    f: fn(T) -> R,
    chunksize: usize,
    /// Each chunk's future, and how many items it holds.
    in_flight: VecDeque<(ChunkFuture<R>, usize)>,
    ready: std::vec::IntoIter<Result<R, TaskError>>,
    ahead: usize,
}

impl<'p, P, I, T, R> RemoteMap<'p, P, I, T, R>
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
        let mut map = RemoteMap {
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
            let call = call::chunk_call(self.f, chunk);
            self.in_flight
                .push_back((self.scope.submit_remote(call), len));
        }
    }
}

impl<P, I, T, R> Iterator for RemoteMap<'_, P, I, T, R>
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
            self.ready = chunk_results(chunk, len).into_iter();
        }
    }
}

/// A chunk's results, one per item: a panic in an item fails that item; when the whole chunk
/// failed (its worker died, or it could not cross), each of its items gets the error, so the
/// results stay aligned with the input.
fn chunk_results<R>(chunk: ChunkFuture<R>, len: usize) -> Vec<Result<R, TaskError>> {
    match chunk.result() {
        Ok(items) => items
            .into_iter()
            .map(|item| item.map_err(|panic| TaskError::Panicked(panic.into_panic())))
            .collect(),
        Err(error) => (0..len).map(|_| Err(error.clone())).collect(),
    }
}

/// The results of `map_unordered(f, items, chunksize)` on the Process and Mpi backends: `(item,
/// result)`, chunk by chunk in the order the chunks finish, each chunk's items in input order.
pub struct RemoteMapUnordered<'p, P, I, T, R> {
    scope: &'p P,
    items: I,
    f: fn(T) -> R,
    chunksize: usize,
    /// Each chunk's items (clones kept for the answer) and future.
    in_flight: AsCompleted<(Vec<T>, ChunkFuture<R>)>,
    ready: std::iter::Zip<std::vec::IntoIter<T>, std::vec::IntoIter<Result<R, TaskError>>>,
    ahead: usize,
}

impl<'p, P, I, T, R> RemoteMapUnordered<'p, P, I, T, R>
where
    P: RemotePool,
    I: Iterator<Item = T>,
    T: Clone + Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(
        scope: &'p P,
        items: I,
        f: fn(T) -> R,
        chunksize: usize,
        ahead: usize,
    ) -> Self {
        assert!(
            chunksize > 0,
            "map_unordered: `chunksize` must be at least 1, got 0"
        );
        let mut map = RemoteMapUnordered {
            scope,
            items,
            f,
            chunksize,
            in_flight: as_completed(Vec::new(), None),
            ready: Vec::new().into_iter().zip(Vec::new()),
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
            let call = call::chunk_call(self.f, chunk.clone());
            let future = self.scope.submit_remote(call);
            self.in_flight.push((chunk, future));
        }
    }
}

impl<P, I, T, R> Iterator for RemoteMapUnordered<'_, P, I, T, R>
where
    P: RemotePool,
    I: Iterator<Item = T>,
    T: Clone + Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    type Item = (T, Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(pair) = self.ready.next() {
                return Some(pair);
            }
            let (inputs, chunk) = self
                .in_flight
                .next()?
                .expect("a wait without a timeout does not time out");
            self.top_up();
            let results = chunk_results(chunk, inputs.len());
            self.ready = inputs.into_iter().zip(results);
        }
    }
}
