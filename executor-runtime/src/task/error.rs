//! Why a submitted call produced no value.

use std::fmt;

pub(crate) use crate::task::panic::{drop_payload, panic_message};
pub use crate::task::panic::{Panic, PanicLocation};

/// The reason a task did not produce its value.
///
/// Every variant says what happened in words a user can act on. `TaskError` is
/// `std::error::Error + Send + Sync + 'static`, so `?` lifts it into `Box<dyn Error>`
/// or `anyhow::Error`.
///
/// ```
/// use concurrent_futures::{pool, TaskError};
///
/// fn fails() -> u32 {
///     panic!("no such page")
/// }
///
/// let err = pool!(Thread => { submit(fails).result() }).unwrap_err();
/// assert_eq!(err.panic().unwrap().message(), "no such page");
/// // Like Rust's own "thread 'main' panicked at src/main.rs:4:5:\nno such page".
/// assert!(err.to_string().starts_with("task panicked at "));
/// assert!(err.to_string().ends_with(":5:\nno such page"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked: the message (or a note saying the payload was not a string), where
    /// (file, line and column of the `panic!`) and, when `RUST_BACKTRACE` was set where it ran,
    /// the backtrace. See [`Panic`].
    Panicked(Panic),
    /// The task was cancelled before it started, so it never ran.
    Cancelled,
    /// The task was running and [`Future::stop`](crate::Future::stop) stopped it (Process backend):
    /// its worker process was killed and replaced; other tasks are unaffected (those queued behind
    /// it on that worker run on another). Whatever the call had done before, it did.
    Stopped,
    /// The worker process running the task died before answering (Process and Mpi backends): it
    /// crashed, aborted, was killed, or exited. On Process the pool replaced it; other tasks are
    /// unaffected.
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// How it ended.
        death: WorkerDeath,
        /// The function it was running, as `std::any::type_name` names it
        /// (`my_crate::crunch`), when `submit` was given a function by its path; `None` for a
        /// closure and for `map`'s chunks.
        call: Option<&'static str>,
    },
    /// The call could not cross the process boundary (Process backend): its arguments or result
    /// could not be encoded or decoded, or a message between the pool and its worker was
    /// malformed. The text says which.
    Transport(String),
    /// The task ran longer than the pool's `timeout` (Process backend): its worker was killed
    /// and replaced; other tasks are unaffected.
    TimedOut {
        /// The pool's per-task timeout.
        after: std::time::Duration,
    },
    /// The task tried to allocate more memory than the pool's `memory_limit` allows (Process
    /// backend): the allocation failed, its worker aborted and was replaced; other tasks are
    /// unaffected.
    MemoryLimitExceeded {
        /// The pool's limit per worker, in bytes.
        limit: u64,
        /// The size of the allocation that failed, in bytes.
        requested: u64,
    },
    /// No worker process could be started for the task, or the worker refused it (for example
    /// because the pool's initializer panicked, or the worker did not answer the handshake). The
    /// text says why.
    WorkerStart(String),
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerDeath {
    /// It exited by itself (`std::process::exit`, or returning from a worker's `main`) with this code.
    Exited(i32),
    /// A signal killed it: `SIGSEGV` (11), `SIGABRT` (6, also `std::process::abort`), `SIGKILL` (9)...
    Signaled(i32),
    /// It closed its channel or sent garbage, and the pool killed it.
    BrokeProtocol,
    /// It is gone, and how it ended is not known here: an MPI worker rank is not a child of the
    /// process that opened the block, so its exit status cannot be read (Mpi backend).
    Vanished,
    /// It ended (its channel closed and it is gone), but its exit status was taken by someone
    /// else, so how is not known (Process backend): the program ignores `SIGCHLD` (`SIG_IGN`,
    /// which makes the kernel reap children itself), or a `SIGCHLD` handler or another thread
    /// reaped it (`waitpid(-1, ...)`).
    StatusUnknown,
}

impl fmt::Display for WorkerDeath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WorkerDeath::Exited(code) => write!(f, "exited with code {code}"),
            WorkerDeath::Signaled(signal) => match signal_name(signal) {
                Some(name) => write!(f, "was killed by signal {signal} ({name})"),
                None => write!(f, "was killed by signal {signal}"),
            },
            WorkerDeath::BrokeProtocol => {
                f.write_str("broke the protocol (closed or wrote to its channel) and was stopped")
            }
            WorkerDeath::Vanished => f.write_str("ended (an MPI rank: how is not known)"),
            WorkerDeath::StatusUnknown => f.write_str(
                "ended, but how is not known: its exit status was taken by someone else \
                 (SIGCHLD is ignored, or another handler or thread reaped it)",
            ),
        }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        _ => return None,
    })
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(panic) => fmt::Display::fmt(panic, f),
            TaskError::Cancelled => f.write_str("the task was cancelled before it started"),
            TaskError::Stopped => f.write_str(
                "the task was stopped while it ran; its worker process was killed and replaced",
            ),
            TaskError::WorkerDied { pid, death, call } => {
                write!(f, "the worker process (pid {pid}) running the task {death}")?;
                match call {
                    Some(name) => write!(f, " while running `{name}`"),
                    None => Ok(()),
                }
            }
            TaskError::Transport(why) => {
                write!(f, "the task could not cross the process boundary: {why}")
            }
            TaskError::WorkerStart(why) => write!(f, "no worker process could run the task: {why}"),
            TaskError::MemoryLimitExceeded { limit, requested } => write!(
                f,
                "the task tried to allocate {requested} bytes, which its worker's memory limit of \
                 {limit} bytes did not allow; the worker process aborted and was replaced"
            ),
            TaskError::TimedOut { after } => write!(
                f,
                "the task ran longer than its timeout of {after:?}; its worker process was killed \
                 and replaced"
            ),
        }
    }
}

impl std::error::Error for TaskError {}

impl TaskError {
    /// The panic, if the task panicked: its message, location and backtrace.
    pub fn panic(&self) -> Option<&Panic> {
        match self {
            TaskError::Panicked(panic) => Some(panic),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wording of every variant, pinned: each says what happened and what the pool did.
    #[test]
    fn every_variant_says_what_happened() {
        let cases = [
            (
                TaskError::Panicked("index out of bounds".into()),
                "task panicked: index out of bounds",
            ),
            (
                TaskError::Panicked(
                    Panic::new("index out of bounds")
                        .with_location(Some(PanicLocation::new("src/main.rs", 12, 5))),
                ),
                "task panicked at src/main.rs:12:5:\nindex out of bounds",
            ),
            (
                TaskError::Cancelled,
                "the task was cancelled before it started",
            ),
            (
                TaskError::Stopped,
                "the task was stopped while it ran; its worker process was killed and replaced",
            ),
            (
                TaskError::WorkerDied {
                    pid: 42,
                    death: WorkerDeath::Signaled(11),
                    call: None,
                },
                "the worker process (pid 42) running the task was killed by signal 11 (SIGSEGV)",
            ),
            (
                TaskError::WorkerDied {
                    pid: 42,
                    death: WorkerDeath::Signaled(11),
                    call: Some("my_crate::crunch"),
                },
                "the worker process (pid 42) running the task was killed by signal 11 (SIGSEGV) \
                 while running `my_crate::crunch`",
            ),
            (
                TaskError::WorkerDied {
                    pid: 42,
                    death: WorkerDeath::Exited(3),
                    call: None,
                },
                "the worker process (pid 42) running the task exited with code 3",
            ),
            (
                TaskError::WorkerDied {
                    pid: 42,
                    death: WorkerDeath::BrokeProtocol,
                    call: None,
                },
                "the worker process (pid 42) running the task broke the protocol (closed or wrote \
                 to its channel) and was stopped",
            ),
            (
                TaskError::WorkerDied {
                    pid: 42,
                    death: WorkerDeath::StatusUnknown,
                    call: None,
                },
                "the worker process (pid 42) running the task ended, but how is not known: its \
                 exit status was taken by someone else (SIGCHLD is ignored, or another handler or \
                 thread reaped it)",
            ),
            (
                TaskError::Transport("could not encode the arguments: too deep".into()),
                "the task could not cross the process boundary: could not encode the arguments: \
                 too deep",
            ),
            (
                TaskError::TimedOut {
                    after: std::time::Duration::from_millis(1500),
                },
                "the task ran longer than its timeout of 1.5s; its worker process was killed and replaced",
            ),
            (
                TaskError::MemoryLimitExceeded {
                    limit: 1 << 28,
                    requested: 1 << 30,
                },
                "the task tried to allocate 1073741824 bytes, which its worker's memory limit of \
                 268435456 bytes did not allow; the worker process aborted and was replaced",
            ),
            (
                TaskError::WorkerStart("cannot execute /bin/app: No such file".into()),
                "no worker process could run the task: cannot execute /bin/app: No such file",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        assert_eq!(
            WorkerDeath::Signaled(64).to_string(),
            "was killed by signal 64"
        );
    }

    #[test]
    fn error_is_send_sync_static() {
        fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
        assert_error::<TaskError>();
    }
}
