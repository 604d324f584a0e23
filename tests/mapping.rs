//! `map(f, items)` inside a block: results in input order, lazily, with bounded work in flight;
//! on Process in chunks. Ported from CPython's test_concurrent_futures (test_map, test_map_exception,
//! test_map_timeout does not apply: Rust has `as_completed` with a timeout).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concurrent_futures::{pool, TaskError};

fn square(x: u64) -> u64 {
    x * x
}

fn fails_on_three(x: u64) -> u64 {
    assert_ne!(x, 3, "three");
    x
}

/// `map(fails_on_three, 0..6)`: item 3 failed with its panic, and the others were unaffected.
fn assert_only_three_failed(results: Vec<Result<u64, TaskError>>) {
    assert_eq!(results.len(), 6);
    assert_eq!(
        results[3]
            .as_ref()
            .err()
            .and_then(TaskError::panic)
            .map(|p| p.message()),
        Some("assertion `left != right` failed: three\n  left: 3\n right: 3")
    );
    assert_eq!(results[5], Ok(5), "the other items are unaffected");
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        #[test]
        fn test_map() {
            let out: Vec<u64> = pool!($backend(max_workers = 3) => {
                map(square, 0..100).map(|r| r.unwrap()).collect()
            });
            assert_eq!(out, (0..100).map(|x| x * x).collect::<Vec<_>>());
        }

        #[test]
        fn test_map_exception() {
            assert_only_three_failed(pool!($backend => { map(fails_on_three, 0..6).collect::<Vec<_>>() }));
        }

        #[test]
        fn a_closure_and_the_same_block_under_both_keywords() {
            let on_threads: Vec<u64> =
                pool!($backend => { map(|x: u64| x + 1, vec![1, 2, 3], 2).map(Result::unwrap).collect() });
            let on_processes: Vec<u64> =
                pool!(Process => { map(|x: u64| x + 1, vec![1, 2, 3], 2).map(Result::unwrap).collect() });
            assert_eq!(on_threads, [2, 3, 4]);
            assert_eq!(on_processes, on_threads);
        }

        /// An endless input is fine: only a bounded window is ever submitted ahead of the reader.
        #[test]
        fn map_over_an_endless_iterator_keeps_a_bounded_window() {
            static STARTED: AtomicUsize = AtomicUsize::new(0);
            fn counted(x: u64) -> u64 {
                STARTED.fetch_add(1, Ordering::SeqCst);
                x
            }
            let first: Vec<u64> = pool!($backend(max_workers = 2, cancel_futures = false) => {
                let taken: Vec<u64> = map(counted, 0..).take(10).map(Result::unwrap).collect();
                std::thread::sleep(Duration::from_millis(50));
                taken
            });
            assert_eq!(first, (0..10).collect::<Vec<_>>());
            let started = STARTED.load(Ordering::SeqCst);
            // The window is 32 tasks per worker (executor-runtime's `map::AHEAD_PER_WORKER`).
            assert!(
                started <= 10 + 32 * 2,
                "{started} started: more than 10 taken + the window of 64"
            );
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

#[test]
fn test_map_process_with_chunks() {
    for chunksize in [1, 7, 1000] {
        let out: Vec<u64> = pool!(Process(max_workers = 2) => {
            map(square, 0..1000, chunksize).map(|r| r.unwrap()).collect()
        });
        assert_eq!(
            out,
            (0..1000).map(|x| x * x).collect::<Vec<_>>(),
            "chunksize {chunksize}"
        );
    }
}

#[test]
fn test_map_exception_process() {
    assert_only_three_failed(
        pool!(Process => { map(fails_on_three, 0..6, 4).collect::<Vec<_>>() }),
    );
}
