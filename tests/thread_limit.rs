//! Pools where threads are scarce (`RLIMIT_NPROC`): an `Auto` pool runs on the workers it can
//! start, as `Thread` does, and says so in the log; its governor never takes the thread that its
//! first worker needs.
//!
//! The limit is set in a helper copy of this test binary. Root ignores `RLIMIT_NPROC`, so the
//! helper first becomes the unprivileged user 65534 (`nobody`), then allows that user exactly one
//! more thread than it runs. Not run unless the tests run as root (as in CI): another user's limit
//! would count the threads of all its processes, which come and go.

use std::sync::mpsc;
use std::sync::Mutex;

use concurrent_futures::{pool, Future};

mod common;

/// The warnings logged under the target `concurrent_futures::auto`.
struct Warnings(Mutex<Vec<String>>);

impl log::Log for Warnings {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target() == "concurrent_futures::auto" && metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static WARNINGS: Warnings = Warnings(Mutex::new(Vec::new()));

/// Threads (tasks, in `/proc`) whose real user is `uid`, in every process.
fn threads_of(uid: u32) -> u64 {
    let mut count = 0;
    for process in std::fs::read_dir("/proc").unwrap().flatten() {
        // Processes only, by number: `/proc/self` would count this one twice.
        if !process
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(process.path().join("task")) else {
            continue; // gone
        };
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            let real = status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next())
                .and_then(|id| id.parse::<u32>().ok());
            count += u64::from(real == Some(uid));
        }
    }
    count
}

/// Leaves this process (and its user) one thread to start beyond those running now; `false`
/// (nothing changed) where the test cannot be made reliable: not root, so the limit would count
/// the threads of every other process of this user, which come and go.
fn allow_one_more_thread() -> bool {
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    // SAFETY: plain system calls, groups and group before the user, while still allowed to.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setgid(65534), 0, "setgid");
        assert_eq!(libc::setuid(65534), 0, "setuid");
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` to write to.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut limit) };
    assert_eq!(got, 0);
    limit.rlim_cur = (threads_of(65534) + 1).min(limit.rlim_max);
    // SAFETY: `limit` is a valid `rlimit`; lowering the soft limit needs no privilege.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &limit) };
    assert_eq!(set, 0);
    // The limit holds: a second thread cannot start while a first one runs.
    let (release, wait) = mpsc::channel::<()>();
    let (tell, tid) = mpsc::channel();
    let first = std::thread::Builder::new()
        .spawn(move || {
            // SAFETY: `gettid` has no preconditions.
            tell.send(unsafe { libc::gettid() }).unwrap();
            wait.recv()
        })
        .expect("one more thread is allowed");
    let tid = tid.recv().unwrap();
    assert!(
        std::thread::Builder::new().spawn(|| ()).is_err(),
        "the limit did not hold"
    );
    release.send(()).unwrap();
    first.join().unwrap().unwrap();
    // `join` returns when the thread has stopped running, a little before the kernel counts it
    // gone; it does when it takes the thread out of `/proc`.
    let task = format!("/proc/self/task/{tid}");
    while std::path::Path::new(&task).exists() {
        std::thread::yield_now();
    }
    true
}

fn forty_one() -> u64 {
    41
}

/// The helper: with one thread to spare, an Auto block runs, and a task that waits for a task
/// submitted after it still finishes (it runs it itself, as on Thread).
#[test]
#[ignore = "a helper for auto_runs_on_the_threads_it_gets"]
fn auto_with_one_thread_to_spare() {
    if !common::helper_enabled() {
        return;
    }
    log::set_logger(&WARNINGS).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    if !allow_one_more_thread() {
        println!("SKIPPED: the helper must run as root to set a limit only it counts against");
        return;
    }
    let value = pool!(Auto => {
        let (send, receive) = mpsc::channel::<Future<u64>>();
        let first = submit(move || receive.recv().unwrap().result().unwrap() + 1);
        let later = submit(forty_one);
        send.send(later).unwrap();
        first.result().unwrap()
    });
    assert_eq!(value, 42);
    let warnings = WARNINGS.0.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("could not start the governor thread")),
        "{warnings:#?}"
    );
    println!("RAN ON ONE THREAD: {warnings:?}");
}

#[test]
fn auto_runs_on_the_threads_it_gets() {
    let binary = std::env::current_exe().unwrap();
    let helper = common::start_helper(&binary, "auto_with_one_thread_to_spare");
    let output = common::within("the helper", move || helper.wait_with_output().unwrap());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stdout.contains("SKIPPED") {
        eprintln!("not run: the helper must run as root to set a limit only it counts against");
        return;
    }
    assert!(
        output.status.success() && stdout.contains("RAN ON ONE THREAD"),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}
