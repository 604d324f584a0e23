//! Cooperative stopping, for the backends that cannot kill a running call (Thread and Auto):
//! [`Future::stop`](crate::Future::stop) raises the task's flag, and the task reads it with
//! [`stop_requested`] while it runs.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// The stop flag of the task running on this thread, if any (null otherwise).
    static RUNNING_FLAG: Cell<*const AtomicBool> = const { Cell::new(ptr::null()) };
}

/// Whether the caller of the task running on this thread asked it to stop
/// ([`Future::stop`](crate::Future::stop)); `false` outside a task.
///
/// A Thread (or Auto) worker is a thread of the calling process, which cannot be killed on its
/// own: `stop()` on a running call only raises this flag, and the call decides when to return
/// (its value is then its result, as usual). A long task checks it between steps. On Process
/// and Mpi workers it is always `false`: there `stop()` kills the worker (Process) or cannot
/// reach a running call (Mpi).
///
/// ```
/// use std::sync::mpsc;
/// use concurrent_futures::{pool, stop_requested};
///
/// let (started_tx, started_rx) = mpsc::channel();
/// let rounds = pool!(Thread => {
///     let f = submit(move || {
///         started_tx.send(()).unwrap();
///         let mut rounds = 0_u64;
///         while !stop_requested() {
///             rounds += 1;
///             std::thread::yield_now();
///         }
///         rounds
///     });
///     started_rx.recv().unwrap();
///     assert!(!f.stop()); // running: not stopped by force, only asked
///     f.result().unwrap()
/// });
/// assert!(rounds < u64::MAX);
/// assert!(!stop_requested()); // outside a task
/// ```
pub fn stop_requested() -> bool {
    RUNNING_FLAG.with(|flag| {
        let flag = flag.get();
        // SAFETY: a non-null pointer was set by `with_stop_flag`, which clears it (restores the
        // previous one) before the flag it points to can go away: the flag outlives that call.
        !flag.is_null() && unsafe { (*flag).load(Ordering::Acquire) }
    })
}

/// Runs `f` (a task) with `flag` as the flag [`stop_requested`] reads on this thread, then restores
/// the previous one (a task that runs another inline, waiting on it, gets it back afterwards).
pub(crate) fn with_stop_flag<T>(flag: &AtomicBool, f: impl FnOnce() -> T) -> T {
    struct Restore(*const AtomicBool);
    impl Drop for Restore {
        fn drop(&mut self) {
            RUNNING_FLAG.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(RUNNING_FLAG.with(|current| current.replace(flag)));
    f()
}
