//! `initializer = f, initargs = (...)`: each worker runs `f(args...)` once, before its first task;
//! on Process, in the worker process. Ported from CPython's test_concurrent_futures
//! (InitializerMixin: test_initializer; FailingInitializerMixin: test_initializer).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use executor::{pool, TaskError};

thread_local! {
    static GREETING: Cell<Option<(u64, &'static str)>> = const { Cell::new(None) };
}

fn remember(number: u64, word: &'static str) {
    GREETING.with(|g| g.set(Some((number, word))));
}

fn greeting() -> Option<(u64, &'static str)> {
    GREETING.with(Cell::get)
}

static CONFIGURED: AtomicU64 = AtomicU64::new(0);

fn configure(value: u64) {
    CONFIGURED.store(value, Ordering::SeqCst);
}

fn configured() -> (u64, u32) {
    (CONFIGURED.load(Ordering::SeqCst), std::process::id())
}

fn init_fails() {
    panic!("no configuration file")
}

fn one() -> u64 {
    1
}

/// Every task of a pool whose initializer panicked fails, and says why.
fn assert_failed_by_the_initializer(results: Vec<Result<u64, TaskError>>) {
    for result in results {
        match result {
            Err(TaskError::WorkerStart(why)) => {
                assert!(
                    why.contains("initializer panicked: no configuration file"),
                    "{why}"
                )
            }
            other => panic!("expected the pool to be broken, got {other:?}"),
        }
    }
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        #[test]
        fn test_initializer() {
            let seen: Vec<_> = pool!($backend(max_workers = 3, initializer = remember, initargs = (7, "hello")) => {
                let futures: Vec<_> = (0..12).map(|_| submit(greeting)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).collect()
            });
            assert!(seen.iter().all(|g| *g == Some((7, "hello"))), "{seen:?}");
        }

        #[test]
        fn test_failing_initializer() {
            let results: Vec<_> = pool!($backend(max_workers = 2, initializer = init_fails) => {
                let futures: Vec<_> = (0..4).map(|_| submit(one)).collect();
                futures.into_iter().map(|f| f.result()).collect()
            });
            assert_failed_by_the_initializer(results);
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
fn test_initializer_process() {
    let seen: Vec<(u64, u32)> = pool!(Process(max_workers = 2, initializer = configure, initargs = 99) => {
        let futures: Vec<_> = (0..8).map(|_| submit(configured)).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    assert!(
        seen.iter()
            .all(|&(value, pid)| value == 99 && pid != std::process::id()),
        "{seen:?}"
    );
    assert_eq!(
        CONFIGURED.load(Ordering::SeqCst),
        0,
        "the parent's copy is untouched"
    );
}

#[test]
fn test_failing_initializer_process() {
    let results: Vec<_> = pool!(Process(max_workers = 2, initializer = init_fails) => {
        let futures: Vec<_> = (0..4).map(|_| submit(one)).collect();
        futures.into_iter().map(|f| f.result()).collect()
    });
    assert_failed_by_the_initializer(results);
}
