//! Options of one call (issue 17): `submit(call(f).timeout(d).retries(n), args...)` on Process, and
//! the block's `retries = n`. A call whose worker died or that timed out runs again on a fresh
//! worker while its retries last; a panic only when the call asks (`.retry_panics()`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use concurrent_futures::{pool, TaskError, WorkerDeath};

/// A fresh path for a marker file, unique to this test run and `name`.
fn marker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let path: PathBuf = std::env::temp_dir().join(format!(
        "concurrent-futures-{name}-{}-{nanos}",
        std::process::id()
    ));
    path.to_string_lossy().into_owned()
}

/// Whether this is the first call with this marker (it creates the file).
fn first_time(marker: &str) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .is_ok()
}

/// Aborts its worker the first time, returns its pid the second.
fn abort_first_time(marker: String) -> u32 {
    if first_time(&marker) {
        std::process::abort();
    }
    std::process::id()
}

fn always_abort() -> u32 {
    std::process::abort()
}

/// Panics the first time, returns 7 the second.
fn panic_first_time(marker: String) -> u32 {
    if first_time(&marker) {
        panic!("not yet");
    }
    7
}

/// Hangs the first time (until a timeout kills it), returns at once the second.
fn hang_first_time(marker: String) -> u32 {
    if first_time(&marker) {
        std::thread::sleep(Duration::from_secs(60));
    }
    8
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn a_call_whose_worker_dies_is_retried_on_a_replacement() {
    let marker = marker("abort");
    let (result, attempts, others) = pool!(Process(max_workers = 2) => {
        let others: Vec<_> = (0..10).map(|i| submit(square, i)).collect();
        let f = submit(call(abort_first_time).retries(2), marker.clone());
        assert!(f.wait_timeout(Duration::from_secs(30)));
        let attempts = f.attempts();
        let others: Vec<u64> = others.into_iter().map(|f| f.result().unwrap()).collect();
        (f.result(), attempts, others)
    });
    let _ = std::fs::remove_file(&marker);
    let pid = result.expect("the second attempt returns");
    assert_ne!(pid, std::process::id());
    assert_eq!(attempts, 2);
    assert_eq!(others, (0..10).map(|i| i * i).collect::<Vec<u64>>());
}

#[test]
fn the_blocks_retries_are_every_calls_default() {
    let marker = marker("block");
    let (attempts, result) = pool!(Process(retries = 1) => {
        let f = submit(abort_first_time, marker.clone());
        assert!(f.wait_timeout(Duration::from_secs(30)));
        (f.attempts(), f.result())
    });
    let _ = std::fs::remove_file(&marker);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(attempts, 2);
}

#[test]
fn a_retry_budget_that_runs_out_fails_with_the_last_error_and_counts_the_attempts() {
    let (result, attempts, after) = pool!(Process(max_workers = 1, retries = 5) => {
        let f = submit(call(always_abort).retries(2));
        assert!(f.wait_timeout(Duration::from_secs(30)));
        let attempts = f.attempts();
        (f.result(), attempts, submit(square, 3).result())
    });
    match result {
        Err(TaskError::WorkerDied { death, .. }) => {
            assert_eq!(death, WorkerDeath::Signaled(libc::SIGABRT))
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_eq!(attempts, 3, "the first attempt and two retries");
    assert_eq!(after, Ok(9));
}

#[test]
fn a_calls_own_timeout_shorter_than_the_blocks() {
    let started = Instant::now();
    let (short, long) = pool!(Process(max_workers = 2, timeout = Duration::from_secs(60)) => {
        let short = submit(call(sleep_ms).timeout(Duration::from_millis(200)), 20_000);
        let long = submit(sleep_ms, 300);
        (short.result(), long.result())
    });
    assert_eq!(
        short,
        Err(TaskError::TimedOut {
            after: Duration::from_millis(200)
        })
    );
    assert_eq!(
        long,
        Ok(300),
        "the block's timeout still applies to the others"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_calls_own_timeout_in_a_block_without_one() {
    let (quick, short) = pool!(Process(max_workers = 1) => {
        // The worker is already running when the timed call comes.
        let quick = submit(square, 4).result();
        let short = submit(call(sleep_ms).timeout(Duration::from_millis(200)), 20_000);
        (quick, short.result())
    });
    assert_eq!(quick, Ok(16));
    assert_eq!(
        short,
        Err(TaskError::TimedOut {
            after: Duration::from_millis(200)
        })
    );
}

#[test]
fn a_call_that_timed_out_is_retried() {
    let marker = marker("hang");
    let (result, attempts) = pool!(Process => {
        let f = submit(
            call(hang_first_time).timeout(Duration::from_millis(300)).retries(1),
            marker.clone(),
        );
        assert!(f.wait_timeout(Duration::from_secs(30)));
        let attempts = f.attempts();
        (f.result(), attempts)
    });
    let _ = std::fs::remove_file(&marker);
    assert_eq!(result, Ok(8));
    assert_eq!(attempts, 2);
}

#[test]
fn a_panic_is_not_retried_unless_asked() {
    let (not_asked, asked) = (marker("panic-a"), marker("panic-b"));
    let ((plain_attempts, plain), (retried_attempts, retried)) = pool!(Process(retries = 3) => {
        let plain = submit(call(panic_first_time).retries(3), not_asked.clone());
        let retried = submit(call(panic_first_time).retries(3).retry_panics(), asked.clone());
        assert!(plain.wait_timeout(Duration::from_secs(30)));
        assert!(retried.wait_timeout(Duration::from_secs(30)));
        (
            (plain.attempts(), plain.result()),
            (retried.attempts(), retried.result()),
        )
    });
    let _ = std::fs::remove_file(&not_asked);
    let _ = std::fs::remove_file(&asked);
    let error = plain.unwrap_err();
    assert_eq!(
        error.panic().map(|p| p.message()),
        Some("not yet"),
        "{error}"
    );
    assert_eq!(plain_attempts, 1);
    assert_eq!(retried, Ok(7));
    assert_eq!(retried_attempts, 2);
}

#[test]
fn a_call_with_options_that_runs_once_says_one_attempt() {
    let (attempts, value) = pool!(Process => {
        let f = submit(call(square).timeout(Duration::from_secs(30)).retries(2), 5);
        assert!(f.wait_timeout(Duration::from_secs(30)));
        (f.attempts(), f.result())
    });
    assert_eq!(attempts, 1);
    assert_eq!(value, Ok(25));
}
