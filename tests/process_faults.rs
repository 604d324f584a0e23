//! A worker process that dies mid-task costs that task only: its future says how the worker died,
//! a replacement starts, and every other task completes.

use std::time::{Duration, Instant};

use concurrent_futures::{pool, TaskError, WorkerDeath};

mod common;

fn square(x: u64) -> u64 {
    x * x
}

fn abort() -> u64 {
    std::process::abort()
}

fn exit_with(code: i32) -> u64 {
    std::process::exit(code)
}

fn kill_myself() -> u64 {
    // SAFETY: sends a signal to this process; no memory is touched.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL cannot be caught")
}

fn segfault() -> u64 {
    let address = std::hint::black_box(8usize) as *mut u64;
    // SAFETY: none; this is a deliberate invalid write, to crash the worker with SIGSEGV.
    unsafe { address.write_volatile(1) };
    unreachable!("the write above faults")
}

/// Runs `fault` among 20 healthy tasks on 2 workers; checks the others' values and that the fault's
/// future resolved promptly, and returns its error.
fn fault_among_healthy_tasks(fault: fn() -> u64) -> TaskError {
    let started = Instant::now();
    let (faulty, resolved_after, healthy) = pool!(Process(max_workers = 2) => {
        let before: Vec<_> = (0..10).map(|i| submit(square, i)).collect();
        let submitted = Instant::now();
        let faulty = submit(fault);
        let after: Vec<_> = (10..20).map(|i| submit(square, i)).collect();
        let faulty = faulty.result();
        let resolved_after = submitted.elapsed();
        let healthy: Vec<u64> = before
            .into_iter()
            .chain(after)
            .map(|f| f.result().expect("a healthy task completes"))
            .collect();
        (faulty, resolved_after, healthy)
    });
    // The future of the call that killed its worker resolves within a second, never hangs.
    assert!(
        resolved_after < Duration::from_secs(1),
        "the faulty call resolved after {resolved_after:?}"
    );
    assert_eq!(healthy, (0..20).map(|i| i * i).collect::<Vec<u64>>());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    faulty.expect_err("the faulty task fails")
}

/// `fault` costs its own task only, which fails with `WorkerDied` and the `expected` death.
fn only_the_faulty_task_is_lost(fault: fn() -> u64, expected: WorkerDeath) {
    match fault_among_healthy_tasks(fault) {
        TaskError::WorkerDied { pid, death, .. } => {
            assert_ne!(pid, std::process::id());
            assert_eq!(death, expected);
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

#[test]
fn abort_is_reported_as_sigabrt() {
    only_the_faulty_task_is_lost(abort, WorkerDeath::Signaled(libc::SIGABRT));
}

#[test]
fn exit_3_is_reported_with_its_code() {
    only_the_faulty_task_is_lost(|| exit_with(3), WorkerDeath::Exited(3));
}

#[test]
fn exit_0_mid_task_is_still_a_death() {
    only_the_faulty_task_is_lost(|| exit_with(0), WorkerDeath::Exited(0));
}

#[test]
fn sigkill_is_reported_as_sigkill() {
    only_the_faulty_task_is_lost(kill_myself, WorkerDeath::Signaled(libc::SIGKILL));
}

#[test]
fn a_segfault_is_reported_as_sigsegv() {
    only_the_faulty_task_is_lost(segfault, WorkerDeath::Signaled(libc::SIGSEGV));
}

#[test]
fn the_error_message_says_how_the_worker_died() {
    let error = pool!(Process(max_workers = 1) => { submit(abort).result() }).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("was killed by signal 6 (SIGABRT)"), "{text}");
}

/// A result whose `Deserialize` panics on one value: the panic happens in the parent, on a pool
/// thread, and must not strand the call (found by review: the block used to hang).
#[derive(Debug, serde::Serialize)]
struct Touchy(u8);

impl<'de> serde::Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u8::deserialize(deserializer)?;
        assert_ne!(value, 13, "unlucky number");
        Ok(Touchy(value))
    }
}

fn touchy(value: u8) -> Touchy {
    Touchy(value)
}

#[test]
fn a_panic_while_decoding_a_result_fails_that_call_only() {
    let (unlucky, fine) = pool!(Process(max_workers = 1) => {
        let unlucky = submit(touchy, 13);
        let fine = submit(touchy, 7);
        (unlucky.result(), fine.result())
    });
    match unlucky {
        Err(TaskError::Transport(why)) => assert!(why.contains("unlucky number"), "{why}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(fine.unwrap().0, 7);
}

/// What a daemonising library does: close every descriptor it did not open.
fn close_all_descriptors() -> u64 {
    for fd in 3..1024 {
        // SAFETY: none; closing descriptors others own is the fault under test.
        unsafe { libc::close(fd) };
    }
    std::thread::sleep(Duration::from_millis(100));
    1
}

/// Writes bytes that are not a frame into every descriptor that might be the channel.
fn scribble_on_descriptors() -> u64 {
    let garbage = [0x5a_u8; 64];
    for fd in 3..64 {
        // SAFETY: `write` reads `garbage.len()` bytes from a live array; writing to descriptors
        // others own is the fault under test.
        unsafe { libc::write(fd, garbage.as_ptr().cast(), garbage.len()) };
    }
    std::thread::sleep(Duration::from_millis(100));
    1
}

#[test]
fn a_task_that_closes_the_channel_fails_alone() {
    match fault_among_healthy_tasks(close_all_descriptors) {
        TaskError::WorkerDied { .. } => {}
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

#[test]
fn a_task_that_writes_garbage_to_the_channel_fails_alone() {
    only_the_faulty_task_is_lost(scribble_on_descriptors, WorkerDeath::BrokeProtocol);
}

/// Forks a child that outlives the task by `child_ms`, then runs `then` in the task.
fn fork_then(child_ms: u64, then: fn() -> u64) -> u64 {
    // SAFETY: `fork` in a multi-threaded process: the child only sleeps and `_exit`s, both
    // async-signal-safe.
    match unsafe { libc::fork() } {
        // SAFETY: in the child, `usleep` and `_exit` only (see above).
        0 => unsafe {
            libc::usleep((child_ms * 1000) as libc::c_uint);
            libc::_exit(0)
        },
        -1 => panic!("fork failed"),
        _ => then(),
    }
}

fn fork_then_abort() -> u64 {
    fork_then(5_000, abort)
}

/// A worker that forks and then dies is seen dead at once, though its child still runs (the child
/// holds no copy of the worker's channel).
#[test]
fn a_task_that_forks_then_crashes_fails_alone_while_its_child_lives() {
    only_the_faulty_task_is_lost(fork_then_abort, WorkerDeath::Signaled(libc::SIGABRT));
}

/// The child of a `fork` returns from the task into the worker's loop, as Python code that forks
/// without exiting would: it cannot answer in the worker's name, so the parent gets the worker's
/// own answer.
fn fork_and_both_return() -> u64 {
    // SAFETY: the child goes on running Rust code after `fork` in a multi-threaded process; it
    // only returns a value up into the worker's loop, which finds its channel detached and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        666
    } else {
        std::thread::sleep(Duration::from_millis(50));
        7
    }
}

#[test]
fn the_child_of_a_fork_cannot_answer_for_the_worker() {
    let values = pool!(Process(max_workers = 1) => {
        let work: Vec<_> = (0..5).map(|_| submit(fork_and_both_return)).collect();
        work.into_iter().map(|f| f.result()).collect::<Vec<_>>()
    });
    assert_eq!(values, vec![Ok(7); 5]);
}

/// An argument whose `Serialize` panics: the arguments are encoded at `submit`, on the block's own
/// thread, and the panic must fail that call only rather than unwind through the block.
struct Explosive;

impl serde::Serialize for Explosive {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("cannot serialize this")
    }
}

impl<'de> serde::Deserialize<'de> for Explosive {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Explosive)
    }
}

fn take_explosive(_: Explosive) -> u64 {
    1
}

#[test]
fn a_panic_while_encoding_an_argument_fails_that_call_only() {
    let (exploded, fine) = pool!(Process(max_workers = 1) => {
        let exploded = submit(take_explosive, Explosive);
        let fine = submit(square, 5);
        (exploded.result(), fine.result())
    });
    match exploded {
        Err(TaskError::Transport(why)) => assert_eq!(
            why,
            "could not encode the arguments: a `Serialize` implementation panicked: cannot \
             serialize this"
        ),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(fine, Ok(25));
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Python cannot stop a running call; here the call's worker is killed at its timeout, the future
/// says so, and the other calls complete on a replacement.
#[test]
fn a_call_that_overruns_its_timeout_is_killed_with_its_worker() {
    let started = Instant::now();
    let (stuck, others) = pool!(Process(max_workers = 1, timeout = Duration::from_millis(300)) => {
        let quick = submit(sleep_ms, 10);
        let stuck = submit(sleep_ms, 60_000);
        let after: Vec<_> = (0..3).map(|i| submit(sleep_ms, i)).collect();
        let stuck = stuck.result();
        let mut others = vec![quick.result()];
        others.extend(after.into_iter().map(|f| f.result()));
        (stuck, others)
    });
    assert_eq!(
        stuck,
        Err(TaskError::TimedOut {
            after: Duration::from_millis(300)
        })
    );
    assert_eq!(others, [Ok(10), Ok(0), Ok(1), Ok(2)]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
#[ignore = "helper of a_worker_death_is_reported_when_sigchld_is_ignored"]
fn helper_that_ignores_sigchld() {
    if !common::helper_enabled() {
        return;
    }
    // SAFETY: sets a signal's disposition; nothing else in this process handles SIGCHLD.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let outcomes = pool!(Process(max_workers = 2) => {
        let aborted = submit(abort);
        let exited = submit(exit_with, 3);
        let fine = submit(square, 4);
        [aborted.result(), exited.result(), fine.result()]
    });
    for outcome in outcomes {
        match outcome {
            Err(TaskError::WorkerDied { death, .. }) => println!("outcome: died: {death:?}"),
            other => println!("outcome: {other:?}"),
        }
    }
}

/// With `SIGCHLD` ignored the kernel reaps the workers itself, so their exit status is lost: a
/// worker that aborts or exits is still reported as dead, saying that how is not known (it used to
/// be blamed for breaking the protocol).
#[test]
fn a_worker_death_is_reported_when_sigchld_is_ignored() {
    let mut command = common::helper_command(
        &std::env::current_exe().unwrap(),
        "helper_that_ignores_sigchld",
    );
    let output = common::within("the helper", move || command.output().unwrap());
    let out = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = out
        .lines()
        .filter_map(|l| l.find("outcome: ").map(|at| &l[at..]))
        .collect();
    assert_eq!(
        lines,
        [
            "outcome: died: StatusUnknown",
            "outcome: died: StatusUnknown",
            "outcome: Ok(16)"
        ],
        "{out}"
    );
}

fn length(bytes: Vec<u8>) -> usize {
    let len = bytes.len();
    // Freeing it takes a while; this call returns at once.
    std::mem::forget(bytes);
    len
}

/// `timeout` times the call, not the moving of its arguments: a 512 MiB argument takes far longer
/// than 100 ms to cross, and the call that returns at once does not time out; a call that runs
/// past the timeout still does.
#[test]
fn the_timeout_counts_the_call_not_the_moving_of_its_argument() {
    const LARGE: usize = 1 << 29;
    let (sent, stuck) = common::within("the block", || {
        pool!(Process(max_workers = 1, timeout = Duration::from_millis(100)) => {
            let sent = submit(length, vec![1u8; LARGE]).result();
            let stuck = submit(sleep_ms, 60_000).result();
            (sent, stuck)
        })
    });
    assert_eq!(sent, Ok(LARGE));
    assert_eq!(
        stuck,
        Err(TaskError::TimedOut {
            after: Duration::from_millis(100)
        })
    );
}

#[test]
#[ignore = "helper of a_worker_that_cannot_start_says_why"]
fn helper_over_its_process_limit() {
    if !common::helper_enabled() {
        return;
    }
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lowers this process's limit on processes and, as root (which the limit does not
    // bind), drops to the user `nobody`; the helper runs nothing but the block below afterwards.
    let limited = unsafe {
        libc::setrlimit(libc::RLIMIT_NPROC, &none) == 0
            && (libc::geteuid() != 0
                || (libc::setgroups(0, std::ptr::null()) == 0
                    && libc::setgid(65534) == 0
                    && libc::setuid(65534) == 0))
    };
    if !limited {
        println!("outcome: skipped: {}", std::io::Error::last_os_error());
        return;
    }
    match pool!(Process(max_workers = 1) => { submit(square, 3).result() }) {
        Err(error) => println!("outcome: error: {error}"),
        Ok(value) => println!("outcome: ok: {value}"),
    }
}

/// A worker that cannot start for `RLIMIT_NPROC` says what could not start, and names the limit
/// (the message used to be "thread: Resource temporarily unavailable"). The helper drops to the
/// user `nobody` first, since root ignores the limit.
#[test]
fn a_worker_that_cannot_start_says_why() {
    let mut command = common::helper_command(
        &std::env::current_exe().unwrap(),
        "helper_over_its_process_limit",
    );
    let output = common::within("the helper", move || command.output().unwrap());
    let out = String::from_utf8_lossy(&output.stdout);
    let outcome = out
        .lines()
        .find_map(|l| l.find("outcome: ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no outcome: {out}"));
    if outcome.starts_with("outcome: skipped") {
        eprintln!("cannot drop privileges here, not tested: {outcome}");
        return;
    }
    assert!(
        outcome.starts_with(
            "outcome: error: no worker process could run the task: could not start a worker \
             process ("
        ) && outcome.contains("Resource temporarily unavailable")
            && outcome.contains("RLIMIT_NPROC"),
        "{outcome}"
    );
}
