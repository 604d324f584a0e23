//! Worker processes never outlive their parent, print where the parent prints, run the parent's
//! own executable even when its file was replaced or deleted, and never keep a block from ending.
//!
//! Each test starts this test binary again as a *helper* (one of the ignored tests below, selected
//! by name and enabled by an environment variable), so that it can kill or feed a parent process.

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use concurrent_futures::{pool, TaskError};

mod common;

use common::{assert_all_gone_within, helper_enabled, is_gone, start_helper, within};

const MARKERS: &[&str] = &["worker pid ", "worker stderr line", "before: ", "after: "];

fn read_until(input: &mut impl BufRead, done: impl FnMut(&[String]) -> bool) -> Vec<String> {
    common::read_until(input, MARKERS, done)
}

fn report_pid_then_sleep(seconds: u64) -> u32 {
    // stderr first: once the test has seen the stdout line, the stderr line is written too.
    eprintln!("worker stderr line");
    println!("worker pid {}", std::process::id());
    std::thread::sleep(Duration::from_secs(seconds));
    std::process::id()
}

#[test]
#[ignore = "helper of killing_the_parent_stops_its_workers"]
fn helper_with_two_sleeping_workers() {
    if !helper_enabled() {
        return;
    }
    pool!(Process(max_workers = 2) => {
        let first = submit(report_pid_then_sleep, 60);
        let second = submit(report_pid_then_sleep, 60);
        let _ = (first.result(), second.result());
    });
}

#[test]
fn killing_the_parent_stops_its_workers_and_their_output_reaches_the_parents() {
    let mut helper = start_helper(
        &std::env::current_exe().unwrap(),
        "helper_with_two_sleeping_workers",
    );
    let mut stdout = BufReader::new(helper.stdout.take().unwrap());
    let lines = read_until(&mut stdout, |lines| {
        lines
            .iter()
            .filter(|l| l.starts_with("worker pid "))
            .count()
            == 2
    });
    let pids: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("worker pid "))
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|&pid| pid != helper.id()));
    assert!(
        pids.iter().all(|&pid| !is_gone(pid)),
        "workers run before the kill"
    );

    helper.kill().unwrap();
    helper.wait().unwrap();
    // No worker survives its parent's SIGKILL by more than a second.
    assert_all_gone_within(&pids, Duration::from_secs(1));

    let mut stderr = BufReader::new(helper.stderr.take().unwrap());
    let errors = read_until(&mut stderr, |lines| {
        lines.iter().filter(|l| *l == "worker stderr line").count() == 2
    });
    assert_eq!(
        errors.iter().filter(|l| *l == "worker stderr line").count(),
        2
    );
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
#[ignore = "helper of the tests of a replaced or deleted executable"]
fn helper_that_outlives_its_executable() {
    if !helper_enabled() {
        return;
    }
    let before = pool!(Process(max_workers = 1) => { submit(square, 3).result() });
    println!("before: {before:?}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    if line.trim() == "delete" {
        std::fs::remove_file(std::env::current_exe().unwrap()).unwrap();
    }
    let after = pool!(Process(max_workers = 1) => { submit(square, 4).result() });
    match after {
        Err(error) => println!("after: error: {error}"),
        Ok(value) => println!("after: ok: {value}"),
    }
}

/// Runs a copy of this test binary, named `name` in a directory of its own (`test`), as the helper
/// above; once its first block has run, `change` does something to the directory and `line` is
/// what the helper is told before its second block. Gives what the second block said.
fn second_block_of_a_copy(
    test: &str,
    name: &str,
    change: fn(&std::path::Path),
    line: &str,
) -> String {
    let dir = std::env::temp_dir().join(format!("executor-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join(name);
    std::fs::copy(std::env::current_exe().unwrap(), &binary).unwrap();

    // A child that another test thread forks while the copy is open for writing holds it open
    // until it executes, and executing the copy meanwhile fails with ETXTBSY: try again.
    let mut tries = 0;
    let mut helper = loop {
        match common::helper_command(&binary, "helper_that_outlives_its_executable").spawn() {
            Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            started => break started.expect("the copy starts as a helper"),
        }
    };
    let mut stdout = BufReader::new(helper.stdout.take().unwrap());
    let lines = read_until(&mut stdout, |lines| {
        lines.iter().any(|l| l.starts_with("before: "))
    });
    assert!(lines.contains(&"before: Ok(9)".to_string()), "{lines:?}");
    change(&dir);
    helper
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
    let lines = read_until(&mut stdout, |lines| {
        lines.iter().any(|l| l.starts_with("after: "))
    });
    helper.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    lines
        .into_iter()
        .find(|l| l.starts_with("after: "))
        .unwrap()
}

/// The workers run the parent's own executable (`/proc/self/exe`), not the file now at its path:
/// after a rebuild, the program's workers still run the program's code.
#[test]
fn a_rebuilt_executable_keeps_serving() {
    fn rebuild(dir: &std::path::Path) {
        // "Rebuild": a new file with the same contents takes the old one's name.
        let rebuilt = dir.join("helper.new");
        std::fs::copy(dir.join("helper"), &rebuilt).unwrap();
        std::fs::rename(&rebuilt, dir.join("helper")).unwrap();
    }
    let after = second_block_of_a_copy("rebuilt", "helper", rebuild, "go");
    assert_eq!(after, "after: ok: 16");
}

/// A program whose file was deleted while it ran still starts workers (its path now names nothing;
/// Linux reports it as `path (deleted)`).
#[test]
fn a_deleted_executable_keeps_serving() {
    let after = second_block_of_a_copy("deleted", "helper", |_| {}, "delete");
    assert_eq!(after, "after: ok: 16");
}

/// A program whose name ends in " (deleted)", next to another program with the name without it:
/// the workers run the program itself, not the other one (which would exit at once).
#[test]
fn a_program_named_deleted_runs_its_own_workers() {
    fn plant_another_program(dir: &std::path::Path) {
        use std::os::unix::fs::PermissionsExt;
        let other = dir.join("helper");
        std::fs::write(&other, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let after = second_block_of_a_copy(
        "named-deleted",
        "helper (deleted)",
        plant_another_program,
        "go",
    );
    assert_eq!(after, "after: ok: 16");
}

fn sleep_then_abort() -> u64 {
    std::thread::sleep(Duration::from_millis(1500));
    std::process::abort()
}

fn one() -> u64 {
    1
}

/// The initializer of the test below: workers started once the marker file exists refuse.
fn refuse_if_marked(marker: String) {
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the marker file exists"
    );
}

/// Found by review: calls queued behind the last live worker used to wait forever when it died
/// after new workers had been refused.
#[test]
fn queued_calls_fail_when_the_last_worker_dies_and_no_new_one_can_start() {
    let marker = std::env::temp_dir().join(format!("executor-stranded-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let path = marker.to_str().unwrap().to_string();
    let others = within("the block", move || {
        let others = pool!(Process(max_workers = 4, initializer = refuse_if_marked, initargs = path) => {
            // Worker 0 starts and serves; then the marker appears, so workers 1-3 refuse, and then
            // worker 0 dies.
            assert_eq!(submit(one).result(), Ok(1));
            let crash = submit(sleep_then_abort);
            std::fs::write(&marker, b"").unwrap();
            let others: Vec<_> = (0..3).map(|_| submit(one)).collect();
            let _ = crash.result();
            others.into_iter().map(|f| f.result()).collect::<Vec<_>>()
        });
        std::fs::remove_file(&marker).unwrap();
        others
    });
    for outcome in others {
        match outcome {
            Err(TaskError::WorkerStart(why)) => {
                assert!(why.contains("the marker file exists"), "{why}")
            }
            other => panic!("expected WorkerStart, got {other:?}"),
        }
    }
}

/// A task's leftover thread holds standard output's lock for ever (a progress printer), so the
/// worker's last flush, when its input ends, blocks.
fn hold_stdout_for_ever() -> u32 {
    let (held, is_held) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _lock = std::io::stdout().lock();
        held.send(()).unwrap();
        loop {
            std::thread::park();
        }
    });
    is_held.recv().unwrap();
    std::process::id()
}

extern "C" fn never_return() {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Registers an exit handler that never returns: the worker's `exit` blocks.
fn register_endless_exit_handler() -> u32 {
    // SAFETY: registers a function for `exit` to run; that it never returns is the fault under test.
    assert_eq!(unsafe { libc::atexit(never_return) }, 0);
    std::process::id()
}

fn pid() -> u32 {
    std::process::id()
}

fn nothing(_: u32) {}

/// Stops the (idle) worker: it no longer reads the end of its input.
fn stop(pid: u32) {
    // SAFETY: sends a signal to our own worker process.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) }, 0);
}

/// A block whose worker ran `task`, after which the block did `then` to it: leaving the block ends
/// within seconds (the pool kills a worker that has not exited 2 s after the end of its input),
/// and the worker is gone.
fn leaving_does_not_wait_for_the_worker(task: fn() -> u32, then: fn(u32)) {
    let (worker, left_in) = within("leaving the block", move || {
        let (worker, leaving) = pool!(Process(max_workers = 1) => {
            let worker = submit(task).result().unwrap();
            then(worker);
            (worker, Instant::now())
        });
        (worker, leaving.elapsed())
    });
    assert_ne!(worker, std::process::id());
    // The grace is 2 s; the bound only says "not for ever" (a hang fails `within` at 30 s).
    assert!(left_in < Duration::from_secs(20), "left after {left_in:?}");
    assert_all_gone_within(&[worker], Duration::from_secs(5));
}

#[test]
fn leaving_does_not_wait_for_a_worker_whose_stdout_lock_is_held() {
    leaving_does_not_wait_for_the_worker(hold_stdout_for_ever, nothing);
}

#[test]
fn leaving_does_not_wait_for_a_worker_whose_exit_handler_never_returns() {
    leaving_does_not_wait_for_the_worker(register_endless_exit_handler, nothing);
}

#[test]
fn leaving_does_not_wait_for_a_stopped_worker() {
    leaving_does_not_wait_for_the_worker(pid, stop);
}
