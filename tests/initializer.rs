//! `initializer = f, initargs = (...)`: each worker runs `f(args...)` once, before its first task;
//! on Process, in the worker process. Ported from CPython's test_concurrent_futures
//! (InitializerMixin: test_initializer; FailingInitializerMixin: test_initializer).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use concurrent_futures::{pool, TaskError};

mod common;

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

/// Replaces the pool's 30 s handshake limit in a helper process (a test hook of the runtime).
const HANDSHAKE_TIMEOUT_ENV: &str = "__EXECUTOR_HANDSHAKE_TIMEOUT_MS";
/// Makes this binary's workers stall before `main` (see `stall_worker_if_asked`).
const STALL_ENV: &str = "EXECUTOR_TEST_STALL_WORKER";

/// Runs before the runtime's own start-up function (a prioritised `.init_array` entry runs before
/// the plain ones): in a worker of a helper that asks for it, never returns, so the worker never
/// answers the hello (as a child stuck before `main` would).
#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array.00200")]
static STALL_WORKER_BEFORE_MAIN: extern "C" fn() = stall_worker_if_asked;

extern "C" fn stall_worker_if_asked() {
    if std::env::var_os(STALL_ENV).is_some() && std::env::var_os("__EXECUTOR_WORKER_FD").is_some() {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

fn load_model(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

#[test]
#[ignore = "helper of the tests of the handshake's limit"]
fn helper_with_a_slow_initializer() {
    if !common::helper_enabled() {
        return;
    }
    let outcome = pool!(Process(max_workers = 1, initializer = load_model, initargs = 3_000) => {
        submit(one).result()
    });
    match outcome {
        Ok(value) => println!("outcome: ok: {value}"),
        Err(error) => println!("outcome: error: {error}"),
    }
}

/// Runs the helper above with the handshake limit at 1 s (and `extra` in its environment); gives
/// its outcome line.
fn slow_initializer_outcome(extra: &[(&str, &str)]) -> String {
    let mut command = common::helper_command(
        &std::env::current_exe().unwrap(),
        "helper_with_a_slow_initializer",
    );
    command.env(HANDSHAKE_TIMEOUT_ENV, "1000");
    command.envs(extra.iter().copied());
    let output = common::within("the helper", move || command.output().unwrap());
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let line = out
        .lines()
        .find_map(|l| l.find("outcome: ").map(|at| &l[at..]));
    line.unwrap_or_else(|| panic!("no outcome: {out}"))
        .to_string()
}

/// An initializer that takes longer than the handshake's limit (3 s against 1 s here; 30 s in
/// real use, against loading a model): the worker acknowledges the hello before it runs the
/// initializer, which then has no limit.
#[test]
fn an_initializer_may_take_longer_than_the_handshake_limit() {
    assert_eq!(slow_initializer_outcome(&[]), "outcome: ok: 1");
}

/// A worker that never answers the hello is given up on after the handshake's limit, and the
/// calls say so.
#[test]
fn a_worker_that_never_answers_is_reported_as_such() {
    let outcome = slow_initializer_outcome(&[(STALL_ENV, "1")]);
    assert!(
        outcome.starts_with("outcome: error: no worker process could run the task: the worker")
            && outcome.ends_with("did not answer the handshake within 1s, and was killed"),
        "{outcome}"
    );
}
