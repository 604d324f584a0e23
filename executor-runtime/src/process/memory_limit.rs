//! `memory_limit = bytes` (Process): a cap on each worker's memory, and telling a task that hit it
//! apart from one that aborted for another reason.
//!
//! The cap is `RLIMIT_DATA`, set on the worker by the parent right after it starts (`prlimit`),
//! before the worker has read its hello, so it holds for the initializer and every task. Since
//! Linux 4.7 `RLIMIT_DATA` counts the heap and every private writable mapping (what `malloc` and
//! Rust's allocator get memory from), but not address space that is only reserved: `RLIMIT_AS`
//! would also count the 64 MiB that glibc reserves for each thread's malloc arena, and refuse
//! memory that was never used.
//!
//! An allocation over the cap fails. Rust then prints `memory allocation of N bytes failed` on
//! standard error and aborts; nothing in stable Rust lets the worker intercept that. So the parent
//! gives such a worker a pipe as standard error, relays everything written there to its own
//! standard error unchanged, and remembers whether the last thing written was that message. A
//! worker killed by `SIGABRT` right after it (and the backtrace Rust may print) is reported as over
//! its limit. (C code that gets `NULL` from `malloc` usually crashes some other way, and is
//! reported as the crash it is.)

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long the parent waits for a dead worker's last words before giving up on them (only a
/// process the worker forked can still hold the pipe open by then).
const LAST_WORDS_WAIT: Duration = Duration::from_millis(500);

/// What Rust's default allocation-error handler prints before it aborts.
const ALLOCATION_FAILED: &[u8] = b"memory allocation of ";

/// A pipe for a worker's standard error: the write end goes to the child, the read end to a relay.
pub(crate) struct StderrPipe {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
}

impl StderrPipe {
    pub(crate) fn new() -> io::Result<StderrPipe> {
        let mut fds = [0; 2];
        // SAFETY: `pipe2` writes two descriptors into the array we pass, which has room for two.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nothing else.
        Ok(unsafe {
            StderrPipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            }
        })
    }
}

/// Sets `RLIMIT_DATA` of the (just started) process `pid` to `bytes`.
pub(crate) fn apply(pid: u32, bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit64 {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: `prlimit64` reads the `rlimit64` we pass and writes nothing (the old-limit pointer is
    // null); `pid` is our unreaped child, so it names that process.
    let result = unsafe {
        libc::prlimit64(
            pid as libc::pid_t,
            libc::RLIMIT_DATA,
            &limit,
            std::ptr::null_mut(),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The relay of one worker's standard error, and what it makes of the worker's last words.
pub(crate) struct StderrRelay {
    verdict: mpsc::Receiver<Option<u64>>,
}

impl StderrRelay {
    /// Copies everything from `read` to this process's standard error until every writer has
    /// closed the pipe. The thread is not joined: a process the worker forked could hold the pipe
    /// open for ever, and the pool's exit must not wait for it.
    pub(crate) fn start(read: OwnedFd, name: String) -> io::Result<StderrRelay> {
        let (send, verdict) = mpsc::sync_channel(1);
        thread::Builder::new().name(name).spawn(move || {
            let _ = send.send(relay(File::from(read), &mut io::stderr()));
        })?;
        Ok(StderrRelay { verdict })
    }

    /// After the worker died: the size of the allocation that failed, if an allocation failure is
    /// the last thing it wrote.
    pub(crate) fn failed_allocation(&self) -> Option<u64> {
        self.verdict.recv_timeout(LAST_WORDS_WAIT).ok().flatten()
    }
}

/// Copies `from` to `to` until the end of `from`; returns the size of the failed allocation if
/// the last thing written was Rust's message for one (perhaps followed by its backtrace).
fn relay(mut from: impl Read, to: &mut impl Write) -> Option<u64> {
    let mut buffer = [0u8; 8192];
    let mut lines = LastWords::default();
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // Standard error is best effort, as for a worker that writes to it directly.
        let _ = to.write_all(&buffer[..n]);
        lines.push(&buffer[..n]);
    }
    lines.finish()
}

/// Follows a stream line by line, remembering an allocation failure until a line that is not part
/// of its report.
#[derive(Default)]
struct LastWords {
    /// The line being read (its first `LINE_KEPT` bytes).
    line: Vec<u8>,
    /// The line is longer than what was kept.
    long: bool,
    failed: Option<u64>,
}

/// Longer lines are neither the message nor a backtrace line.
const LINE_KEPT: usize = 256;

impl LastWords {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.extend(&bytes[..end]);
            self.end_line();
            bytes = &bytes[end + 1..];
        }
        self.extend(bytes);
    }

    fn extend(&mut self, bytes: &[u8]) {
        let room = LINE_KEPT - self.line.len();
        self.long |= bytes.len() > room;
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn end_line(&mut self) {
        if self.long {
            self.failed = None;
        } else if let Some(requested) = failed_allocation(&self.line) {
            // Printing the backtrace may fail to allocate in turn: the first failure is the task's.
            self.failed = self.failed.or(Some(requested));
        } else if !is_backtrace(&self.line) {
            self.failed = None;
        }
        self.line.clear();
        self.long = false;
    }

    fn finish(mut self) -> Option<u64> {
        if !self.line.is_empty() || self.long {
            self.end_line();
        }
        self.failed
    }
}

/// `Some(n)` when `line` is Rust's `memory allocation of n bytes failed`.
fn failed_allocation(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(ALLOCATION_FAILED)?;
    let rest = std::str::from_utf8(rest).ok()?;
    rest.strip_suffix(" bytes failed")?.parse().ok()
}

/// A line of the backtrace Rust prints after the message when `RUST_BACKTRACE` is set.
fn is_backtrace(line: &[u8]) -> bool {
    line.is_empty()
        || line.starts_with(b" ")
        || line.starts_with(b"stack backtrace:")
        || line.starts_with(b"note: ")
        || line.starts_with(b"skipping backtrace printing")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relayed(input: &[u8]) -> Option<u64> {
        let mut out = Vec::new();
        let verdict = relay(input, &mut out);
        assert_eq!(out, input, "everything is relayed unchanged");
        verdict
    }

    #[test]
    fn the_allocation_failure_at_the_end_is_recognised() {
        assert_eq!(
            relayed(b"worker says hi\nmemory allocation of 1073741824 bytes failed\n"),
            Some(1 << 30)
        );
        assert_eq!(relayed(b"memory allocation of 42 bytes failed"), Some(42));
    }

    #[test]
    fn a_backtrace_after_the_message_is_allowed() {
        let input = b"memory allocation of 8 bytes failed\nstack backtrace:\n   0: f\n             at src/x.rs:1\nnote: Some details are omitted\n";
        assert_eq!(relayed(input), Some(8));
        // The backtrace itself could not be allocated.
        let input = b"memory allocation of 1048576 bytes failed\nstack backtrace:\nmemory allocation of 71680 bytes failed\nskipping backtrace printing to avoid potential recursion\n";
        assert_eq!(relayed(input), Some(1 << 20));
    }

    #[test]
    fn other_output_after_the_message_clears_it() {
        assert_eq!(
            relayed(b"memory allocation of 5 bytes failed\nbut then it went on\n"),
            None
        );
    }

    #[test]
    fn long_output_is_relayed_whole_and_long_lines_are_not_the_message() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\nmemory allocation of 42 bytes failed\n");
        assert_eq!(relayed(&input), Some(42));
        let mut long = b"memory allocation of 42 bytes failed".to_vec();
        long.extend_from_slice(&[b' '; 300]);
        assert_eq!(relayed(&long), None);
    }

    #[test]
    fn other_messages_are_not_allocation_failures() {
        assert_eq!(
            failed_allocation(b"memory allocation of many bytes failed"),
            None
        );
        assert_eq!(failed_allocation(b"thread panicked"), None);
        assert_eq!(failed_allocation(b""), None);
    }
}
