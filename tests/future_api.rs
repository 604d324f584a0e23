//! The `Future` vocabulary a thread pool supports: `done`, `running`, `cancel`, `cancelled`,
//! and timed waits that keep the future usable.

use std::sync::mpsc;
use std::time::Duration;

use concurrent_futures::{pool, TaskError};

/// A task that reports it started and then holds its worker until released.
fn hold(started: mpsc::Sender<()>, release: mpsc::Receiver<()>) -> &'static str {
    started.send(()).unwrap();
    release
        .recv_timeout(Duration::from_secs(30))
        .expect("released by the test");
    "released"
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        #[test]
        fn done_and_running_follow_the_task() {
            let (started_tx, started_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel();
            pool!($backend(max_workers = 1) => {
                let held = submit(hold, started_tx, release_rx);
                started_rx.recv().unwrap();
                assert!(held.running());
                assert!(!held.done());
                release_tx.send(()).unwrap();
                assert!(held.wait_timeout(Duration::from_secs(30)));
                assert!(held.done());
                assert!(!held.running());
                assert_eq!(held.result(), Ok("released"));
            });
        }

        #[test]
        fn cancel_succeeds_only_before_the_task_starts_and_a_cancelled_task_never_runs() {
            let (started_tx, started_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel();
            let ran = std::sync::atomic::AtomicBool::new(false);
            pool!($backend(max_workers = 1) => {
                let held = submit(hold, started_tx, release_rx);
                let queued = submit(|| ran.store(true, std::sync::atomic::Ordering::SeqCst));
                started_rx.recv().unwrap();
                assert!(!held.cancel(), "a running task cannot be cancelled");
                assert!(!held.cancelled());
                assert!(queued.cancel(), "a queued task can be cancelled");
                assert!(queued.cancel(), "cancelling again still reports cancelled");
                assert!(queued.cancelled());
                assert!(queued.done(), "a cancelled task is done");
                release_tx.send(()).unwrap();
                assert!(held.wait_timeout(Duration::from_secs(30)));
                assert!(!held.cancel(), "a finished task cannot be cancelled");
                assert_eq!(held.result(), Ok("released"));
                assert_eq!(queued.result(), Err(TaskError::Cancelled));
            });
            assert!(
                !ran.load(std::sync::atomic::Ordering::SeqCst),
                "the cancelled task ran"
            );
        }

        #[test]
        fn a_cancelled_tasks_captures_are_dropped_before_the_block_ends() {
            let (started_tx, started_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel();
            let token = std::sync::Arc::new(());
            pool!($backend(max_workers = 1) => {
                let held = submit(hold, started_tx, release_rx);
                let captured = token.clone();
                let queued = submit(move || drop(captured));
                started_rx.recv().unwrap();
                assert!(queued.cancel());
                release_tx.send(()).unwrap();
                held.result().unwrap();
            });
            assert_eq!(
                std::sync::Arc::strong_count(&token),
                1,
                "the cancelled closure was never dropped"
            );
        }

        #[test]
        fn a_timed_out_wait_keeps_the_future_usable() {
            let (started_tx, started_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel();
            pool!($backend(max_workers = 1) => {
                let held = submit(hold, started_tx, release_rx);
                started_rx.recv().unwrap();
                assert!(!held.wait_timeout(Duration::from_millis(20)));
                let held = match held.result_timeout(Duration::from_millis(20)) {
                    Ok(outcome) => panic!("a held task finished: {outcome:?}"),
                    Err(future) => future,
                };
                assert!(held.running());
                release_tx.send(()).unwrap();
                assert_eq!(held.result_timeout(Duration::from_secs(30)).ok(), Some(Ok("released")));
            });
        }

        #[test]
        fn many_timed_polls_then_a_result() {
            let (started_tx, started_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel();
            pool!($backend(max_workers = 1) => {
                let held = submit(hold, started_tx, release_rx);
                started_rx.recv().unwrap();
                for _ in 0..100 {
                    assert!(!held.wait_timeout(Duration::from_micros(100)));
                }
                release_tx.send(()).unwrap();
                assert_eq!(held.result(), Ok("released"));
            });
        }

        #[test]
        fn debug_shows_the_state() {
            pool!($backend => {
                let f = submit(|| 1);
                assert!(f.wait_timeout(Duration::from_secs(30)));
                assert_eq!(format!("{f:?}"), r#"Future { state: "done" }"#);
            });
        }
    };
}

mod thread {
    use super::*;
    thread_contract!(Thread);
}

mod auto {
    use super::*;
    thread_contract!(Auto);
}
