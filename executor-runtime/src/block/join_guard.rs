//! The guard that ends a `pool!` block: it joins the pool however the block is left.
//!
//! Both backends use the same guard over their own [`Pool`]. Leaving the block normally calls
//! [`JoinGuard::finish`]; leaving it early (`?`, `return`, `break`, a panic) drops the guard,
//! which first cancels the tasks not yet started if the block says `cancel_futures = true`. Either way it
//! waits for every task and reports panics nobody read, as `std::thread::scope` does.

use std::thread;

use crate::task::error::Panic;

/// What a guard needs from a pool.
#[doc(hidden)]
pub trait Pool {
    /// Whether an early exit cancels the tasks not started (`cancel_futures`).
    fn cancels_on_early_exit(&self) -> bool;

    /// Cancels the tasks not started.
    fn cancel_pending(&self);

    /// Waits for every task, then stops and joins the workers; gives the panics whose futures
    /// were dropped unread. Joins once; later calls return at once.
    fn join(&self) -> Vec<Panic>;
}

/// Joins the pool when dropped: at the end of the block, however it is left.
///
/// It holds `&'a P`, and its `Drop` uses it, so the borrow checker keeps everything `P` borrows
/// alive until the join: for the Thread backend that is what rejects tasks that borrow locals
/// declared inside the block.
#[doc(hidden)]
pub struct JoinGuard<'a, P: Pool + ?Sized> {
    pool: &'a P,
}

impl<'a, P: Pool + ?Sized> JoinGuard<'a, P> {
    pub(crate) fn new(pool: &'a P) -> Self {
        JoinGuard { pool }
    }

    /// Waits for every task, stops the workers and reports panics nobody read. Called when the
    /// block's body finishes normally; leaving it any other way runs the same join in `Drop`.
    ///
    /// # Panics
    /// If a task panicked and its future was dropped without its result being read: like
    /// `std::thread::scope`, a failure nobody looked at is not silently lost.
    pub fn finish(&self) {
        report_unread_panics(&self.pool.join(), Exit::Normal);
    }
}

impl<P: Pool + ?Sized> Drop for JoinGuard<'_, P> {
    /// Leaving the block early still waits for every task (after cancelling the ones not started,
    /// by default).
    fn drop(&mut self) {
        if self.pool.cancels_on_early_exit() {
            self.pool.cancel_pending();
        }
        report_unread_panics(&self.pool.join(), Exit::Early);
    }
}

/// How a block was left, for [`report_unread_panics`].
enum Exit {
    /// The body finished: the block's guard `finish`es.
    Normal,
    /// `?`, `return`, `break` or a panic: the guard is dropped.
    Early,
}

/// Reports panics whose futures were dropped unread, as `std::thread::scope` does: a panic when the
/// block finishes normally; a warning on stderr when it is left early (a second panic while one is
/// on its way out would abort), and nothing while unwinding from a panic.
fn report_unread_panics(panics: &[Panic], exit: Exit) {
    let Some(first) = panics.first() else {
        return;
    };
    // The message, and where: "boom (at src/main.rs:12:5)".
    let first = first.summary();
    let more = match panics.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    let report = format!(
        "a task in a pool! block panicked and its future was dropped without reading the result: {first}{more}"
    );
    match exit {
        Exit::Normal => panic!("{report}"),
        Exit::Early if !thread::panicking() => eprintln!("warning: {report}"),
        Exit::Early => {}
    }
}
