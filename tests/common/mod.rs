//! Running this test binary again as a *helper* process: one of its ignored tests, selected by
//! name and enabled by an environment variable, so that a test can kill, signal or feed a parent
//! process of its own.

#![allow(dead_code)] // each test file uses part of this

pub(crate) mod payloads;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HELPER: &str = "EXECUTOR_TEST_HELPER";

/// Whether this process is a helper; a helper test does nothing in a normal run.
pub(crate) fn helper_enabled() -> bool {
    std::env::var_os(HELPER).is_some()
}

/// The command that runs the ignored test `name` of `binary` as a helper, with piped stdio.
pub(crate) fn helper_command(binary: &Path, name: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

pub(crate) fn start_helper(binary: &Path, name: &str) -> Child {
    helper_command(binary, name)
        .spawn()
        .expect("the test binary starts again as a helper")
}

/// Reads lines from `input` until `done` says so, for at most 60 seconds. The harness's own
/// output (`test name ... `) may precede a line on the same line, so each line is kept from the
/// first of `markers` it contains.
pub(crate) fn read_until(
    input: &mut impl BufRead,
    markers: &[&str],
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while !done(&lines) {
        assert!(Instant::now() < deadline, "helper output so far: {lines:?}");
        let mut line = String::new();
        if input.read_line(&mut line).unwrap() == 0 {
            panic!("the helper's output ended early: {lines:?}");
        }
        let line = line.trim_end();
        let start = markers
            .iter()
            .filter_map(|marker| line.find(marker))
            .min()
            .unwrap_or(0);
        lines.push(line[start..].to_string());
    }
    lines
}

/// Whether process `pid` is gone (or a zombie waiting for init to reap it: it runs no code).
pub(crate) fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

/// Waits until every process in `pids` is gone; panics if one still runs after `limit`.
pub(crate) fn assert_all_gone_within(pids: &[u32], limit: Duration) {
    let since = Instant::now();
    while !pids.iter().all(|&pid| is_gone(pid)) {
        assert!(
            since.elapsed() < limit,
            "processes {pids:?} still ran {limit:?} later"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Longer than any test that uses [`within`] takes on a loaded machine, by far: reaching it means
/// a hang.
pub(crate) const HANG_LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a thread of its own and gives its value; fails the test, rather than hang it, if
/// `f` is not done within [`HANG_LIMIT`]. A panic in `f` is passed on.
pub(crate) fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match outcome.recv_timeout(HANG_LIMIT) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("{what} hung: not done after {HANG_LIMIT:?}"),
    }
}
