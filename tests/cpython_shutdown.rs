//! Ported from CPython's `Lib/test/test_concurrent_futures/test_shutdown.py`: what leaving a
//! `pool!` block (Python's `shutdown()`, or the end of a `with` block) does to the work and the
//! workers. One test per case, named after it, on both backends where the case applies to both.
//!
//! Python checks that `shutdown()` joined its workers with `t.join()` on the executor's private
//! thread and process lists. The workers here are not reachable, so the tests look at the system
//! instead: a Thread worker is a thread of this process whose name starts with the pool's
//! `thread_name_prefix` (listed in `/proc/self/task`), and a Process worker is reaped when
//! `kill(pid, 0)` answers `ESRCH` (a zombie still answers). Process tasks meet through files in a
//! directory of their own, where Python uses a `multiprocessing` semaphore.
//!
//! A hang is turned into a failure: such tests run the block on a thread of their own and fail
//! if it is not done within [`LIMIT`].

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use concurrent_futures::{current_worker, pool, TaskError};

mod common;
use common::{within, HANG_LIMIT as LIMIT};

/// The names of this process's live threads that start with `prefix`.
fn threads_named(prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        // A thread can end between the listing and the reads: then it is not counted.
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(entry.path().join("comm")),
            std::fs::read_to_string(entry.path().join("stat")),
        ) else {
            continue;
        };
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        let ended = state.starts_with('Z') || state.starts_with('X');
        if name.trim_end().starts_with(prefix) && !ended {
            names.push(name.trim_end().to_string());
        }
    }
    names
}

/// Waits until no live thread's name starts with `prefix`; fails if one is left after 5 s.
fn assert_threads_end(prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = threads_named(prefix);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "worker threads {left:?} outlived their block"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether process `pid` is gone and reaped: `kill(pid, 0)` still succeeds for a zombie.
fn is_reaped(pid: u32) -> bool {
    // SAFETY: signal 0 sends nothing; it only checks whether the process exists.
    let found = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    !found && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

fn assert_reaped(pids: &[u32]) {
    assert!(!pids.is_empty());
    for &pid in pids {
        assert_ne!(pid, std::process::id());
        assert!(
            is_reaped(pid),
            "worker process {pid} was not reaped by the end of its block"
        );
    }
}

/// A fresh, empty directory for tasks in worker processes to meet in.
fn meeting_place(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("executor-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Python's `acquire_lock(sem)` with a semaphore released once all have started: the task marks
/// its arrival in `dir` and waits until `parties` tasks have arrived, so that many run at once.
/// Gives its worker's pid.
fn arrive_and_wait(dir: String, parties: usize) -> u32 {
    let pid = std::process::id();
    std::fs::write(Path::new(&dir).join(pid.to_string()), b"").unwrap();
    let started = Instant::now();
    loop {
        let arrived = std::fs::read_dir(&dir).unwrap().count();
        if arrived >= parties {
            return pid;
        }
        assert!(
            started.elapsed() < LIMIT,
            "only {arrived} of {parties} tasks ran at once"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Python's `int()`.
fn int() -> u64 {
    0
}

/// On a Thread worker: `|x|` and the worker's thread name.
fn abs_and_thread_name(x: i64) -> (i64, String) {
    let name = current_worker().unwrap().thread_name().unwrap().to_string();
    (x.abs(), name)
}

fn abs_and_pid(x: i64) -> (i64, u32) {
    (x.abs(), std::process::id())
}

const ABS_OF_MINUS_5_TO_4: [i64; 10] = [5, 4, 3, 2, 1, 0, 1, 2, 3, 4];

// ---- ExecutorShutdownTest: both backends ----

/// Python raises `RuntimeError` for a `submit` after `shutdown()`. Here `submit` exists only in
/// the block, so the block's own code cannot submit after it (a compile error, pinned by
/// `tests/ui/submit_outside_a_pool.rs`); what can is a task still running while the block is
/// being left. Its call is accepted and run, and the block waits for it too.
#[test]
fn test_run_after_shutdown() {
    let ran = AtomicUsize::new(0);
    pool!(Thread(max_workers = 2) => {
        let _ = submit(|| {
            // By now the block has reached its end and waits.
            std::thread::sleep(Duration::from_millis(50));
            let _ = submit(|| ran.fetch_add(1, Ordering::SeqCst));
            ran.fetch_add(1, Ordering::SeqCst)
        });
    });
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

const HELPER: &str = "EXECUTOR_TEST_HELPER";

fn helper_enabled() -> bool {
    std::env::var_os(HELPER).is_some()
}

fn sleep_and_print(ms: u64, message: String) {
    std::thread::sleep(Duration::from_millis(ms));
    println!("{message}");
}

#[test]
#[ignore = "helper of test_interpreter_shutdown_thread"]
fn helper_leaving_a_thread_pool_with_a_print_pending() {
    if helper_enabled() {
        pool!(Thread(max_workers = 5) => {
            let _ = submit(sleep_and_print, 100, "apple".to_string());
        });
    }
}

#[test]
#[ignore = "helper of test_interpreter_shutdown_process"]
fn helper_leaving_a_process_pool_with_a_print_pending() {
    if helper_enabled() {
        pool!(Process(max_workers = 5) => {
            let _ = submit(sleep_and_print, 100, "apple".to_string());
        });
    }
}

/// Runs this test binary again as `helper` (one of the ignored tests above) and gives its
/// standard output and error once it has exited.
fn run_helper(helper: &str) -> (String, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            helper,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary starts again as a helper");
    let mut stderr_pipe = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        stderr_pipe.read_to_string(&mut text).unwrap();
        text
    });
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    assert!(status.success(), "the helper failed: {output}\n{errors}");
    (output, errors)
}

/// A program that ends with a call still pending in a block: the block waited for it, its output
/// reached the program's output once, and nothing went to stderr (Python: the `atexit` hook).
fn assert_printed_apple_once_and_no_error((output, errors): (String, String)) {
    assert_eq!(output.matches("apple").count(), 1, "{output}");
    assert!(errors.is_empty(), "{errors}");
}

#[test]
fn test_interpreter_shutdown_thread() {
    assert_printed_apple_once_and_no_error(run_helper(
        "helper_leaving_a_thread_pool_with_a_print_pending",
    ));
}

#[test]
fn test_interpreter_shutdown_process() {
    assert_printed_apple_once_and_no_error(run_helper(
        "helper_leaving_a_process_pool_with_a_print_pending",
    ));
}

/// 50 sleeping calls, the block left at once: every one of them completes.
#[test]
fn test_hang_issue12364_thread() {
    let futures = within("leaving the block", || {
        pool!(Thread(max_workers = 5) => {
            (0..50).map(|_| submit(sleep_ms, 10)).collect::<Vec<_>>()
        })
    });
    assert_eq!(futures.len(), 50);
    for future in futures {
        assert!(future.done());
        assert_eq!(future.result(), Ok(()));
    }
}

#[test]
fn test_hang_issue12364_process() {
    let futures = within("leaving the block", || {
        pool!(Process(max_workers = 5) => {
            (0..50).map(|_| submit(sleep_ms, 10)).collect::<Vec<_>>()
        })
    });
    assert_eq!(futures.len(), 50);
    for future in futures {
        assert!(future.done());
        assert_eq!(future.result(), Ok(()));
    }
}

/// gh-94440: a call submitted and at once cancelled right before the block is left does not
/// hang the exit. Whether the cancel wins the race with the idle worker varies, so the case runs
/// several times; either way the future agrees with what `cancel()` said.
fn check_gh94440(outcome: (bool, concurrent_futures::Future<u64>)) {
    let (cancelled, future) = outcome;
    assert!(future.done());
    assert_eq!(future.cancelled(), cancelled);
    let expected = if cancelled {
        Err(TaskError::Cancelled)
    } else {
        Ok(0)
    };
    assert_eq!(future.result(), expected);
}

#[test]
fn test_hang_gh94440_thread() {
    for _ in 0..50 {
        check_gh94440(within("leaving the block", || {
            pool!(Thread(max_workers = 1) => {
                assert_eq!(submit(int).result(), Ok(0));
                let future = submit(int);
                (future.cancel(), future)
            })
        }));
    }
}

#[test]
fn test_hang_gh94440_process() {
    for _ in 0..10 {
        check_gh94440(within("leaving the block", || {
            pool!(Process(max_workers = 1) => {
                assert_eq!(submit(int).result(), Ok(0));
                let future = submit(int);
                (future.cancel(), future)
            })
        }));
    }
}

// ---- ThreadPoolShutdownTest ----

/// Three calls that wait for each other run on three worker threads; once the block is left,
/// those threads are gone.
#[test]
fn test_threads_terminate() {
    let started = Barrier::new(4);
    let release = Barrier::new(4);
    let running = pool!(Thread(max_workers = 5, thread_name_prefix = "terminate") => {
        for _ in 0..3 {
            let _ = submit(|| {
                started.wait();
                release.wait();
            });
        }
        started.wait();
        let running = threads_named("terminate-");
        release.wait();
        running
    });
    let running: HashSet<String> = running.into_iter().collect();
    let expected: HashSet<String> = (0..3).map(|i| format!("terminate-{i}")).collect();
    assert_eq!(running, expected);
    assert_threads_end("terminate-");
}

#[test]
fn test_context_manager_shutdown_thread() {
    let (values, names, running) = pool!(Thread(max_workers = 5, thread_name_prefix = "ctxmgr") => {
        let (values, names): (Vec<i64>, HashSet<String>) =
            map(abs_and_thread_name, -5..5).map(Result::unwrap).unzip();
        (values, names, threads_named("ctxmgr-"))
    });
    assert_eq!(values, ABS_OF_MINUS_5_TO_4);
    assert!(
        names.iter().all(|name| name.starts_with("ctxmgr-")),
        "{names:?}"
    );
    assert!(!running.is_empty(), "the workers run until the block ends");
    assert_threads_end("ctxmgr-");
}

/// Every worker thread is named `<prefix>-<index>`, index below `max_workers` (Python:
/// `<prefix>_<index>`), and is gone after the block.
#[test]
fn test_thread_names_assigned() {
    let (names, running) = pool!(Thread(max_workers = 5, thread_name_prefix = "SpecialPool") => {
        let names: Vec<String> = map(abs_and_thread_name, -5..5).map(|r| r.unwrap().1).collect();
        (names, threads_named("SpecialPool-"))
    });
    assert_eq!(names.len(), 10);
    assert!(!running.is_empty(), "the workers run until the block ends");
    for name in &names {
        let index = name
            .strip_prefix("SpecialPool-")
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            matches!(index, "0" | "1" | "2" | "3" | "4"),
            "{name} is not SpecialPool-[0-4]"
        );
    }
    assert_threads_end("SpecialPool-");
}

/// Without a prefix, threads are `executor-<pool number>-<index>` (Python:
/// `ThreadPoolExecutor-<n>_<index>`): sane, and distinct between pools.
#[test]
fn test_thread_names_default() {
    fn names_in_one_pool() -> HashSet<String> {
        pool!(Thread(max_workers = 5) => {
            map(abs_and_thread_name, -5..5).map(|r| r.unwrap().1).collect()
        })
    }
    let pool_number = |name: &String| -> String {
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!(parts[0], "executor", "{name}");
        assert!(parts[1].parse::<u64>().is_ok(), "{name}: no pool number");
        assert!(
            matches!(parts[2], "0" | "1" | "2" | "3" | "4"),
            "{name}: index not in 0-4"
        );
        parts[1].to_string()
    };
    let first: HashSet<String> = names_in_one_pool().iter().map(pool_number).collect();
    let second: HashSet<String> = names_in_one_pool().iter().map(pool_number).collect();
    assert_eq!(first.len(), 1, "one number per pool: {first:?}");
    assert_eq!(second.len(), 1, "one number per pool: {second:?}");
    assert_ne!(first, second, "two pools, two numbers");
}

// ---- ProcessPoolShutdownTest ----

/// Three calls that wait for each other run in three worker processes (started on demand, as
/// with Python's `spawn`); once the block is left, all three are reaped.
#[test]
fn test_processes_terminate() {
    let dir = meeting_place("processes-terminate");
    let place = dir.to_str().unwrap().to_string();
    let pids: Vec<u32> = within("the block", move || {
        pool!(Process(max_workers = 5) => {
            let futures: Vec<_> =
                (0..3).map(|_| submit(arrive_and_wait, place.clone(), 3)).collect();
            let pids: Vec<u32> = futures.into_iter().map(|f| f.result().unwrap()).collect();
            assert!(pids.iter().all(|&pid| !is_reaped(pid)), "workers run until the block ends");
            pids
        })
    });
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 3, "{pids:?}");
    assert_reaped(&pids);
}

#[test]
fn test_context_manager_shutdown_process() {
    let (values, pids): (Vec<i64>, Vec<u32>) = pool!(Process(max_workers = 5) => {
        let (values, pids): (Vec<i64>, Vec<u32>) =
            map(abs_and_pid, -5..5).map(Result::unwrap).unzip();
        assert!(pids.iter().all(|&pid| !is_reaped(pid)), "the workers run until the block ends");
        (values, pids)
    });
    assert_eq!(values, ABS_OF_MINUS_5_TO_4);
    assert_reaped(&pids);
}

fn failing_task_gh_132969(_n: u64) -> u64 {
    panic!("failing task")
}

fn good_task_gh_132969(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(50 * n));
    n
}

/// gh-132969: with `max_tasks_per_child = 1`, a call fails, and the block is left early (by `?`)
/// while the calls after it are running or queued. Leaving does not hang and raises nothing
/// else; the sum stops at the first error, as Python's does.
fn run_gh_132969(max_workers: usize) -> u64 {
    within("leaving the block early", move || {
        let mut result = 0;
        let outcome: Result<(), TaskError> = (|| {
            pool!(Process(max_workers = max_workers, max_tasks_per_child = 1) => {
                let f1 = submit(good_task_gh_132969, 1);
                let f2 = submit(failing_task_gh_132969, 2);
                let f3 = submit(good_task_gh_132969, 3);
                result += f1.result()?;
                result += f2.result()?;
                result += f3.result()?;
                Ok(())
            })
        })();
        assert_eq!(
            outcome
                .as_ref()
                .err()
                .and_then(TaskError::panic)
                .map(|p| p.message()),
            Some("failing task"),
            "the first error stops the sum"
        );
        result
    })
}

#[test]
fn test_shutdown_gh_132969_case_1() {
    assert_eq!(run_gh_132969(2), 1);
}

#[test]
fn test_shutdown_gh_132969_case_2() {
    assert_eq!(run_gh_132969(4), 1);
}
