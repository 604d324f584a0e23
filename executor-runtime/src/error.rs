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
/// use executor::{pool, TaskError};
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
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(message) => write!(f, "the task panicked: {message}"),
            TaskError::Cancelled => f.write_str("the task was cancelled before it started"),
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

    #[test]
    fn error_is_send_sync_static() {
        fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
        assert_error::<TaskError>();
    }
}
