//! Ported from CPython's `Lib/test/test_concurrent_futures/test_deadlock.py`: a worker that
//! crashes, exits or fails to encode or decode a call, at any point of the call's trip, must not
//! leave the pool hung. One test per case, named after it; Process only, as in CPython.
//!
//! Python's `BrokenProcessPool` becomes `TaskError::WorkerDied` for that call only (the pool
//! replaces the worker, and each test checks that a call after the fault still works); a pickling
//! error becomes `TaskError::Transport`; an exception raised by the function becomes
//! `TaskError::Panicked`. The types whose `__reduce__` misbehaves become types whose `Serialize` or
//! `Deserialize` does: it returns an error, calls `std::process::exit(1)`, or segfaults.
//! CPython waits `support.LONG_TIMEOUT` before it calls a pool deadlocked; each test here runs its
//! pool on a thread of its own and fails if that takes longer than `common::HANG_LIMIT` (30 s), instead of hanging.

use std::time::Duration;

use concurrent_futures::{current_worker, pool, Backend, TaskError, WorkerDeath};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod common;
use common::within;

/// Python's `_crash`: a segfault, without a core dump.
fn crash() -> ! {
    // SAFETY: `prctl(PR_SET_DUMPABLE, 0)` only changes this process's attributes: no core file.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let address = std::hint::black_box(8usize) as *mut u64;
    // SAFETY: none; a deliberate invalid write, to crash the worker with SIGSEGV.
    unsafe { address.write_volatile(1) };
    unreachable!("the write above faults")
}

/// Runs `fault` (a crash or an exit) only in a worker process: if the library ever ran this code
/// in the test process itself, the test fails with a message instead of killing the test binary.
fn in_a_worker_only(fault: fn() -> !) -> ! {
    match current_worker() {
        Some(worker) if worker.backend() == Backend::Process => fault(),
        _ => panic!("this was meant to run in a worker process, and runs in the parent"),
    }
}

fn exit_1() -> ! {
    std::process::exit(1)
}

/// Python's `ErrorAtPickle`: its encoding fails.
#[derive(Debug)]
struct ErrorAtSerialize;

impl Serialize for ErrorAtSerialize {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("error in Serialize"))
    }
}

impl<'de> Deserialize<'de> for ErrorAtSerialize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| ErrorAtSerialize)
    }
}

/// Python's `ErrorAtUnpickle`: its decoding fails.
#[derive(Debug, Serialize)]
struct ErrorAtDeserialize;

impl<'de> Deserialize<'de> for ErrorAtDeserialize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        Err(D::Error::custom("error in Deserialize"))
    }
}

/// Python's `CrashAtPickle`: encoding it segfaults (only ever encoded in a worker, as a result).
#[derive(Debug)]
struct CrashAtSerialize;

impl Serialize for CrashAtSerialize {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        in_a_worker_only(crash)
    }
}

impl<'de> Deserialize<'de> for CrashAtSerialize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| CrashAtSerialize)
    }
}

/// Python's `CrashAtUnpickle`: decoding it segfaults (only ever decoded in a worker, as an
/// argument).
#[derive(Debug, Serialize)]
struct CrashAtDeserialize;

impl<'de> Deserialize<'de> for CrashAtDeserialize {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        in_a_worker_only(crash)
    }
}

/// Python's `ExitAtPickle`: encoding it exits the process with code 1 (in a worker, as a result).
#[derive(Debug)]
struct ExitAtSerialize;

impl Serialize for ExitAtSerialize {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        in_a_worker_only(exit_1)
    }
}

impl<'de> Deserialize<'de> for ExitAtSerialize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| ExitAtSerialize)
    }
}

/// Python's `ExitAtUnpickle` as an argument: decoding it in the worker exits with code 1.
#[derive(Debug, Serialize)]
struct ExitAtDeserialize;

impl<'de> Deserialize<'de> for ExitAtDeserialize {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        in_a_worker_only(exit_1)
    }
}

/// Python's `ExitAtUnpickle` as a result, decoded by the pool in the parent. There `sys.exit`
/// raises `SystemExit`, an exception the result handler catches; Rust's `exit` cannot be caught
/// and would end the program, so the analogue is Rust's unwinding failure, a panic.
#[derive(Debug, Serialize)]
struct PanicAtDeserialize;

impl<'de> Deserialize<'de> for PanicAtDeserialize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        panic!("exit while decoding")
    }
}

/// Python's `id`: takes anything, gives a number.
fn id<T>(_: T) -> u64 {
    42
}

/// Python's `_return_instance(cls)`, one per class.
fn return_error_at_serialize() -> ErrorAtSerialize {
    ErrorAtSerialize
}

fn return_error_at_deserialize() -> ErrorAtDeserialize {
    ErrorAtDeserialize
}

fn return_crash_at_serialize() -> CrashAtSerialize {
    CrashAtSerialize
}

fn return_exit_at_serialize() -> ExitAtSerialize {
    ExitAtSerialize
}

fn return_panic_at_deserialize() -> PanicAtDeserialize {
    PanicAtDeserialize
}

fn crash_now() -> u64 {
    crash()
}

fn exit_now() -> u64 {
    exit_1()
}

fn raise_error() -> u64 {
    panic!("RuntimeError")
}

fn square(x: u64) -> u64 {
    x * x
}

/// CPython's `_check_error`: a fresh pool of 2 runs the call (one `submit`, whose outcome it
/// returns) and then one healthy call; both must resolve. Returns the first outcome, after
/// checking that the pool still works.
macro_rules! check_error {
    ($what:literal, $($call:tt)+) => {{
        let (outcome, after) = within($what, || {
            pool!(Process(max_workers = 2) => {
                let outcome = $($call)+.result();
                (outcome, submit(square, 7).result())
            })
        });
        assert_eq!(after, Ok(49), "the pool serves on after {}", $what);
        outcome
    }};
}

fn expect_transport<R: std::fmt::Debug>(outcome: Result<R, TaskError>, starting: &str) -> String {
    match outcome {
        Err(TaskError::Transport(why)) => {
            assert!(why.starts_with(starting), "{why}");
            why
        }
        other => panic!("expected a transport error ({starting}...), got {other:?}"),
    }
}

fn expect_death<R: std::fmt::Debug>(outcome: Result<R, TaskError>, expected: WorkerDeath) {
    match outcome {
        Err(TaskError::WorkerDied { pid, death, .. }) => {
            assert_ne!(pid, std::process::id());
            assert_eq!(death, expected);
        }
        other => panic!("expected the worker to die ({expected}), got {other:?}"),
    }
}

const SIGSEGV: WorkerDeath = WorkerDeath::Signaled(libc::SIGSEGV);

// ---- errors while an argument crosses ----

/// The argument cannot be encoded: `submit` fails that call at once, no worker involved.
#[test]
fn test_error_at_task_pickle() {
    let outcome = check_error!("encoding an argument", submit(id, ErrorAtSerialize));
    expect_transport(outcome, "could not encode the arguments");
}

#[test]
fn test_exit_at_task_unpickle() {
    let outcome = check_error!(
        "exit while decoding an argument",
        submit(id, ExitAtDeserialize)
    );
    expect_death(outcome, WorkerDeath::Exited(1));
}

/// Python breaks the pool; here the worker reports it could not decode the call, and serves on.
#[test]
fn test_error_at_task_unpickle() {
    let outcome = check_error!(
        "an error decoding an argument",
        submit(id, ErrorAtDeserialize)
    );
    // postcard keeps no text for a custom error, so the message is its generic one.
    expect_transport(outcome, "could not decode the arguments");
}

#[test]
fn test_crash_at_task_unpickle() {
    let outcome = check_error!(
        "a crash decoding an argument",
        submit(id, CrashAtDeserialize)
    );
    expect_death(outcome, SIGSEGV);
}

// ---- faults while the function runs ----

#[test]
fn test_crash_during_func_exec_on_worker() {
    let outcome = check_error!("a crash in the function", submit(crash_now));
    expect_death(outcome, SIGSEGV);
}

/// Python's `sys.exit(1)` raises `SystemExit`, which the worker sends back; Rust's `exit` ends the
/// worker process, which the call's future reports.
#[test]
fn test_exit_during_func_exec_on_worker() {
    let outcome = check_error!("an exit in the function", submit(exit_now));
    expect_death(outcome, WorkerDeath::Exited(1));
}

#[test]
fn test_error_during_func_exec_on_worker() {
    let outcome = check_error!("a panic in the function", submit(raise_error));
    assert_eq!(
        outcome.unwrap_err().panic().map(|p| p.message()),
        Some("RuntimeError")
    );
}

// ---- faults while the result crosses back ----

#[test]
fn test_crash_during_result_pickle_on_worker() {
    let outcome = check_error!(
        "a crash encoding the result",
        submit(return_crash_at_serialize)
    );
    expect_death(outcome, SIGSEGV);
}

#[test]
fn test_exit_during_result_pickle_on_worker() {
    let outcome = check_error!(
        "an exit encoding the result",
        submit(return_exit_at_serialize)
    );
    expect_death(outcome, WorkerDeath::Exited(1));
}

#[test]
fn test_error_during_result_pickle_on_worker() {
    let outcome = check_error!(
        "an error encoding the result",
        submit(return_error_at_serialize)
    );
    expect_transport(outcome, "could not encode the result");
}

#[test]
fn test_error_during_result_unpickle_in_result_handler() {
    let outcome = check_error!(
        "an error decoding the result",
        submit(return_error_at_deserialize)
    );
    expect_transport(outcome, "could not decode the result");
}

/// See [`PanicAtDeserialize`]: the parent decodes the result on one of the pool's threads, which
/// must survive the panic and resolve the call.
#[test]
fn test_exit_during_result_unpickle_in_result_handler() {
    let outcome = check_error!(
        "a panic decoding the result",
        submit(return_panic_at_deserialize)
    );
    let why = expect_transport(outcome, "decoding the result panicked");
    assert!(why.contains("exit while decoding"), "{why}");
}

// ---- faults while the block is being left ----

fn crash_after_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    crash()
}

/// The worker crashes after the block has started to wait for it: leaving the block does not hang,
/// and the call's future (taken out of the block) says how the worker died.
#[test]
fn test_shutdown_deadlock() {
    let future = within(
        "leaving the block",
        || pool!(Process(max_workers = 2) => { submit(crash_after_ms, 100) }),
    );
    assert!(future.done(), "the block waited for the call");
    expect_death(future.result(), SIGSEGV);
}

/// A call whose argument cannot be encoded, submitted just before the block is left (Python:
/// `shutdown(wait=False)`, bpo-39104): leaving does not hang, and the call says why it failed.
#[test]
fn test_shutdown_deadlock_pickle() {
    let (first, future) = within("leaving the block", || {
        pool!(Process(max_workers = 2) => {
            // Start the pool and its worker first, as CPython does.
            let first = submit(id, 42u8).result();
            (first, submit(id, ErrorAtSerialize))
        })
    });
    assert_eq!(first, Ok(42));
    expect_transport(future.result(), "could not encode the arguments");
}

/// `support.PIPE_MAX_SIZE`: larger than a pipe's (and a socket's default) buffer, so the parent
/// is still writing an argument when the worker starts decoding it.
const PIPE_MAX_SIZE: usize = 4 * 1024 * 1024 + 1;

fn crash_with_data(_data: String) {
    crash()
}

/// gh-94777: every worker crashes on an argument larger than a pipe's buffer. No deadlock: every
/// item of the map fails with its worker's death (Python: `BrokenProcessPool`).
#[test]
fn test_crash_big_data() {
    let data = "a".repeat(PIPE_MAX_SIZE);
    let results = within("a map whose every call crashes", move || {
        pool!(Process(max_workers = 2) => {
            map(crash_with_data, vec![data; 10]).collect::<Vec<_>>()
        })
    });
    assert_eq!(results.len(), 10);
    for result in results {
        expect_death(result, SIGSEGV);
    }
}
