//! Ported from CPython's `Lib/test/test_concurrent_futures/`: the remaining applicable cases of
//! test_process_pool.py (`ProcessPoolExecutorTest`), test_thread_pool.py
//! (`ThreadPoolExecutorTest`) and executor.py (`ExecutorTest`, run by both). One test per case,
//! named after it, with `_thread`/`_process` where CPython runs it on both pools.
//!
//! Python counts workers in the executor's private `_threads` and `_processes`; here a test counts
//! the distinct workers its calls ran on (`current_worker()`, the worker's pid), or this process's
//! threads named with the pool's `thread_name_prefix` (in `/proc/self/task`). Process tasks meet
//! through files in a directory of their own, where Python uses a `multiprocessing` semaphore or
//! event. A hang is turned into a failure: such tests run the block on a thread of their own and
//! fail if it is not done within [`LIMIT`].
//!
//! Over 500 lines: one file per CPython test module, so that each case is found under its CPython
//! name in one place.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::panic;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use concurrent_futures::{current_worker, pool, TaskError, WorkerDeath};
use serde::{Deserialize, Serialize};

mod common;
use common::{within, HANG_LIMIT as LIMIT};

/// Waits until `condition` holds; fails after [`LIMIT`], saying `what` never happened.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < LIMIT, "{what}: not after {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn mul(x: u64, y: u64) -> u64 {
    x * y
}

fn mul_and_pid(x: u64, y: u64) -> (u64, u32) {
    (x * y, std::process::id())
}

fn mul_and_worker(x: u64, y: u64) -> (u64, usize) {
    (x * y, current_worker().unwrap().index())
}

fn pid() -> u32 {
    std::process::id()
}

/// Whether process `pid` is gone and reaped: `kill(pid, 0)` still succeeds for a zombie.
fn is_reaped(pid: u32) -> bool {
    // SAFETY: signal 0 sends nothing; it only checks whether the process exists.
    let found = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    !found && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The number of this process's threads whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|name| name.starts_with(prefix))
        })
        .count()
}

/// A fresh, empty directory for tasks in worker processes to meet in; removed when dropped.
struct MeetingPlace(PathBuf);

impl MeetingPlace {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("executor-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        MeetingPlace(dir)
    }

    fn path(&self) -> String {
        self.0.to_str().unwrap().to_string()
    }

    fn has(&self, name: &str) -> bool {
        self.0.join(name).exists()
    }

    fn count_starting_with(&self, prefix: &str) -> usize {
        std::fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .count()
    }

    fn open_gate(&self) {
        std::fs::write(self.0.join("gate"), b"").unwrap();
    }
}

impl Drop for MeetingPlace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// In a worker process: marks that call `value` started (file `started-<value>` in `dir`), waits
/// until the file `gate` exists there, and gives back `value` (Python's `_report_wait_return`).
fn report_wait_return(dir: String, value: u64) -> u64 {
    let dir = Path::new(&dir);
    std::fs::write(dir.join(format!("started-{value}")), b"").unwrap();
    wait_until("the gate opened", || dir.join("gate").exists());
    value
}

/// As [`report_wait_return`], giving the worker's pid.
fn report_wait_pid(dir: String, value: u64) -> u32 {
    report_wait_return(dir, value);
    std::process::id()
}

/// Python's `threading.Semaphore(0)` released for everyone at once: calls `enter` and block until
/// the test opens it.
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    entered: AtomicUsize,
}

impl Gate {
    fn new() -> Self {
        Gate {
            open: Mutex::new(false),
            opened: Condvar::new(),
            entered: AtomicUsize::new(0),
        }
    }

    fn enter(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn entered(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Time for a worker that should not exist to have started and run a call, had the pool
/// started it: a wrong pass at worst if too short, never a wrong failure.
const SETTLE: Duration = Duration::from_millis(100);

// ---- executor.py: ExecutorTest, both backends ----

fn record_item(dir: String, item: u64) -> String {
    std::fs::write(Path::new(&dir).join(format!("item-{item}")), b"").unwrap();
    item.to_string()
}

/// Issue #12456: a `map` that nobody reads, over one item more than there are workers, and the
/// block left at once: no hang, and every item was run.
#[test]
fn test_shutdown_race_issue12456_thread() {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    within("leaving the block", move || {
        pool!(Thread(max_workers = 2) => {
            let count_and_format = |x: u64| {
                counter.fetch_add(1, Ordering::SeqCst);
                x.to_string()
            };
            let _ = map(count_and_format, vec![2; 3]);
        })
    });
    assert_eq!(ran.load(Ordering::SeqCst), 3);
}

#[test]
fn test_shutdown_race_issue12456_process() {
    let place = MeetingPlace::new("race-12456");
    let dir = place.path();
    within("leaving the block", move || {
        pool!(Process(max_workers = 2) => {
            let items = (0..3).map(|x| (dir.clone(), x));
            let _ = map(|(dir, x): (String, u64)| record_item(dir, x), items);
        })
    });
    assert_eq!(place.count_starting_with("item-"), 3);
}

#[derive(Debug)]
struct MyObject;

impl MyObject {
    fn my_method(&self) {}
}

/// Issue #16284: the pool keeps no reference to a call once it has run: the object the
/// (deliberately discarded) call captured is freed while the pool is still open.
#[test]
fn test_no_stale_references_thread() {
    let object = Arc::new(MyObject);
    let collected = Arc::downgrade(&object);
    pool!(Thread(max_workers = 1) => {
        let _ = submit(move || object.my_method());
        wait_until("the call's object freed", || collected.upgrade().is_none());
    });
}

static TRACKED_DROPS: AtomicUsize = AtomicUsize::new(0);

/// Counts its drops, in whichever process it is dropped.
#[derive(Debug, Serialize, Deserialize)]
struct Tracked;

impl Drop for Tracked {
    fn drop(&mut self) {
        TRACKED_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

fn take_tracked(_object: Tracked) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    1
}

/// The Process analogue: the arguments are encoded when `submit` runs, and the parent's copy is
/// freed right then, before the call has even been sent (the worker is still busy with the first).
#[test]
fn test_no_stale_references_process() {
    pool!(Process(max_workers = 1) => {
        let busy = submit(take_tracked, Tracked);
        let before = TRACKED_DROPS.load(Ordering::SeqCst);
        let discarded = submit(take_tracked, Tracked);
        assert_eq!(TRACKED_DROPS.load(Ordering::SeqCst), before + 1, "freed by submit");
        assert!(!discarded.done());
        drop(discarded);
        assert_eq!(busy.result(), Ok(1));
    });
}

// ---- test_thread_pool.py: ThreadPoolExecutorTest ----

/// The default `max_workers` is Python's, `min(32, cpus + 4)`: that many calls run at once, no
/// more.
#[test]
fn test_default_workers() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let expected = (cpus + 4).min(32);
    let gate = Gate::new();
    let threads = pool!(Thread(thread_name_prefix = "dfltwrk") => {
        for _ in 0..expected + 3 {
            let _ = submit(|| gate.enter());
        }
        wait_until("the default number of workers busy", || gate.entered() >= expected);
        std::thread::sleep(SETTLE);
        let entered = gate.entered();
        let threads = threads_named("dfltwrk-");
        gate.open();
        assert_eq!(entered, expected, "calls running at once");
        threads
    });
    assert_eq!(threads, expected);
}

/// 15 calls per worker, all blocked: the pool starts exactly `max_workers` threads.
#[test]
fn test_saturation_thread() {
    let gate = Gate::new();
    let threads = pool!(Thread(max_workers = 4, thread_name_prefix = "saturate") => {
        for _ in 0..15 * 4 {
            let _ = submit(|| gate.enter());
        }
        wait_until("4 workers busy", || gate.entered() >= 4);
        std::thread::sleep(SETTLE);
        let threads = threads_named("saturate-");
        let entered = gate.entered();
        gate.open();
        assert_eq!(entered, 4, "calls running at once");
        threads
    });
    assert_eq!(threads, 4);
}

/// Calls made one after another, each waited for, reuse the one idle worker. As in CPython
/// (where the case requires the GIL), this races with the worker: it publishes a result just
/// before it counts itself idle, so a `submit` in between starts a second worker (a few times in
/// a thousand). A pool that never reused its idle worker would fail every attempt.
#[test]
fn test_idle_thread_reuse() {
    let mut workers_per_attempt = Vec::new();
    for _ in 0..5 {
        let (values, workers): (Vec<u64>, HashSet<usize>) = pool!(Thread => {
            vec![
                submit(mul_and_worker, 21, 2).result().unwrap(),
                submit(mul_and_worker, 6, 7).result().unwrap(),
                submit(mul_and_worker, 3, 14).result().unwrap(),
            ]
            .into_iter()
            .unzip()
        });
        assert_eq!(values, [42, 42, 42]);
        if workers == HashSet::from([0]) {
            return;
        }
        workers_per_attempt.push(workers);
    }
    panic!("the idle worker was never reused: workers used {workers_per_attempt:?}");
}

/// bpo-43944: a thread pool's worker starts a child process (here, a pool of worker processes,
/// which are started with `posix_spawn`, never `fork`), which runs and is reaped.
#[test]
fn test_process_fork_from_a_threadpool() {
    let child = within("the pools", || {
        pool!(Thread(max_workers = 1) => {
            submit(|| pool!(Process(max_workers = 1) => { submit(pid).result() })).result()
        })
    });
    let child = child.unwrap().unwrap();
    assert_ne!(child, std::process::id());
    assert!(is_reaped(child), "the child process {child} was not reaped");
}

// ---- test_process_pool.py: ProcessPoolExecutorTest ----

fn pow(pair: (u64, u32)) -> u64 {
    pair.0.wrapping_pow(pair.1)
}

fn pairs() -> impl Iterator<Item = (u64, u32)> {
    (0..40).map(|i| (i, i as u32))
}

#[test]
fn test_map_chunksize() {
    let reference: Vec<u64> = pairs().map(pow).collect();
    for chunksize in [6, 50, 40] {
        let out: Vec<u64> = pool!(Process(max_workers = 2) => {
            map(pow, pairs(), chunksize).map(Result::unwrap).collect()
        });
        assert_eq!(out, reference, "chunksize {chunksize}");
    }
    // Python: `ValueError` for `chunksize=-1`; here the size is a `usize`, and 0 panics.
    let zero = std::hint::black_box(0);
    let refused = panic::catch_unwind(
        || pool!(Process(max_workers = 2) => { map(pow, pairs(), zero).count() }),
    );
    let payload = refused.expect_err("a chunk size of 0 is refused");
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert_eq!(message, "map: `chunksize` must be at least 1, got 0");
}

fn raise_123() -> u64 {
    panic!("{}", 123)
}

/// Python chains the child's traceback to the exception. No backtrace crosses here: the panic's
/// message does, and the error says it is a panic.
#[test]
fn test_traceback() {
    let error = pool!(Process(max_workers = 1) => { submit(raise_123).result() }).unwrap_err();
    let panic = error.panic().expect("a panic");
    assert_eq!(panic.message(), "123");
    assert_eq!(
        error.to_string(),
        format!("task panicked at {}:\n123", panic.location().unwrap())
    );
}

fn exit_99() -> u64 {
    std::process::exit(99)
}

/// gh-139462: the error for a worker that ended abruptly says which process and how.
#[test]
fn test_traceback_when_child_process_terminates_abruptly() {
    let error = pool!(Process(max_workers = 1) => { submit(exit_99).result() }).unwrap_err();
    let TaskError::WorkerDied { pid, death, .. } = &error else {
        panic!("expected WorkerDied, got {error:?}");
    };
    assert_eq!(*death, WorkerDeath::Exited(99));
    assert_eq!(
        error.to_string(),
        format!(
            "the worker process (pid {pid}) running the task exited with code 99 while running \
             `cpython_pools::exit_99`"
        )
    );
}

static EVENTFUL_DROPS: AtomicUsize = AtomicUsize::new(0);

/// Python's `EventfulGCObj`: counts its drops, in whichever process it is dropped.
#[derive(Debug, Serialize, Deserialize)]
struct EventfulDrop;

impl Drop for EventfulDrop {
    fn drop(&mut self) {
        EVENTFUL_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

fn echo(object: EventfulDrop) -> (EventfulDrop, u32) {
    (object, std::process::id())
}

fn drops_in_this_worker() -> (usize, u32) {
    (EVENTFUL_DROPS.load(Ordering::SeqCst), std::process::id())
}

/// The worker frees a call's argument (here moved into its result) once the result is sent: the
/// next call, in the same worker process, sees it dropped.
#[test]
fn test_ressources_gced_in_workers() {
    let ((_, first), (drops, second)) = pool!(Process(max_workers = 1) => {
        let echoed = submit(echo, EventfulDrop).result().unwrap();
        (echoed, submit(drops_in_this_worker).result().unwrap())
    });
    assert_eq!(first, second, "both calls ran in the one worker");
    assert_eq!(
        drops, 1,
        "the worker dropped the object once, after the call"
    );
}

/// 15 calls per worker, all blocked: exactly `max_workers` run at once, in `max_workers`
/// processes, and no more start.
#[test]
fn test_saturation_process() {
    let place = MeetingPlace::new("saturation");
    let dir = place.path();
    let max_workers = 3;
    let (entered, pids) = within("the block", move || {
        pool!(Process(max_workers = max_workers) => {
            let futures: Vec<_> = (0..15 * max_workers as u64)
                .map(|i| submit(report_wait_pid, dir.clone(), i))
                .collect();
            wait_until("3 workers busy", || place.count_starting_with("started-") >= max_workers);
            std::thread::sleep(SETTLE);
            let entered = place.count_starting_with("started-");
            place.open_gate();
            let pids: HashSet<u32> = futures.into_iter().map(|f| f.result().unwrap()).collect();
            (entered, pids)
        })
    });
    assert_eq!(entered, max_workers, "calls running at once");
    assert_eq!(pids.len(), max_workers, "{pids:?}");
}

/// Calls made one after another, each waited for, all run in the one worker: an idle worker is
/// reused rather than another started.
#[test]
fn test_idle_process_reuse_one() {
    let pids: HashSet<u32> = pool!(Process(max_workers = 4) => {
        [
            submit(mul_and_pid, 21, 2).result().unwrap(),
            submit(mul_and_pid, 6, 7).result().unwrap(),
            submit(mul_and_pid, 3, 14).result().unwrap(),
        ]
        .into_iter()
        .map(|(value, pid)| { assert_eq!(value, 42); pid })
        .collect()
    });
    assert_eq!(pids.len(), 1, "{pids:?}");
}

#[test]
fn test_idle_process_reuse_multiple() {
    let pids: HashSet<u32> = pool!(Process(max_workers = 5) => {
        let a = submit(mul_and_pid, 12, 7).result().unwrap();
        let b = submit(mul_and_pid, 33, 25);
        let c = submit(mul_and_pid, 25, 26).result().unwrap();
        let d = submit(mul_and_pid, 18, 29);
        let e = submit(mul_and_pid, 1, 2).result().unwrap();
        let f = submit(mul_and_pid, 0, 9);
        [a, b.result().unwrap(), c, d.result().unwrap(), e, f.result().unwrap()]
            .into_iter()
            .map(|(_, pid)| pid)
            .collect()
    });
    assert!(pids.len() <= 3, "{} workers: {pids:?}", pids.len());
}

/// gh-115634: workers retiring at `max_tasks_per_child` while calls are queued are replaced, and
/// every queued call runs.
#[test]
fn test_max_tasks_per_child_pending_tasks_gh115634() {
    for (max_workers, max_tasks, num_tasks) in [(1, 2, 6), (2, 2, 8)] {
        let results: Vec<u64> = within("the queued calls", move || {
            pool!(Process(max_workers = max_workers, max_tasks_per_child = max_tasks) => {
                let futures: Vec<_> = (0..num_tasks).map(|i| submit(mul, i, 2)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).collect()
            })
        });
        assert_eq!(
            results,
            (0..num_tasks).map(|i| i * 2).collect::<Vec<_>>(),
            "max_workers {max_workers}, max_tasks_per_child {max_tasks}"
        );
    }
}

/// gh-119592: the only worker is inside its first call, with `max_tasks_per_child = 1` and two
/// calls queued, when the block is left (it falls off the end and waits; Python:
/// `shutdown(wait=False)`). The worker retires after that call while the block is waiting; a
/// replacement must still be started for each queued call, and all three complete.
#[test]
fn test_shutdown_no_wait_max_tasks_gh119592() {
    let place = Arc::new(MeetingPlace::new("gh119592"));
    let dir = place.path();
    let opener_place = Arc::clone(&place);
    let (futures, opener) = within("leaving the block", move || {
        pool!(Process(max_workers = 1, max_tasks_per_child = 1) => {
            let futures: Vec<_> = (0..3).map(|i| submit(report_wait_pid, dir.clone(), i)).collect();
            wait_until("the first call started", || opener_place.has("started-0"));
            // The gate opens once the block is waiting at its end.
            let opener = std::thread::spawn(move || {
                std::thread::sleep(SETTLE);
                opener_place.open_gate();
            });
            (futures, opener)
        })
    });
    opener.join().unwrap();
    let pids: Vec<u32> = futures.into_iter().map(|f| f.result().unwrap()).collect();
    assert_eq!(
        pids.iter().collect::<HashSet<_>>().len(),
        3,
        "one worker per call: {pids:?}"
    );
    assert!(pids.iter().all(|&pid| is_reaped(pid)), "{pids:?}");
}

/// `max_tasks_per_child = 1` on 3 workers, 6 calls, the block left at once: every call
/// completes with its value.
#[test]
fn test_max_tasks_early_shutdown() {
    let futures = within("leaving the block", || {
        pool!(Process(max_workers = 3, max_tasks_per_child = 1) => {
            (0..6).map(|i| submit(mul, i, i)).collect::<Vec<_>>()
        })
    });
    for (i, future) in (0..6).zip(futures) {
        assert_eq!(future.result(), Ok(i * i));
    }
}

const HELPER: &str = "EXECUTOR_TEST_HELPER";

#[test]
#[ignore = "helper of test_failed_worker_replacement_breaks_pool"]
fn helper_whose_worker_retires_when_no_replacement_can_start() {
    let Some(dir) = std::env::var_os(HELPER) else {
        return;
    };
    let dir = dir.into_string().unwrap();
    let refuse = Path::new(&dir).join("refuse").to_str().unwrap().to_string();
    let outcomes = pool!(Process(max_workers = 1, max_tasks_per_child = 1, initializer = refuse_if_marked, initargs = refuse) => {
        let futures: Vec<_> = (0..3).map(|i| submit(report_wait_return, dir.clone(), i)).collect();
        wait_until("the first call started", || Path::new(&dir).join("started-0").exists());
        // From now on new workers refuse to serve (their initializer panics). Then the only
        // worker finishes its one call and retires.
        std::fs::write(Path::new(&dir).join("refuse"), b"").unwrap();
        std::fs::write(Path::new(&dir).join("gate"), b"").unwrap();
        futures.into_iter().map(|f| f.result()).collect::<Vec<_>>()
    });
    for outcome in outcomes {
        match outcome {
            Ok(value) => println!("outcome: ok: {value}"),
            Err(error) => println!("outcome: error: {error}"),
        }
    }
}

/// The initializer of the helper above: workers started once the marker file exists refuse.
fn refuse_if_marked(marker: String) {
    assert!(!Path::new(&marker).exists(), "the marker file exists");
}

/// A worker retires at `max_tasks_per_child` while calls are queued, and no replacement can
/// start (new workers refuse: their initializer panics): the queued calls fail,
/// saying why, instead of waiting forever (Python: `BrokenProcessPool`, "could not be started").
#[test]
fn test_failed_worker_replacement_breaks_pool() {
    let place = MeetingPlace::new("failed-replacement");
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_whose_worker_retires_when_no_replacement_can_start",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER, place.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary starts again as a helper");
    let outcomes = within("the helper", move || {
        let lines: Vec<String> = BufReader::new(helper.stdout.take().unwrap())
            .lines()
            .map(Result::unwrap)
            .filter_map(|line| line.find("outcome: ").map(|at| line[at..].to_string()))
            .collect();
        assert!(helper.wait().unwrap().success(), "{lines:?}");
        lines
    });
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert_eq!(outcomes[0], "outcome: ok: 0");
    for line in &outcomes[1..] {
        assert!(
            line.starts_with("outcome: error: no worker process could run the task")
                && line.contains("the marker file exists"),
            "{line}"
        );
    }
}
