//! Why a submitted call produced no value.

use std::any::Any;
use std::fmt;

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
/// assert_eq!(err, TaskError::Panicked("no such page".to_string()));
/// assert_eq!(err.to_string(), "the task panicked: no such page");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the payload is the panic message (or a note saying the payload
    /// was not a string).
    Panicked(String),
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
            TaskError::Panicked(message) => write!(f, "the task panicked: {message}"),
            TaskError::Cancelled => f.write_str("the task was cancelled before it started"),
            TaskError::Stopped => f.write_str(
                "the task was stopped while it ran; its worker process was killed and replaced",
            ),
            TaskError::WorkerDied { pid, death } => {
                write!(f, "the worker process (pid {pid}) running the task {death}")
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

/// The text of a panic payload: `panic!` gives a `&'static str` or a `String`; anything else
/// (`std::panic::panic_any(42)`) is described rather than lost.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "<a panic payload that is not a string>".to_string()
    }
}

/// Drops a panic payload without letting a panicking `Drop` of the payload escape:
/// a second panic there would unwind through the worker loop.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(inner) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload))) {
        // The payload's destructor panicked; its own payload might do the same, so leak it.
        std::mem::forget(inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_of_str_string_and_other_payloads() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(
            panic_message(&42_u8),
            "<a panic payload that is not a string>"
        );
    }

    /// The wording of every variant, pinned: each says what happened and what the pool did.
    #[test]
    fn every_variant_says_what_happened() {
        let cases = [
            (
                TaskError::Panicked("index out of bounds".into()),
                "the task panicked: index out of bounds",
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
                },
                "the worker process (pid 42) running the task was killed by signal 11 (SIGSEGV)",
            ),
            (
                TaskError::WorkerDied {
                    pid: 42,
                    death: WorkerDeath::Exited(3),
                },
                "the worker process (pid 42) running the task exited with code 3",
            ),
            (
                TaskError::WorkerDied {
                    pid: 42,
                    death: WorkerDeath::BrokeProtocol,
                },
                "the worker process (pid 42) running the task broke the protocol (closed or wrote \
                 to its channel) and was stopped",
            ),
            (
                TaskError::WorkerDied {
                    pid: 42,
                    death: WorkerDeath::StatusUnknown,
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
