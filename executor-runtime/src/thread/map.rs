//! `map(f, items)` inside a Thread or Auto block: one task per item, results in input order,
//! at most `AHEAD_PER_WORKER` tasks per worker in flight (see `crate::block::map`); and
//! `map_unordered(f, items)`, the same work with each result paired with its input, in the order
//! the tasks finish.

use std::collections::VecDeque;

use crate::task::error::TaskError;
use crate::task::future::Future;
use crate::task::waiting::{as_completed, AsCompleted};
use crate::thread::pool::ThreadScope;

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

/// The results of `map_unordered(f, items)` on the Thread backend: `(item, result)` in the order
/// the tasks finish.
pub struct ThreadMapUnordered<'scope, I: Iterator, F, R> {
    scope: &'scope ThreadScope<'scope>,
    items: I,
    f: F,
    in_flight: AsCompleted<(I::Item, Future<R>)>,
}

impl<'scope, I, F, R> ThreadMapUnordered<'scope, I, F, R>
where
    I: Iterator,
    I::Item: Clone + Send + 'scope,
    F: Fn(I::Item) -> R + Clone + Send + 'scope,
    R: Send + 'scope,
{
    pub(crate) fn new(scope: &'scope ThreadScope<'scope>, items: I, f: F) -> Self {
        let mut map = ThreadMapUnordered {
            scope,
            items,
            f,
            in_flight: as_completed(Vec::new(), None),
        };
        map.top_up();
        map
    }

    fn top_up(&mut self) {
        let ahead = self.scope.map_ahead();
        while self.in_flight.len() < ahead {
            let Some(item) = self.items.next() else {
                break;
            };
            let f = self.f.clone();
            let input = item.clone();
            let future = self.scope.submit(move || f(item));
            self.in_flight.push((input, future));
        }
    }
}

impl<'scope, I, F, R> Iterator for ThreadMapUnordered<'scope, I, F, R>
where
    I: Iterator,
    I::Item: Clone + Send + 'scope,
    F: Fn(I::Item) -> R + Clone + Send + 'scope,
    R: Send + 'scope,
{
    type Item = (I::Item, Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        let (input, future) = self
            .in_flight
            .next()?
            .expect("a wait without a timeout does not time out");
        self.top_up();
        Some((input, future.result()))
    }
}
