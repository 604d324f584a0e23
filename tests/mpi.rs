//! The Mpi backend, in both start modes: this test binary runs again as a helper, launched by
//! `mpirun -n 3` (rank 0 runs the helper test, ranks 1 and 2 become workers before `main`) or
//! alone (its first block spawns the workers), and the tests check what the helpers report.
//!
//! Needs Open MPI (`mpirun` on the `PATH`); run with `cargo test --features mpi --test mpi`.
//!
//! Over 500 lines: each helper that `mpirun` runs sits beside the test that reads its report.

#![cfg(feature = "mpi")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::helper_enabled;
use concurrent_futures::{
    as_completed, backend, current_worker, pool, Backend, TaskError, WorkerDeath,
};
use serde::{Deserialize, Serialize};

/// A generous bound for one helper run: a hang fails the test instead of the CI job.
const NO_HANG: Duration = Duration::from_secs(120);

/// `mpirun` with what a root CI machine with 2 cores needs.
fn mpirun(extra: &[&str]) -> Command {
    let mut command = Command::new("mpirun");
    command.args(["--oversubscribe"]).args(extra);
    allow_root(&mut command);
    command
}

fn allow_root(command: &mut Command) {
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
}

/// Appends the arguments that run the ignored test `name` of `binary` as a helper.
fn helper_args(command: &mut Command, binary: &Path, name: &str) {
    command.arg(binary).args(helper_flags(name));
    command.env("EXECUTOR_TEST_HELPER", "1");
}

/// The command that runs the helper `name` of `binary` without a launcher (its first block spawns
/// its workers).
fn alone(binary: &Path, name: &str) -> Command {
    let mut command = Command::new(binary);
    command.args(helper_flags(name));
    command.env("EXECUTOR_TEST_HELPER", "1");
    allow_root(&mut command);
    command
}

/// The test harness's arguments that run the ignored test `name` alone, its output shown.
fn helper_flags(name: &str) -> [&str; 5] {
    [
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]
}

/// Runs `command` to its end, or kills it after [`NO_HANG`] and fails.
fn run_bounded(mut command: Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > NO_HANG {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            // The ends first: a CI log may keep only the start and the end of a long message.
            panic!(
                "still running after {NO_HANG:?}; the last lines of stdout:\n{}\nof stderr:\n{}\n\
                 in full:\n{}",
                last_lines(&output.stdout, 15),
                last_lines(&output.stderr, 25),
                text(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn last_lines(bytes: &[u8], count: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// Whether this process is a helper; in one, the library's log goes to stderr with the time since
/// the start, so that a helper that hangs shows how far its pool got.
fn helper_start() -> bool {
    struct Stderr(Instant);
    impl log::Log for Stderr {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.level() <= log::Level::Debug
        }
        fn log(&self, record: &log::Record) {
            eprintln!(
                "[{:>7.3} s] {}",
                self.0.elapsed().as_secs_f64(),
                record.args()
            );
        }
        fn flush(&self) {}
    }
    if !helper_enabled() {
        return false;
    }
    static LOGGER: std::sync::OnceLock<Stderr> = std::sync::OnceLock::new();
    let logger = LOGGER.get_or_init(|| Stderr(Instant::now()));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    true
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The line of the helper's output that starts with `marker`, without it.
fn reported(output: &Output, marker: &str) -> Option<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            line.find(marker)
                .map(|at| line[at + marker.len()..].to_string())
        })
}

fn this_binary() -> std::path::PathBuf {
    std::env::current_exe().unwrap()
}

// ---------------------------------------------------------------------------------------------
// What the helpers run.

fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// The line of the `panic!` in `fails`, which a rank's panic must report.
const FAILS_PANIC_LINE: u32 = line!() + 3;

fn fails(message: String) -> u8 {
    panic!("{message}")
}

fn where_am_i() -> (Option<usize>, String, u32) {
    let worker = current_worker().expect("a call runs on a worker");
    assert_eq!(worker.backend(), Backend::Mpi);
    (
        worker.rank(),
        worker.host().expect("an Mpi worker has a host").to_string(),
        worker.pid(),
    )
}

/// As `where_am_i`, for long enough that calls spread over the workers.
fn where_am_i_slowly() -> (Option<usize>, String, u32) {
    std::thread::sleep(Duration::from_millis(50));
    where_am_i()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Page {
    url: String,
    words: Vec<String>,
}

fn count_words(page: Page) -> (String, usize) {
    (page.url, page.words.len())
}

fn describe(text: &str, bytes: &[u8]) -> String {
    format!("{text}:{}", bytes.len())
}

fn checksum(bytes: Vec<u8>) -> (usize, u64) {
    (bytes.len(), bytes.iter().map(|&b| b as u64).sum())
}

fn big_result(n: usize) -> Vec<u8> {
    vec![3u8; n]
}

/// `n` bytes that differ from call to call and from place to place, so that a result delivered to
/// the wrong future, or with its bytes shifted, does not compare equal.
fn patterned(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}

fn square(x: u64) -> u64 {
    x * x
}

static REMEMBERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn remember(value: u64) {
    REMEMBERED.store(value, std::sync::atomic::Ordering::SeqCst);
}

fn remembered() -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    REMEMBERED.load(std::sync::atomic::Ordering::SeqCst)
}

fn refuse() {
    panic!("no licence")
}

fn open_a_process_block_inside() -> Vec<u64> {
    pool!(Process(max_workers = 2) => {
        let futures: Vec<_> = (0..4).map(|i| submit(add, i, 10)).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    })
}

fn open_a_block_inside() -> Result<u64, String> {
    pool!(Mpi => { submit(add, 1, 1).result() }).map_err(|e| e.to_string())
}

/// Everything a block can do, on whichever workers this run has; prints the ranks and pids used.
#[test]
#[ignore = "a helper: run by the tests below, under mpirun or alone"]
fn helper_every_feature_of_a_block() {
    if !helper_start() {
        return;
    }
    // Results, in order, through functions, closures, paths and user structs.
    let page = Page {
        url: "https://example.com".into(),
        words: vec!["a".into(), "b".into()],
    };
    let (sums, counted, doubled, power) = pool!(Mpi => {
        let futures: Vec<_> = (0..200).map(|i| submit(add, i, 1)).collect();
        let counted = submit(count_words, page.clone());
        let doubled = submit(|x: i64| x * 2, 21);
        let power = submit(u64::pow, 2, 10);
        let sums: Vec<u64> = futures.into_iter().map(|f| f.result().unwrap()).collect();
        (sums, counted.result(), doubled.result(), power.result())
    });
    assert_eq!(sums, (1..=200).collect::<Vec<_>>());
    assert_eq!(counted, Ok(("https://example.com".to_string(), 2)));

    // Results that know their inputs, through a name for the backend.
    backend!(Ranks = Mpi(max_workers = 2));
    let (mut keyed, mut unordered) = pool!(Ranks => {
        let futures: Vec<_> = (0..5u64).map(|i| (i, submit(add, i, 100))).collect();
        let keyed: Vec<(u64, u64)> = as_completed(futures, None)
            .map(|done| {
                let (i, future) = done.unwrap();
                (i, future.result().unwrap())
            })
            .collect();
        let unordered: Vec<(u64, Result<u64, TaskError>)> =
            map_unordered(|x: u64| x * 3, 0..7u64, 2).collect();
        (keyed, unordered)
    });
    keyed.sort();
    assert_eq!(keyed, (0..5).map(|i| (i, i + 100)).collect::<Vec<_>>());
    unordered.sort_by_key(|(x, _)| *x);
    assert_eq!(
        unordered,
        (0..7).map(|x| (x, Ok(3 * x))).collect::<Vec<_>>()
    );
    assert_eq!(doubled, Ok(42));
    assert_eq!(power, Ok(1024));

    // A panic comes back typed; the worker serves on.
    let (failed, after) = pool!(Mpi => {
        let failed = submit(fails, "bad input".to_string());
        (failed.result(), submit(add, 2, 2).result())
    });
    let panic = failed.unwrap_err().panic().cloned().expect("a panic");
    assert_eq!(panic.message(), "bad input");
    // Where it panicked crosses from the rank: the `panic!` in `fails`, and the backtrace when
    // RUST_BACKTRACE asks for one (the ranks inherit this process's environment).
    let location = panic.location().expect("a location");
    assert_eq!(location.file(), file!());
    assert_eq!(location.line(), FAILS_PANIC_LINE);
    assert_eq!(
        panic.backtrace().is_some(),
        std::backtrace::Backtrace::capture().status() == std::backtrace::BacktraceStatus::Captured
    );
    assert_eq!(after, Ok(4));

    // Borrowed text and bytes, a 1 MiB argument and a 1 MiB result (their own messages), and a
    // 32 KiB result (a raw tail that travels inside its outcome's message).
    let text = String::from("words");
    let bytes = vec![1u8; 100_000];
    let big = vec![2u8; 1 << 20];
    let (described, summed, returned, inline) = pool!(Mpi => {
        let described = submit(describe, text.as_str(), bytes.as_slice());
        let summed = submit(checksum, big.clone());
        let returned = submit(big_result, 1 << 20);
        let inline = submit(big_result, 32 << 10);
        (described.result(), summed.result(), returned.result(), inline.result())
    });
    assert_eq!(described, Ok("words:100000".to_string()));
    assert_eq!(summed, Ok((1 << 20, 2 << 20)));
    assert_eq!(returned, Ok(vec![3u8; 1 << 20]));
    assert_eq!(inline, Ok(vec![3u8; 32 << 10]));

    // Many large results in a row, of sizes on either side of the results a worker may have in
    // flight (1 MiB), between tiny calls: each reaches its own future, whole and in order.
    let sizes = [1 << 20, 70 << 10, 3 << 20, 1 << 20, (1 << 20) + 1, 5 << 20];
    let (large, tiny) = pool!(Mpi(max_workers = 2) => {
        let mut large = Vec::new();
        let mut tiny = Vec::new();
        for round in 0..4u8 {
            for (i, &n) in sizes.iter().enumerate() {
                let seed = round * 16 + i as u8;
                large.push((seed, n, submit(patterned, seed, n)));
                tiny.push(submit(add, seed as u64, 1));
            }
        }
        let large: Vec<_> = large.into_iter().map(|(s, n, f)| (s, n, f.result())).collect();
        let tiny: Vec<_> = tiny.into_iter().map(|f| f.result()).collect();
        (large, tiny)
    });
    for (seed, n, result) in large {
        assert!(
            result == Ok(patterned(seed, n)),
            "result {seed} of {n} bytes"
        );
    }
    let expected: Vec<_> = (0..4u64)
        .flat_map(|round| (0..6).map(move |i| Ok(round * 16 + i + 1)))
        .collect();
    assert_eq!(tiny, expected);

    // Arguments over the 4 GiB message limit fail at `submit`, unsent, as on Process (the vector
    // is `calloc`'d and moves into the call without a copy: its pages are never touched).
    let (huge, after) = pool!(Mpi => {
        let huge = submit(checksum, vec![0u8; (4 << 30) + 1]);
        (huge.result(), submit(add, 1, 1).result())
    });
    assert!(
        matches!(&huge, Err(TaskError::Transport(why))
            if why.starts_with("the arguments are larger than the 4 GiB message limit")),
        "{huge:?}"
    );
    assert_eq!(after, Ok(2));

    // map, in order, in chunks.
    let squares: Vec<u64> = pool!(Mpi => {
        map(square, 0..1000u64, 7).map(Result::unwrap).collect()
    });
    assert_eq!(squares, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());

    // Where calls run: other processes, Mpi workers with a rank and this host's name.
    let places: Vec<(Option<usize>, String, u32)> = pool!(Mpi => {
        let futures: Vec<_> = (0..8).map(|_| submit(where_am_i_slowly)).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    let ranks: BTreeSet<usize> = places.iter().map(|p| p.0.expect("a rank")).collect();
    let pids: BTreeSet<u32> = places.iter().map(|p| p.2).collect();
    assert!(!pids.contains(&std::process::id()));
    assert!(places.iter().all(|p| !p.1.is_empty()));

    // max_workers caps how many workers a block uses.
    let capped: BTreeSet<u32> = pool!(Mpi(max_workers = 1) => {
        let futures: Vec<_> = (0..20).map(|_| submit(where_am_i)).collect();
        futures.into_iter().map(|f| f.result().unwrap().2).collect()
    });
    assert_eq!(capped.len(), 1, "{capped:?}");

    // A nested block shares the workers, which live for the whole process.
    let (outer, inner) = pool!(Mpi => {
        let outer = submit(where_am_i);
        let inner: Vec<u32> = pool!(Mpi => {
            let futures: Vec<_> = (0..10).map(|_| submit(where_am_i)).collect();
            futures.into_iter().map(|f| f.result().unwrap().2).collect()
        });
        (outer.result().unwrap().2, inner)
    });
    let mut seen = pids.clone();
    seen.extend(capped.iter().chain(&inner).chain([&outer]));
    assert_eq!(
        seen.len(),
        2,
        "the workers are kept between blocks: {seen:?}"
    );

    // A task cannot open an Mpi block of its own: a typed error, not a hang.
    let nested = pool!(Mpi => { submit(open_a_block_inside).result() }).unwrap();
    assert!(
        matches!(&nested, Err(why) if why.contains("inside a task of an Mpi worker")),
        "{nested:?}"
    );

    // An initializer runs on each worker before the block's first call there; a failed one breaks
    // the block (its calls fail with why), not the workers.
    let seen: BTreeSet<u64> = pool!(Mpi(initializer = remember, initargs = 7) => {
        let futures: Vec<_> = (0..8).map(|_| submit(remembered)).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    assert_eq!(seen, BTreeSet::from([7]));
    let again =
        pool!(Mpi(initializer = remember, initargs = (9,)) => { submit(remembered).result() });
    assert_eq!(again, Ok(9));
    let broken = pool!(Mpi(initializer = refuse) => {
        let first = submit(add, 1, 1);
        (first.result(), submit(add, 2, 2).result())
    });
    for result in [broken.0, broken.1] {
        assert!(
            matches!(&result, Err(TaskError::WorkerStart(why)) if why.contains("initializer panicked: no licence")),
            "{result:?}"
        );
    }
    assert_eq!(pool!(Mpi => { submit(add, 3, 3).result() }), Ok(6));

    // `stop` (issue 17): a running call cannot be stopped (killing a rank ends the MPI job), so
    // `stop` answers false and it runs to its value; a queued call is cancelled.
    let (running, stopped_running, queued, stopped_queued) = pool!(Mpi(max_workers = 1) => {
        let running = submit(sleep_ms, 300);
        let queued = submit(add, 4, 4);
        while !running.running() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let stopped_queued = queued.stop();
        let stopped_running = running.stop();
        (running.result(), stopped_running, queued.result(), stopped_queued)
    });
    assert!(stopped_queued, "stop cancels a queued call");
    assert_eq!(queued, Err(TaskError::Cancelled));
    assert!(!stopped_running, "a running Mpi call cannot be stopped");
    assert_eq!(running, Ok(300));

    // A task may open a Process block: its worker processes start from the MPI worker.
    let inside = pool!(Mpi => { submit(open_a_process_block_inside).result() });
    assert_eq!(inside, Ok(vec![10, 11, 12, 13]));

    // Blocks opened by several threads at once share the workers.
    let sums: Vec<u64> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..3u64)
            .map(|t| {
                s.spawn(move || {
                    pool!(Mpi => {
                        let futures: Vec<_> = (0..300).map(|i| submit(add, i, t)).collect();
                        futures.into_iter().map(|f| f.result().unwrap()).sum::<u64>()
                    })
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(sums, [44850, 45150, 45450]);

    // Leaving early runs every call submitted, by default...
    let futures = (|| {
        pool!(Mpi(max_workers = 1) => {
            let futures: Vec<_> = (0..200).map(|i| submit(add, i, 0)).collect();
            if futures.len() == 200 {
                return futures;
            }
            Vec::new()
        })
    })();
    assert_eq!(futures.len(), 200);
    for (i, future) in futures.into_iter().enumerate() {
        assert_eq!(future.result(), Ok(i as u64), "call {i} ran");
    }

    // ... and with `cancel_futures = true` cancels what has not started, and still joins.
    let cancelled = (|| {
        pool!(Mpi(max_workers = 1, cancel_futures = true) => {
            let futures: Vec<_> = (0..2000).map(|i| submit(add, i, 0)).collect();
            if futures.len() == 2000 {
                return futures.len();
            }
            0
        })
    })();
    assert_eq!(cancelled, 2000);

    println!("MPI ranks {ranks:?}");
    println!("MPI workers {}", pids.len());
}

/// Submits a call to a worker that runs another executable: the call fails with why.
#[test]
#[ignore = "a helper: run by the tests below, under mpirun"]
fn helper_another_binary_is_refused() {
    if !helper_start() {
        return;
    }
    let result = pool!(Mpi => { submit(add, 1, 2).result() });
    match result {
        Err(TaskError::WorkerStart(why)) => println!("MPI refused: {why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn abort_the_worker() -> u8 {
    std::process::abort()
}

/// Aborts its worker the first time (when `marker` does not exist yet, creating it), returns 7
/// the next: a call that succeeds when it is retried on another worker.
fn abort_once(marker: String) -> u8 {
    if std::path::Path::new(&marker).exists() {
        return 7;
    }
    std::fs::write(&marker, b"aborted once").unwrap();
    std::process::abort()
}

/// Panics the first time (as [`abort_once`]), returns 8 the next.
fn panic_once(marker: String) -> u8 {
    if std::path::Path::new(&marker).exists() {
        return 8;
    }
    std::fs::write(&marker, b"panicked once").unwrap();
    panic!("the first run panics")
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn slow_add(a: u64, b: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(5));
    a + b
}

/// Kills a worker with a call; prints what the other calls and the killed one gave.
#[test]
#[ignore = "a helper: run by the tests below"]
fn helper_a_worker_dies() {
    if !helper_start() {
        return;
    }
    let (died, rest) = pool!(Mpi => {
        let died = submit(abort_the_worker);
        let rest: Vec<_> = (0..20).map(|i| submit(slow_add, i, 1)).collect();
        (died.result(), rest.into_iter().map(|f| f.result()).collect::<Vec<_>>())
    });
    match died {
        Err(TaskError::WorkerDied {
            death: WorkerDeath::Vanished,
            call,
            ..
        }) => {
            // The death names the call the rank was running.
            assert_eq!(call, Some("mpi::abort_the_worker"));
            println!("MPI died: WorkerDied")
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    let completed = rest.iter().filter(|r| r.is_ok()).count();
    let failed = rest
        .iter()
        .filter(|r| matches!(r, Err(TaskError::WorkerDied { .. })))
        .count();
    assert_eq!(completed + failed, rest.len(), "{rest:?}");
    let after = pool!(Mpi => { submit(add, 40, 2).result() });

    // Retries: a call whose rank was lost runs again on another, and a panic is retried when the
    // call asks; the futures count the runs. Only without a launcher, where lost workers are
    // spawned anew: under `mpirun -n 3` the call above took one of the two worker ranks, and the
    // retried call would take the other.
    if std::env::var_os("OMPI_COMM_WORLD_RANK").is_some() {
        println!("MPI after: completed {completed} failed {failed} then {after:?}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mpi-retries-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let aborts = dir.join("abort").display().to_string();
    let panics = dir.join("panic").display().to_string();
    let (retried, panicked) = pool!(Mpi(retries = 1) => {
        let retried = submit(abort_once, aborts);
        let panicked = submit(call(panic_once).retry_panics(), panics);
        assert!(retried.wait_timeout(Duration::from_secs(60)));
        assert!(panicked.wait_timeout(Duration::from_secs(60)));
        (
            (retried.attempts(), retried.result()),
            (panicked.attempts(), panicked.result()),
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(retried, (2, Ok(7)), "a lost rank's call runs again");
    assert_eq!(panicked, (2, Ok(8)), "a panic is retried when asked");
    println!("MPI after: completed {completed} failed {failed} then {after:?}");
}

/// Spawns two workers, the second of which answers its hello only after 30 s (a debug-build hook),
/// and kills the first with a call while the second still greets: Open MPI ends the whole spawned
/// job, so both are replaced. Prints how many workers then served two slow calls, and when.
#[test]
#[ignore = "a helper: run by the test below"]
fn helper_a_greeting_worker_ends_with_its_job() {
    if !helper_start() {
        return;
    }
    let started = Instant::now();
    let (died, pids) = pool!(Mpi(max_workers = 2) => {
        let died = submit(abort_the_worker);
        assert!(died.wait_timeout(Duration::from_secs(50)), "the abort was not seen");
        let slow: Vec<_> = (0..2).map(|_| submit(slow_pid)).collect();
        assert!(
            slow.iter().all(|f| f.wait_timeout(Duration::from_secs(25))),
            "the calls after the loss did not run within 25 s"
        );
        (died.result(), slow.into_iter().map(|f| f.result()).collect::<Vec<_>>())
    });
    assert!(
        matches!(died, Err(TaskError::WorkerDied { .. })),
        "{died:?}"
    );
    let pids: BTreeSet<u32> = pids.into_iter().map(Result::unwrap).collect();
    println!(
        "MPI greeting: {} workers after {:.1} s",
        pids.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Replaces its own executable file with another one (its own bytes and one more), then opens a
/// block: the spawned workers run the replacement and refuse to serve. Prints what the call gave.
#[test]
#[ignore = "a helper: run by the test below, from a copy of the test binary"]
fn helper_spawned_workers_run_another_executable() {
    if !helper_start() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let exe = std::env::current_exe().unwrap();
    let mut other = std::fs::read("/proc/self/exe").unwrap();
    other.push(0);
    let new = exe.with_extension("new");
    std::fs::write(&new, &other).unwrap();
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&new, &exe).unwrap();
    let result = pool!(Mpi(max_workers = 1) => { submit(add, 1, 2).result() });
    println!("MPI refused: {result:?}");
}

fn slow_pid() -> u32 {
    std::thread::sleep(Duration::from_millis(300));
    std::process::id()
}

/// Opens no block at all: rank 0 still stops its workers at exit.
#[test]
#[ignore = "a helper: run by the tests below, under mpirun"]
fn helper_no_block() {
    if helper_enabled() {
        println!("MPI no block");
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn launched_ranks_one_and_two_serve_every_kind_of_call() {
    let mut command = mpirun(&["-n", "3"]);
    helper_args(
        &mut command,
        &this_binary(),
        "helper_every_feature_of_a_block",
    );
    let output = run_bounded(command);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        reported(&output, "MPI ranks ").as_deref(),
        Some("{1, 2}"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_program_started_without_a_launcher_spawns_its_workers() {
    let command = alone(&this_binary(), "helper_every_feature_of_a_block");
    let output = run_bounded(command);
    assert!(output.status.success(), "{}", text(&output));
    // Spawned workers are ranks 0 and 1 of their own job (one per CPU on this machine).
    let ranks = reported(&output, "MPI ranks ").unwrap_or_default();
    assert!(ranks.starts_with("{0"), "{}", text(&output));
}

#[test]
fn calls_cross_over_tcp_as_between_hosts() {
    let mut command = mpirun(&["--mca", "btl", "tcp,self", "-n", "3"]);
    helper_args(
        &mut command,
        &this_binary(),
        "helper_every_feature_of_a_block",
    );
    let output = run_bounded(command);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        reported(&output, "MPI ranks ").as_deref(),
        Some("{1, 2}"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_launched_program_that_opens_no_block_ends_cleanly() {
    let mut command = mpirun(&["-n", "3"]);
    helper_args(&mut command, &this_binary(), "helper_no_block");
    let output = run_bounded(command);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        reported(&output, "MPI no block").is_some(),
        "{}",
        text(&output)
    );
}

#[test]
fn ranks_running_another_binary_refuse_and_the_calls_say_why() {
    let dir = std::env::temp_dir().join(format!("executor-mpi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = dir.join("other-build");
    std::fs::copy(this_binary(), &other).unwrap();
    // Another build: the same program with one more byte at the end.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&other)
        .unwrap()
        .write_all(b"\0")
        .unwrap();
    let mut command = mpirun(&["-n", "1"]);
    helper_args(
        &mut command,
        &this_binary(),
        "helper_another_binary_is_refused",
    );
    command.args([":", "-n", "2"]).arg(&other);
    let output = run_bounded(command);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", text(&output));
    let why = reported(&output, "MPI refused: ").unwrap_or_default();
    assert!(
        why.contains("runs another executable than the pool's"),
        "{}",
        text(&output)
    );
}

/// Launched by `mpirun` (Open MPI 4.1), a worker rank that dies takes the whole job down: mpirun
/// aborts every rank, rank 0 included, and exits non-zero. No hang, and it says which rank died.
#[test]
fn under_mpirun_a_dying_worker_ends_the_job_with_an_error() {
    let mut command = mpirun(&["-n", "3"]);
    helper_args(&mut command, &this_binary(), "helper_a_worker_dies");
    let output = run_bounded(command);
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exited on signal 6"), "{}", text(&output));
}

/// Without a launcher, the spawned workers are a job of their own: when one dies, Open MPI aborts
/// that job (both workers), but this process lives on. Its calls in flight fail with
/// `WorkerDied`, and the next calls run on freshly spawned workers.
#[test]
fn without_a_launcher_a_dead_worker_fails_its_call_and_new_workers_take_over() {
    let command = alone(&this_binary(), "helper_a_worker_dies");
    let output = run_bounded(command);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        reported(&output, "MPI died: WorkerDied").is_some(),
        "{}",
        text(&output)
    );
    let after = reported(&output, "MPI after: ").unwrap_or_default();
    assert!(after.ends_with("then Ok(42)"), "{}", text(&output));
}

/// A spawned worker that has not answered its hello has no pid to watch; when its job ends (a
/// sibling died) it is given up with it, so two workers are spawned again, not one, and the calls
/// after the loss run at once rather than after the hello's 60 s deadline.
#[test]
fn without_a_launcher_a_worker_still_greeting_is_replaced_with_its_spawned_job() {
    let mut command = alone(&this_binary(), "helper_a_greeting_worker_ends_with_its_job");
    command.env("EXECUTOR_MPI_TEST_SLOW_HELLO", "1:30000");
    let output = run_bounded(command);
    assert!(output.status.success(), "{}", text(&output));
    let report = reported(&output, "MPI greeting: ").unwrap_or_default();
    assert!(report.starts_with("2 workers"), "{}", text(&output));
}

/// Spawned workers that refuse to serve (the executable on disk is another program now) count as
/// failed spawns: after three, the calls fail with why, instead of workers being spawned for ever.
#[test]
fn without_a_launcher_workers_that_refuse_fail_the_calls_instead_of_being_respawned() {
    let dir = std::env::temp_dir().join(format!("mpi-refuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("mpi-test");
    std::fs::copy(this_binary(), &copy).unwrap();
    let command = alone(&copy, "helper_spawned_workers_run_another_executable");
    let output = run_bounded(command);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", text(&output));
    let report = reported(&output, "MPI refused: ").unwrap_or_default();
    assert!(
        report.starts_with("Err(WorkerStart(") && report.contains("another executable"),
        "{}",
        text(&output)
    );
    let spawns = String::from_utf8_lossy(&output.stderr)
        .matches("spawned 1 MPI workers")
        .count();
    assert_eq!(spawns, 3, "{}", text(&output));
}

/// `mpirun --enable-recovery` keeps the job alive when a rank dies: its call fails with
/// `WorkerDied`, the other worker serves the rest and later blocks, and the program ends cleanly
/// (without `MPI_Finalize`, which would wait for the dead rank).
#[test]
fn under_mpirun_with_recovery_a_dead_worker_fails_its_call_and_the_others_serve_on() {
    let mut command = mpirun(&["--enable-recovery", "-n", "3"]);
    helper_args(&mut command, &this_binary(), "helper_a_worker_dies");
    let output = run_bounded(command);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        reported(&output, "MPI died: WorkerDied").is_some(),
        "{}",
        text(&output)
    );
    let after = reported(&output, "MPI after: ").unwrap_or_default();
    assert!(after.ends_with("then Ok(42)"), "{}", text(&output));
}
