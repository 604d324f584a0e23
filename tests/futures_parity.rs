//! Behavioural cases ported from CPython's `Lib/test/test_concurrent_futures/` (test_wait.py,
//! test_as_completed.py, test_future.py), one test per case, named after it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concurrent_futures::{
    as_completed, pool, wait, TaskError, ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION,
};

fn sleep_then(ms: u64, value: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    value
}

fn sleep_then_fail(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    panic!("failed after {ms} ms")
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        // ---- test_wait.py ----

        #[test]
        fn test_first_completed() {
            pool!($backend(max_workers = 2) => {
                let slow = submit(sleep_then, 3000, 1);
                let quick = submit(sleep_then, 1, 2);
                let waited = wait(vec![slow, quick], FIRST_COMPLETED, None);
                assert_eq!(waited.done.len(), 1);
                assert_eq!(waited.not_done.len(), 1);
                assert_eq!(waited.done.into_iter().next().unwrap().result(), Ok(2));
            });
        }

        #[test]
        fn test_first_completed_some_already_completed() {
            pool!($backend(max_workers = 2) => {
                let done = submit(sleep_then, 0, 1);
                done.wait_timeout(Duration::from_secs(10));
                let slow = submit(sleep_then, 3000, 2);
                let started = Instant::now();
                let waited = wait(vec![done, slow], FIRST_COMPLETED, None);
                assert!(started.elapsed() < Duration::from_millis(2000));
                assert_eq!(waited.done.len(), 1);
                assert_eq!(waited.not_done.len(), 1);
            });
        }

        #[test]
        fn test_first_exception() {
            pool!($backend(max_workers = 3) => {
                let quick = submit(sleep_then, 1, 1);
                let failing = submit(sleep_then_fail, 100);
                let slow = submit(sleep_then, 3000, 3);
                let waited = wait(vec![quick, failing, slow], FIRST_EXCEPTION, None);
                assert_eq!(waited.done.len(), 2, "the quick one and the failing one");
                assert_eq!(waited.not_done.len(), 1);
                for future in waited.done {
                    let _ = future.result();
                }
            });
        }

        #[test]
        fn test_first_exception_some_already_complete() {
            pool!($backend(max_workers = 2) => {
                let failed = submit(sleep_then_fail, 0);
                failed.wait_timeout(Duration::from_secs(10));
                let slow = submit(sleep_then, 3000, 2);
                let started = Instant::now();
                let waited = wait(vec![failed, slow], FIRST_EXCEPTION, None);
                assert!(started.elapsed() < Duration::from_millis(2000));
                assert_eq!(waited.done.len(), 1);
                assert!(matches!(
                    waited.done.into_iter().next().unwrap().result(),
                    Err(TaskError::Panicked(_))
                ));
            });
        }

        #[test]
        fn test_first_exception_without_exception_is_all_completed() {
            pool!($backend(max_workers = 2) => {
                let futures: Vec<_> = (0..4).map(|i| submit(sleep_then, 10 * i, i)).collect();
                let waited = wait(futures, FIRST_EXCEPTION, None);
                assert_eq!(waited.done.len(), 4);
                assert!(waited.not_done.is_empty());
            });
        }

        #[test]
        fn test_timeout() {
            pool!($backend(max_workers = 2) => {
                let quick = submit(sleep_then, 0, 1);
                let slow = submit(sleep_then, 3000, 2);
                let started = Instant::now();
                let waited = wait(vec![quick, slow], ALL_COMPLETED, Some(Duration::from_millis(100)));
                let waited_for = started.elapsed();
                assert!(waited_for >= Duration::from_millis(100) && waited_for < Duration::from_millis(2500));
                assert_eq!(waited.done.len(), 1);
                assert_eq!(waited.not_done.len(), 1);
            });
        }

        // ---- test_as_completed.py ----

        #[test]
        fn test_no_timeout() {
            pool!($backend(max_workers = 3) => {
                let futures: Vec<_> = [600, 0, 300].iter().map(|&ms| submit(sleep_then, ms, ms)).collect();
                let order: Vec<u64> = as_completed(futures, None)
                    .map(|f| f.unwrap().result().unwrap())
                    .collect();
                assert_eq!(order, [0, 300, 600]);
            });
        }

        #[test]
        fn test_future_times_out() {
            pool!($backend(max_workers = 2) => {
                let quick = submit(sleep_then, 0, 1);
                quick.wait_timeout(Duration::from_secs(10));
                let slow = submit(sleep_then, 3000, 2);
                let mut finished = as_completed(vec![quick, slow], Some(Duration::from_millis(100)));
                assert_eq!(finished.next().unwrap().unwrap().result(), Ok(1));
                assert!(finished.next().unwrap().is_err(), "the slow one times out");
                assert!(finished.next().is_none(), "and the iteration ends");
            });
        }

        #[test]
        fn test_zero_timeout() {
            pool!($backend(max_workers = 1) => {
                let done = submit(sleep_then, 0, 1);
                done.wait_timeout(Duration::from_secs(10));
                let slow = submit(sleep_then, 300, 2);
                let yielded: Vec<_> = as_completed(vec![done, slow], Some(Duration::ZERO)).collect();
                assert_eq!(yielded.len(), 2);
                assert!(yielded[0].is_ok(), "the finished future first");
                assert!(yielded[1].is_err(), "then the timeout");
            });
        }

        #[test]
        fn test_correct_timeout_error_message() {
            pool!($backend(max_workers = 1) => {
                let slow = submit(sleep_then, 300, 1);
                let error = as_completed(vec![slow], Some(Duration::from_millis(10)))
                    .next()
                    .unwrap()
                    .unwrap_err();
                assert_eq!(error.to_string(), "the wait timed out after 10ms with futures still pending");
            });
        }

        // ---- test_future.py: done callbacks and exception() ----

        #[test]
        fn test_done_callback_with_exception() {
            let (tx, rx) = mpsc::channel();
            pool!($backend => {
                let f = submit(sleep_then_fail, 50);
                f.add_done_callback(move |outcome| {
                    let message = outcome.err().and_then(|e| e.panic()).map(|p| p.message().to_string());
                    tx.send(message).unwrap()
                });
                let _ = f.result();
            });
            assert_eq!(
                rx.recv().unwrap(),
                Some("failed after 50 ms".to_string())
            );
        }

        #[test]
        fn test_done_callback_with_cancel() {
            let (tx, rx) = mpsc::channel();
            pool!($backend(max_workers = 1) => {
                let blocker = submit(sleep_then, 1000, 0);
                let queued = submit(sleep_then, 0, 1);
                queued.add_done_callback(move |outcome| tx.send(outcome.err().cloned()).unwrap());
                assert!(queued.cancel());
                blocker.result().unwrap();
            });
            assert_eq!(rx.recv().unwrap(), Some(TaskError::Cancelled));
        }

        #[test]
        fn test_done_callback_raises() {
            let (tx, rx) = mpsc::channel();
            let value = pool!($backend => {
                let f = submit(sleep_then, 20, 7);
                f.add_done_callback(|_| panic!("doh!"));
                f.add_done_callback(move |outcome| tx.send(outcome.ok().copied()).unwrap());
                f.result()
            });
            assert_eq!(
                value,
                Ok(7),
                "a panicking callback does not touch the result"
            );
            assert_eq!(rx.recv().unwrap(), Some(7), "nor the other callbacks");
        }

        #[test]
        fn test_done_callback_already_successful() {
            let (tx, rx) = mpsc::channel();
            pool!($backend => {
                let f = submit(sleep_then, 0, 3);
                f.wait_timeout(Duration::from_secs(10));
                let caller = std::thread::current().id();
                f.add_done_callback(move |outcome| {
                    tx.send((outcome.ok().copied(), std::thread::current().id() == caller)).unwrap()
                });
                // It already ran, on this thread.
                assert_eq!(rx.try_recv().unwrap(), (Some(3), true));
            });
        }

        #[test]
        fn test_done_callback_already_failed() {
            let (tx, rx) = mpsc::channel();
            pool!($backend => {
                let f = submit(sleep_then_fail, 0);
                f.wait_timeout(Duration::from_secs(10));
                f.add_done_callback(move |outcome| tx.send(outcome.is_err()).unwrap());
                assert!(rx.try_recv().unwrap());
                let _ = f.result();
            });
        }

        #[test]
        fn test_done_callback_already_cancelled() {
            let (tx, rx) = mpsc::channel();
            pool!($backend(max_workers = 1) => {
                let blocker = submit(sleep_then, 1000, 0);
                let queued = submit(sleep_then, 0, 1);
                assert!(queued.cancel());
                queued.add_done_callback(move |outcome| tx.send(outcome.err().cloned()).unwrap());
                assert_eq!(rx.try_recv().unwrap(), Some(TaskError::Cancelled));
                blocker.result().unwrap();
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

// ---- on Process (test_all_completed from test_wait.py, the others from test_future.py) ----

#[test]
fn test_all_completed() {
    pool!(Process(max_workers = 2) => {
        let futures: Vec<_> = (0..6).map(|i| submit(sleep_then, 20, i)).collect();
        let waited = wait(futures, ALL_COMPLETED, None);
        assert_eq!(waited.done.len(), 6);
        assert!(waited.not_done.is_empty());
        let values: Vec<u64> = waited.done.into_iter().map(|f| f.result().unwrap()).collect();
        assert_eq!(values, [0, 1, 2, 3, 4, 5], "done keeps the order given");
    });
}

#[test]
fn test_done_callback_with_result() {
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    pool!(Process => {
        let f = submit(sleep_then, 50, 5);
        f.add_done_callback(move |outcome| *record.lock().unwrap() = Some(outcome.ok().copied()));
        f.result().unwrap();
    });
    assert_eq!(*seen.lock().unwrap(), Some(Some(5)));
}

#[test]
fn test_exception_with_success_and_failure() {
    pool!(Process(max_workers = 2) => {
        let good = submit(sleep_then, 10, 1);
        let bad = submit(sleep_then_fail, 10);
        assert_eq!(good.exception(), None);
        assert_eq!(
            bad.exception().and_then(|e| e.panic().map(|p| p.message().to_string())),
            Some("failed after 10 ms".to_string())
        );
        assert_eq!(good.result(), Ok(1), "exception() leaves the value");
        assert!(bad.result().is_err());
    });
}
