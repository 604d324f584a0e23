//! Where a task panicked: [`Panic`] (the message, the location of the `panic!`, and the backtrace
//! when `RUST_BACKTRACE` asks for one), and [`catch`], which runs a task's code and catches its
//! panic with all three.
//!
//! # How the location is captured
//!
//! A panic's payload carries only the message; where it happened is known only to the panic hook,
//! which runs in the panicking thread before unwinding starts. The hook is process-global and
//! belongs to the program, so this crate does not replace it: the first time a task runs, it
//! installs a hook that *chains* to the one that was set before it (the default hook, or the
//! program's), after recording the location (and the backtrace, by
//! [`Backtrace::capture`](std::backtrace::Backtrace::capture), which respects `RUST_BACKTRACE`)
//! in a thread-local slot, and only while the thread is running a task's code under [`catch`].
//! Any other panic is passed to the previous hook untouched, and no panic prints less or more
//! than it did. Wrapping every task's code in a `#[track_caller]` function cannot work: the
//! location of a `panic!` deep in the user's code is not the caller's.
//!
//! Limits: a hook the program sets *after* a pool ran its first task replaces this one (the
//! program's hook then sees every panic, and tasks report no location); a panic re-raised with
//! `std::panic::resume_unwind` does not run the hook, so it reports where the last hook-visible
//! panic of that task happened (usually the original one), or none.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// Where a panic happened: the file, line and column of the `panic!` (or `assert!`, `unwrap`...)
/// that raised it, as Rust prints it: `src/main.rs:12:5`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PanicLocation {
    file: String,
    line: u32,
    column: u32,
}

impl PanicLocation {
    /// A location, from its parts.
    pub fn new(file: impl Into<String>, line: u32, column: u32) -> Self {
        PanicLocation {
            file: file.into(),
            line,
            column,
        }
    }

    /// The source file, as `file!()` gives it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line, from 1.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column, from 1.
    pub fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A task's panic: its message, where it happened and, when `RUST_BACKTRACE` (or
/// `RUST_LIB_BACKTRACE`) is set where the task ran, its backtrace. The payload of
/// [`TaskError::Panicked`](crate::TaskError::Panicked), on every backend.
///
/// `Display` reads like Rust's own panic message: `task panicked at src/main.rs:12:5:` and the
/// message on the next line (`task panicked: <message>` when the location is not known); the
/// alternate form (`{:#}`) adds the backtrace, if there is one.
///
/// ```
/// use concurrent_futures::{pool, TaskError};
///
/// fn fails() -> u32 {
///     panic!("no such page")
/// }
///
/// let err = pool!(Thread => { submit(fails).result() }).unwrap_err();
/// let panic = err.panic().expect("it panicked");
/// assert_eq!(panic.message(), "no such page");
/// let location = panic.location().expect("where it panicked");
/// assert_eq!(location.column(), 5); // the `panic!` in `fails`
/// assert_eq!(
///     err.to_string(),
///     format!("task panicked at {location}:\nno such page")
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    message: String,
    location: Option<PanicLocation>,
    backtrace: Option<String>,
}

impl Panic {
    /// A panic with this message, no location and no backtrace.
    pub fn new(message: impl Into<String>) -> Self {
        Panic {
            message: message.into(),
            location: None,
            backtrace: None,
        }
    }

    /// The same panic, at `location`.
    pub fn with_location(mut self, location: Option<PanicLocation>) -> Self {
        self.location = location;
        self
    }

    /// The same panic, with `backtrace` (its text).
    pub fn with_backtrace(mut self, backtrace: Option<String>) -> Self {
        self.backtrace = backtrace;
        self
    }

    /// The panic message (or a note saying the payload was not a string).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the panic happened, if known (see the README's "Semantics" for when it is not).
    pub fn location(&self) -> Option<&PanicLocation> {
        self.location.as_ref()
    }

    /// The backtrace captured when the task panicked, as text: present when `RUST_BACKTRACE`
    /// (or `RUST_LIB_BACKTRACE`) enabled backtraces in the thread or process that ran the task.
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }

    /// The message, then where, on one line: `boom (at src/main.rs:12:5)`.
    pub(crate) fn summary(&self) -> String {
        match &self.location {
            Some(location) => format!("{} (at {location})", self.message),
            None => self.message.clone(),
        }
    }
}

impl From<String> for Panic {
    fn from(message: String) -> Self {
        Panic::new(message)
    }
}

impl From<&str> for Panic {
    fn from(message: &str) -> Self {
        Panic::new(message)
    }
}

/// Compares the message only.
impl PartialEq<str> for Panic {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

/// Compares the message only.
impl PartialEq<&str> for Panic {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "task panicked at {location}:\n{}", self.message)?,
            None => write!(f, "task panicked: {}", self.message)?,
        }
        if let (true, Some(backtrace)) = (f.alternate(), &self.backtrace) {
            write!(f, "\nstack backtrace:\n{backtrace}")?;
        }
        Ok(())
    }
}

thread_local! {
    /// How many [`catch`] calls this thread is inside: the hook records only when it is not 0.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic under [`catch`] on this thread happened, and its backtrace.
    static LAST: RefCell<Option<(PanicLocation, Option<String>)>> = const { RefCell::new(None) };
    /// How many panics the hook has recorded on this thread: [`catch`] compares it before and
    /// after its call instead of clearing `LAST` before each call, which cost 4.2 ns a call
    /// (`LAST` has a destructor, so each access checks that it is still alive), a third of
    /// a Process `map` item's run-time regression in issue 17's report.
    static RECORDED: Cell<u64> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

/// Installs the recording hook in front of the current one, once per process. Not while this
/// thread panics (`set_hook` would panic): a task run then reports no location. [`catch`] calls
/// it; a worker calls it before its first call (`remote::serve::ready_to_serve`).
pub(crate) fn install_hook() {
    if HOOK.is_completed() || std::thread::panicking() {
        return;
    }
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            record(info);
            previous(info);
        }));
    });
}

/// The hook's part: records the location and backtrace of a panic inside [`catch`]. Never
/// panics (a panic in a hook aborts): the thread-locals may be gone while the thread exits.
fn record(info: &panic::PanicHookInfo<'_>) {
    let inside = DEPTH.try_with(Cell::get).unwrap_or(0) > 0;
    if !inside {
        return;
    }
    let Some(location) = info.location() else {
        return;
    };
    let location = PanicLocation::new(location.file(), location.line(), location.column());
    let backtrace = std::backtrace::Backtrace::capture();
    let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
        .then(|| backtrace.to_string());
    let stored = LAST.try_with(|last| match last.try_borrow_mut() {
        Ok(mut last) => {
            *last = Some((location, backtrace));
            true
        }
        Err(_) => false,
    });
    if stored == Ok(true) {
        let _ = RECORDED.try_with(|count| count.set(count.get().wrapping_add(1)));
    }
}

/// Runs `f`, catching a panic as a [`Panic`] with its location and backtrace. The payload is
/// dropped here (a panicking destructor of the payload is contained).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    install_hook();
    let before = RECORDED.with(Cell::get);
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|depth| depth.set(depth.get() - 1));
    outcome.map_err(|payload| {
        // Only a panic recorded during this call is this call's (one recorded before it, and
        // caught by code of its own, is not). Read before the payload is dropped: a destructor
        // that panics would record its own location.
        let recorded = RECORDED.with(Cell::get) != before;
        let (location, backtrace) = LAST
            .try_with(|last| last.borrow_mut().take())
            .ok()
            .flatten()
            .filter(|_| recorded)
            .map_or((None, None), |(location, backtrace)| {
                (Some(location), backtrace)
            });
        let message = panic_message(&*payload);
        drop_payload(payload);
        Panic::new(message)
            .with_location(location)
            .with_backtrace(backtrace)
    })
}

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
    fn catch_records_the_line_of_the_panic() {
        let line = line!() + 1;
        let panic = catch(|| -> u8 { panic!("here") }).unwrap_err();
        assert_eq!(panic.message(), "here");
        let location = panic.location().expect("a location");
        assert_eq!(location.file(), file!());
        assert_eq!(location.line(), line);
        assert_eq!(
            panic.backtrace().is_some(),
            std::backtrace::Backtrace::capture().status()
                == std::backtrace::BacktraceStatus::Captured
        );
    }

    #[test]
    fn display_reads_like_rusts_panic_message() {
        let panic = Panic::new("boom").with_location(Some(PanicLocation::new("src/a.rs", 3, 9)));
        assert_eq!(panic.to_string(), "task panicked at src/a.rs:3:9:\nboom");
        assert_eq!(Panic::new("boom").to_string(), "task panicked: boom");
        let traced = panic.clone().with_backtrace(Some("0: main".into()));
        assert_eq!(traced.to_string(), panic.to_string());
        assert_eq!(
            format!("{traced:#}"),
            "task panicked at src/a.rs:3:9:\nboom\nstack backtrace:\n0: main"
        );
        assert_eq!(panic.summary(), "boom (at src/a.rs:3:9)");
        assert!(panic == "boom");
    }

    #[test]
    fn a_location_belongs_only_to_the_call_whose_panic_it_is() {
        // A panic that the task catches itself is recorded, and the task goes on.
        assert_eq!(
            catch(|| panic::catch_unwind(|| panic!("inner")).is_err()),
            Ok(true)
        );
        // `resume_unwind` runs no hook: the next call's panic has no location, not the one above.
        let resumed = catch(|| -> u8 { panic::resume_unwind(Box::new("resumed")) }).unwrap_err();
        assert_eq!(resumed.message(), "resumed");
        assert_eq!(resumed.location(), None);
    }

    #[test]
    fn a_panic_outside_catch_is_not_recorded() {
        install_hook();
        let _ = panic::catch_unwind(|| panic!("outside"));
        assert!(LAST.with(|last| last.borrow().is_none()));
    }
}
