//! Where a task panicked: `TaskError::Panicked` carries the file, line and column of the
//! `panic!` (or `assert!`) in the user's own function, on every backend and for `map`'s items,
//! and the backtrace exactly when `RUST_BACKTRACE` enables one where the task ran. `Display`
//! reads like Rust's own panic message, and the unread-panic report names the location too.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::panic;

use concurrent_futures::{pool, Panic, TaskError, WorkerDeath};

mod common;

/// The line of the `panic!` in `explode`.
const EXPLODE_LINE: u32 = line!() + 3;

fn explode(what: String) -> u8 {
    panic!("{what} exploded")
}

/// The line of the `assert!` in `positive`.
const POSITIVE_LINE: u32 = line!() + 3;

fn positive(x: i64) -> i64 {
    assert!(x > 0, "{x} is not positive");
    x
}

/// Whether a backtrace is captured in this process (and so in its worker processes, which
/// inherit its environment).
fn backtraces_enabled() -> bool {
    Backtrace::capture().status() == BacktraceStatus::Captured
}

fn the_panic<T: std::fmt::Debug>(outcome: Result<T, TaskError>) -> Panic {
    match outcome {
        Err(TaskError::Panicked(panic)) => panic,
        other => panic!("expected a panic, got {other:?}"),
    }
}

/// The panic of `explode("the boiler")`: message, location in this file, `Display` like Rust's,
/// and a backtrace exactly when backtraces are enabled.
fn assert_explode(panic: &Panic) {
    assert_eq!(panic.message(), "the boiler exploded");
    let location = panic.location().expect("a location");
    assert_eq!(location.file(), file!());
    assert_eq!(location.line(), EXPLODE_LINE);
    assert_eq!(location.column(), 5);
    assert_eq!(
        panic.to_string(),
        format!(
            "task panicked at {}:{EXPLODE_LINE}:5:\nthe boiler exploded",
            file!()
        )
    );
    assert_eq!(panic.backtrace().is_some(), backtraces_enabled());
    if let Some(backtrace) = panic.backtrace() {
        assert!(
            backtrace.contains("explode"),
            "the backtrace names the function: {backtrace}"
        );
        assert!(format!("{panic:#}").contains("\nstack backtrace:\n"));
    }
}

fn assert_positive_failed_at_its_assert(outcome: &Result<i64, TaskError>) {
    let panic = outcome.as_ref().unwrap_err().panic().expect("a panic");
    assert_eq!(panic.message(), "-3 is not positive");
    let location = panic.location().expect("a location");
    assert_eq!((location.file(), location.line()), (file!(), POSITIVE_LINE));
}

#[test]
fn thread_reports_the_line_of_the_panic() {
    let outcome = pool!(Thread => { submit(explode, "the boiler".to_string()).result() });
    assert_explode(&the_panic(outcome));
}

#[test]
fn auto_reports_the_line_of_the_panic() {
    let outcome = pool!(Auto => { submit(explode, "the boiler".to_string()).result() });
    assert_explode(&the_panic(outcome));
}

#[test]
fn process_reports_the_line_of_the_panic() {
    let outcome =
        pool!(Process(max_workers = 1) => { submit(explode, "the boiler".to_string()).result() });
    assert_explode(&the_panic(outcome));
}

#[test]
fn an_error_display_reads_like_rusts_panic_message() {
    let error =
        pool!(Thread => { submit(explode, "the boiler".to_string()).result() }).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "task panicked at {}:{EXPLODE_LINE}:5:\nthe boiler exploded",
            file!()
        )
    );
}

#[test]
fn a_closure_reports_its_own_line() {
    let line = line!() + 1;
    let outcome = pool!(Thread => { submit(|| -> u8 { panic!("in a closure") }).result() });
    let panic = the_panic(outcome);
    let location = panic.location().expect("a location");
    assert_eq!((location.file(), location.line()), (file!(), line));
}

#[test]
fn map_items_report_the_line_of_their_assert_on_every_backend() {
    let items = [1, 2, -3, 4];
    let on_threads: Vec<_> = pool!(Thread => { map(positive, items).collect() });
    assert_positive_failed_at_its_assert(&on_threads[2]);
    let on_auto: Vec<_> = pool!(Auto => { map(positive, items).collect() });
    assert_positive_failed_at_its_assert(&on_auto[2]);
    let on_processes: Vec<_> =
        pool!(Process(max_workers = 2) => { map(positive, items, 2).collect() });
    assert_positive_failed_at_its_assert(&on_processes[2]);
    assert_eq!(on_processes[3], Ok(4), "the other items are unaffected");
}

#[test]
fn assert_reports_the_line_of_the_assert_on_processes() {
    let outcome = pool!(Process(max_workers = 1) => { submit(positive, -3).result() });
    assert_positive_failed_at_its_assert(&outcome);
}

#[test]
fn the_unread_panic_report_names_the_location() {
    for on_processes in [false, true] {
        let outcome = panic::catch_unwind(|| {
            if on_processes {
                pool!(Process(max_workers = 1) => {
                    drop(submit(explode, "nobody's".to_string()));
                })
            } else {
                pool!(Thread => {
                    drop(submit(explode, "nobody's".to_string()));
                })
            }
        });
        let payload = outcome.expect_err("an unread task panic must not vanish");
        let message = payload
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(
            message.contains(&format!(
                "nobody's exploded (at {}:{EXPLODE_LINE}:5)",
                file!()
            )),
            "{message}"
        );
    }
}

#[test]
#[ignore = "a helper of the_programs_own_hook_still_runs"]
fn helper_with_a_hook_of_its_own() {
    if !common::helper_enabled() {
        return;
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    panic::set_hook(Box::new(|_| {
        SEEN.fetch_add(1, Ordering::SeqCst);
    }));
    let outcome = pool!(Thread => { submit(explode, "the boiler".to_string()).result() });
    assert_explode(&the_panic(outcome));
    let _ = panic::catch_unwind(|| panic!("outside a task"));
    // A second block: the pool's hook is installed once, and still chains.
    let outcome = pool!(Thread => { submit(explode, "the boiler".to_string()).result() });
    assert_explode(&the_panic(outcome));
    println!("hook saw {} panics", SEEN.load(Ordering::SeqCst));
}

/// A program's own panic hook, set before any pool, still sees every panic (the pool's hook
/// chains to it), and tasks still report where they panicked.
#[test]
fn the_programs_own_hook_still_runs() {
    let output = common::helper_command(
        &std::env::current_exe().unwrap(),
        "helper_with_a_hook_of_its_own",
    )
    .output()
    .expect("the helper runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("hook saw 3 panics"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "a helper of backtraces_follow_rust_backtrace"]
fn helper_prints_whether_a_backtrace_came() {
    if !common::helper_enabled() {
        return;
    }
    let on_threads = the_panic(pool!(Thread => { submit(explode, "a".to_string()).result() }));
    let on_processes =
        the_panic(pool!(Process(max_workers = 1) => { submit(explode, "a".to_string()).result() }));
    println!(
        "backtraces: enabled {} thread {} process {} located {}",
        backtraces_enabled(),
        on_threads.backtrace().is_some(),
        on_processes.backtrace().is_some(),
        on_threads.location().is_some() && on_processes.location().is_some(),
    );
}

/// With `RUST_BACKTRACE=1` a panic carries its backtrace; with it unset (or `0`) it has none,
/// on threads and in worker processes alike; the location is there either way.
#[test]
fn backtraces_follow_rust_backtrace() {
    for (setting, expected) in [(Some("1"), "true"), (None, "false"), (Some("0"), "false")] {
        let mut command = common::helper_command(
            &std::env::current_exe().unwrap(),
            "helper_prints_whether_a_backtrace_came",
        );
        command.env_remove("RUST_LIB_BACKTRACE");
        match setting {
            Some(value) => command.env("RUST_BACKTRACE", value),
            None => command.env_remove("RUST_BACKTRACE"),
        };
        let output = command.output().expect("the helper runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!(
                "backtraces: enabled {expected} thread {expected} process {expected} located true"
            )),
            "RUST_BACKTRACE={setting:?}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn exit_7() -> u8 {
    std::process::exit(7)
}

fn generic_exit<T: Default>(_: T) -> T {
    std::process::exit(8)
}

/// The function a worker was running when it died, by its path: named for a function given by
/// its path (generic ones too), not for a closure or a function pointer held in a variable.
#[test]
fn a_worker_death_names_the_function_it_was_running() {
    let pointer: fn() -> u8 = exit_7;
    let (named, generic, closure, through_pointer) = pool!(Process(max_workers = 1) => {
        (
            submit(exit_7).result(),
            submit(generic_exit, 5u32).result(),
            submit(|| -> u8 { std::process::exit(9) }).result(),
            submit(pointer).result(),
        )
    });
    let call_of = |outcome: &Result<_, TaskError>| match outcome {
        Err(TaskError::WorkerDied { death, call, .. }) => {
            assert!(matches!(death, WorkerDeath::Exited(_)), "{death:?}");
            *call
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    };
    assert_eq!(call_of(&named), Some("panic_location::exit_7"));
    assert_eq!(
        call_of(&generic.map(|_| 0u8)),
        Some("panic_location::generic_exit<u32>")
    );
    assert_eq!(call_of(&closure), None);
    assert_eq!(call_of(&through_pointer), None);
    assert!(named
        .unwrap_err()
        .to_string()
        .ends_with("exited with code 7 while running `panic_location::exit_7`"));
}
