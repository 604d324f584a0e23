//! Faults inside a task, on both backends: a panic, a panic while panicking, a panic payload that
//! is not a string (or whose destructor panics in turn). Each test checks that only the faulty task
//! is lost: the healthy tasks around it all complete.
//!
//! A panic while panicking (a destructor that panics during unwinding) is the one fault a thread
//! cannot contain: Rust aborts the whole process. On Process it costs one worker; on Thread the
//! test runs the fault in a helper copy of this test binary and checks that it aborts.

use std::os::unix::process::ExitStatusExt;

use concurrent_futures::{pool, TaskError, WorkerDeath};

mod common;

fn square(x: u64) -> u64 {
    x * x
}

fn plain_panic() -> u64 {
    panic!("plain panic in a task")
}

fn non_string_payload() -> u64 {
    std::panic::panic_any(42_u32)
}

/// A payload whose destructor panics when the pool drops it after reading the message.
struct Grenade;

impl Drop for Grenade {
    fn drop(&mut self) {
        panic!("the payload's destructor panicked");
    }
}

fn payload_that_panics_when_dropped() -> u64 {
    std::panic::panic_any(Grenade)
}

/// A local whose destructor panics while the task is unwinding from a first panic.
struct PanicsOnUnwind;

impl Drop for PanicsOnUnwind {
    fn drop(&mut self) {
        panic!("second panic, during unwinding");
    }
}

fn panic_while_panicking() -> u64 {
    let _guard = PanicsOnUnwind;
    panic!("first panic")
}

const NOT_A_STRING: &str = "<a panic payload that is not a string>";

/// Runs `fault` among 20 healthy tasks on 2 threads; returns its outcome.
fn among_healthy_on_threads(fault: fn() -> u64) -> Result<u64, TaskError> {
    let (faulty, healthy) = pool!(Thread(max_workers = 2) => {
        let before: Vec<_> = (0..10).map(|i| submit(square, i)).collect();
        let faulty = submit(fault);
        let after: Vec<_> = (10..20).map(|i| submit(square, i)).collect();
        let healthy: Vec<u64> = before.into_iter().chain(after).map(|f| f.result().unwrap()).collect();
        (faulty.result(), healthy)
    });
    assert_eq!(healthy, (0..20).map(|i| i * i).collect::<Vec<u64>>());
    faulty
}

/// The panic message of a task that panicked.
fn panic_message(outcome: &Result<u64, TaskError>) -> Option<&str> {
    outcome.as_ref().err()?.panic().map(|panic| panic.message())
}

/// Runs `fault` among 20 healthy tasks on 2 worker processes; returns its outcome.
fn among_healthy_on_processes(fault: fn() -> u64) -> Result<u64, TaskError> {
    let (faulty, healthy) = pool!(Process(max_workers = 2) => {
        let before: Vec<_> = (0..10).map(|i| submit(square, i)).collect();
        let faulty = submit(fault);
        let after: Vec<_> = (10..20).map(|i| submit(square, i)).collect();
        let healthy: Vec<u64> = before.into_iter().chain(after).map(|f| f.result().unwrap()).collect();
        (faulty.result(), healthy)
    });
    assert_eq!(healthy, (0..20).map(|i| i * i).collect::<Vec<u64>>());
    faulty
}

#[test]
fn a_panic_fails_its_task_only_on_both_backends() {
    let expected = Some("plain panic in a task");
    assert_eq!(
        panic_message(&among_healthy_on_threads(plain_panic)),
        expected
    );
    assert_eq!(
        panic_message(&among_healthy_on_processes(plain_panic)),
        expected
    );
}

#[test]
fn a_non_string_payload_is_described_on_both_backends() {
    let expected = Some(NOT_A_STRING);
    assert_eq!(
        panic_message(&among_healthy_on_threads(non_string_payload)),
        expected
    );
    assert_eq!(
        panic_message(&among_healthy_on_processes(non_string_payload)),
        expected
    );
}

#[test]
fn a_payload_whose_destructor_panics_is_contained_on_both_backends() {
    let expected = Some(NOT_A_STRING);
    assert_eq!(
        panic_message(&among_healthy_on_threads(payload_that_panics_when_dropped)),
        expected
    );
    assert_eq!(
        panic_message(&among_healthy_on_processes(
            payload_that_panics_when_dropped
        )),
        expected
    );
}

#[test]
fn a_panic_while_panicking_costs_one_worker_process() {
    match among_healthy_on_processes(panic_while_panicking) {
        Err(TaskError::WorkerDied { death, .. }) => {
            assert_eq!(death, WorkerDeath::Signaled(libc::SIGABRT))
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

#[test]
#[ignore = "helper of a_panic_while_panicking_aborts_the_program_on_thread"]
fn helper_panic_while_panicking_on_a_thread() {
    if !common::helper_enabled() {
        return;
    }
    let outcome = among_healthy_on_threads(panic_while_panicking);
    println!("unreachable: the program went on with {outcome:?}");
}

/// Rust aborts a process in which a destructor panics during unwinding; no thread pool can catch
/// that. The program ends with `SIGABRT` and Rust's message, rather than hanging or going on with
/// a broken pool; `Process` contains the same fault (the test above).
#[test]
fn a_panic_while_panicking_aborts_the_program_on_thread() {
    let output = common::helper_command(
        &std::env::current_exe().unwrap(),
        "helper_panic_while_panicking_on_a_thread",
    )
    .output()
    .expect("the test binary starts again as a helper");
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("panic in a destructor during cleanup"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("unreachable"));
}
