//! The options of a `pool!` block, `pool!(Thread(name = value, ...) => { ... })`, checked at block entry.

/// Options given to a pool; the `pool!` macro fills them in from `name = value` pairs.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct PoolOptions {
    pub(crate) max_workers: Option<usize>,
    pub(crate) min_workers: Option<usize>,
    pub(crate) thread_name_prefix: Option<String>,
    pub(crate) cancel_futures: Option<bool>,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) max_tasks_per_child: Option<usize>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) retries: Option<u32>,
    pub(crate) thread_initializer: Option<ThreadInitializer>,
    pub(crate) process_initializer: Option<std::sync::Arc<ProcessInitializer>>,
}

/// What each worker thread runs once before its first task (`initializer = f, initargs = ...`).
#[doc(hidden)]
#[derive(Clone)]
pub struct ThreadInitializer(pub(crate) std::sync::Arc<dyn Fn() + Send + Sync>);

impl ThreadInitializer {
    /// Wraps the call the `pool!` macro built; what it returns is ignored, as in Python.
    pub fn new<T>(call: impl Fn() -> T + Send + Sync + 'static) -> Self {
        ThreadInitializer(std::sync::Arc::new(move || drop(call())))
    }
}

impl std::fmt::Debug for ThreadInitializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadInitializer")
    }
}

/// The smallest `memory_limit` accepted: below this a worker cannot start its threads and read its
/// hello.
pub(crate) const MIN_MEMORY_LIMIT: u64 = 16 << 20;

/// What each worker process runs once, before it answers the handshake: a call encoded like a
/// `submit` (see `PoolOptions::process_initializer`, beside the encoding in `remote::call`).
#[derive(Debug)]
pub(crate) struct ProcessInitializer {
    pub(crate) function: isize,
    pub(crate) trampoline: isize,
    pub(crate) arguments: Result<Vec<u8>, String>,
}

impl PoolOptions {
    /// No options set: every option takes its default.
    pub fn new() -> Self {
        PoolOptions::default()
    }

    /// `max_workers = n`: the most workers the pool runs at once.
    ///
    /// # Panics
    /// If `n` is 0: a pool without workers would never run anything.
    #[track_caller]
    pub fn max_workers(&mut self, n: usize) -> &mut Self {
        assert!(
            n > 0,
            "pool! option `max_workers` must be at least 1, got 0"
        );
        self.max_workers = Some(n);
        self
    }

    /// `min_workers = n` (Auto only): the fewest workers the governor sizes the pool to; the pool
    /// starts with `max(min_workers, cores)` of them (within `max_workers`).
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn min_workers(&mut self, n: usize) -> &mut Self {
        assert!(
            n > 0,
            "pool! option `min_workers` must be at least 1, got 0"
        );
        self.min_workers = Some(n);
        self
    }

    /// `thread_name_prefix = "name"`: worker threads are called `name-0`, `name-1`, ...
    pub fn thread_name_prefix(&mut self, prefix: impl Into<String>) -> &mut Self {
        self.thread_name_prefix = Some(prefix.into());
        self
    }
}

impl PoolOptions {
    /// `cancel_futures = bool`: whether leaving the block early (`?`, `return`, `break`, a panic)
    /// cancels the tasks that have not started, as Python's `shutdown(cancel_futures=True)`.
    /// Default `false`, as Python's `with` block (`shutdown(wait=True, cancel_futures=False)`),
    /// `std::thread::scope` and `rayon::scope`: every task submitted runs, so a fire-and-forget
    /// `submit` is not dropped by a later `?`. With `true`, an early exit cancels the tasks not
    /// started (their futures say `Cancelled`); tasks already running always finish, and the
    /// block waits for them either way. Falling off the end of the block never cancels anything.
    pub fn cancel_futures(&mut self, cancel: bool) -> &mut Self {
        self.cancel_futures = Some(cancel);
        self
    }

    /// `timeout = duration` (Process only): a task that runs longer is stopped by killing its
    /// worker; its future gets `TaskError::TimedOut`, and a replacement worker starts. (A thread
    /// cannot be killed, so the Thread backend has no such option.)
    ///
    /// # Panics
    /// If `timeout` is zero: no task could ever finish.
    #[track_caller]
    pub fn timeout(&mut self, timeout: std::time::Duration) -> &mut Self {
        assert!(
            !timeout.is_zero(),
            "pool! option `timeout` must be longer than zero, got {timeout:?}"
        );
        self.timeout = Some(timeout);
        self
    }

    /// `max_tasks_per_child = n` (Process only): a worker serves `n` tasks, then exits and is
    /// replaced: the remedy for leaky C libraries, as Python's `max_tasks_per_child`.
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn max_tasks_per_child(&mut self, n: usize) -> &mut Self {
        assert!(
            n > 0,
            "pool! option `max_tasks_per_child` must be at least 1, got 0"
        );
        self.max_tasks_per_child = Some(n);
        self
    }

    /// `memory_limit = bytes` (Process only): caps the memory each worker process may allocate
    /// (its `RLIMIT_DATA`: heap and private writable mappings). A task whose allocation would go
    /// over it fails with `TaskError::MemoryLimitExceeded`; its worker is replaced and the other
    /// tasks are unaffected.
    ///
    /// # Panics
    /// If `bytes` is below 16 MiB, which a worker needs to start.
    #[track_caller]
    pub fn memory_limit(&mut self, bytes: u64) -> &mut Self {
        assert!(
            bytes >= MIN_MEMORY_LIMIT,
            "pool! option `memory_limit` must be at least 16 MiB (16777216 bytes), got {bytes}"
        );
        self.memory_limit = Some(bytes);
        self
    }

    /// `retries = n` (Process and Mpi): a call whose worker died under it, or that overran its
    /// timeout, runs again, on a fresh worker, up to `n` more times; the default for every call of
    /// the block (a call's own `.retries(n)` overrides it). A panic is not retried unless the call
    /// asks (`.retry_panics()`).
    pub fn retries(&mut self, n: u32) -> &mut Self {
        self.retries = Some(n);
        self
    }

    /// `initializer = f` (Thread): set by the `pool!` macro.
    pub fn thread_initializer(&mut self, initializer: ThreadInitializer) -> &mut Self {
        self.thread_initializer = Some(initializer);
        self
    }

    pub(crate) fn cancels_on_early_exit(&self) -> bool {
        // Python's `with` block, `std::thread::scope` and `rayon::scope` run every task handed to
        // them: a `?` after a fire-and-forget `submit` must not drop it.
        self.cancel_futures.unwrap_or(false)
    }
}

/// The options of one call: `submit(call(f).timeout(d).retries(n), args...)` in a block builds
/// these (Process only; the macro refuses them elsewhere at compile time). Unset ones take the
/// block's.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) retries: Option<u32>,
    pub(crate) retry_panics: bool,
}

impl CallOptions {
    /// No options: the block's.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// `.timeout(d)`: this call's timeout, in place of the block's `timeout`.
    ///
    /// # Panics
    /// If `timeout` is zero: the call could never finish.
    #[track_caller]
    pub fn timeout(&mut self, timeout: std::time::Duration) -> &mut Self {
        assert!(
            !timeout.is_zero(),
            "the call option `.timeout(...)` must be longer than zero, got {timeout:?}"
        );
        self.timeout = Some(timeout);
        self
    }

    /// `.retries(n)`: this call's retries, in place of the block's `retries`.
    pub fn retries(&mut self, n: u32) -> &mut Self {
        self.retries = Some(n);
        self
    }

    /// `.retry_panics()`: a panic is retried too (within the retries), not only a dead worker or
    /// a timeout.
    pub fn retry_panics(&mut self) -> &mut Self {
        self.retry_panics = true;
        self
    }
}

/// The default `max_workers` of the Thread backend: `min(32, cpus + 4)`, Python's choice, because
/// thread pools mostly wait on I/O and a few more threads than cores keeps the cores busy.
pub(crate) fn default_thread_workers() -> usize {
    (cpus() + 4).min(32)
}

/// The CPUs this process may use, read once: `available_parallelism` reads the cgroup's CPU quota
/// from `/proc` and `/sys` on each call (about 27 µs here, 1% of a block of 20,000 tiny tasks), and
/// every block that sizes itself from it would pay that. A quota changed while the program runs is
/// not seen.
pub(crate) fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "`max_workers` must be at least 1")]
    fn zero_workers_is_refused() {
        PoolOptions::new().max_workers(0);
    }

    #[test]
    fn default_thread_workers_is_cpus_plus_four_capped_at_32() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(default_thread_workers(), (cpus + 4).min(32));
    }
}
