//! Where a task runs: the identity of the current worker, as Python's
//! `multiprocessing.current_process()` and `threading.current_thread()` tell it.

use std::cell::{Cell, RefCell};
use std::fmt;

/// Which kind of pool a worker belongs to.
///
/// ```
/// use concurrent_futures::{current_worker, pool, Backend};
///
/// let backend = pool!(Thread => { submit(|| current_worker().unwrap().backend()).result() });
/// assert_eq!(backend, Ok(Backend::Thread));
/// assert_eq!(Backend::Thread.to_string(), "Thread");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Backend {
    /// A thread of the process that opened the `pool!` block.
    Thread,
    /// A worker process, started from the same executable as the process that opened the block.
    Process,
    /// An MPI rank running the same executable (the `mpi` feature): launched by `mpirun`/`srun`,
    /// or spawned by the first `pool!(Mpi)` block. [`WorkerInfo::rank`] and
    /// [`WorkerInfo::host`] say which rank and where.
    Mpi,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Thread => "Thread",
            Backend::Process => "Process",
            Backend::Mpi => "Mpi",
        })
    }
}

/// The identity of the worker running the current task.
///
/// ```
/// use concurrent_futures::{current_worker, pool, Backend};
///
/// let who = pool!(Thread(max_workers = 2) => { submit(current_worker).result().unwrap() });
/// let who = who.expect("a task runs on a worker");
/// assert_eq!(who.backend(), Backend::Thread);
/// assert_eq!(who.pid(), std::process::id()); // threads share the process
/// assert!(who.index() < 2);
/// assert!(current_worker().is_none()); // the block itself is not a worker
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerInfo {
    backend: Backend,
    index: usize,
    pid: u32,
    thread_name: Option<String>,
    /// Mpi only: the rank in `MPI_COMM_WORLD` of the worker's job, and the host it runs on.
    mpi: Option<(usize, String)>,
}

impl WorkerInfo {
    pub(crate) fn new(backend: Backend, index: usize, thread_name: Option<String>) -> Self {
        WorkerInfo {
            backend,
            index,
            pid: std::process::id(),
            thread_name,
            mpi: None,
        }
    }

    #[cfg(feature = "mpi")]
    /// The identity of an Mpi worker: its index, its rank and its host's name.
    pub(crate) fn mpi(index: usize, rank: usize, host: String) -> Self {
        WorkerInfo {
            mpi: Some((rank, host)),
            ..WorkerInfo::new(Backend::Mpi, index, None)
        }
    }

    /// The worker's rank in `MPI_COMM_WORLD` (Mpi backend; `None` on the others). Launched by
    /// `mpirun -n N`, workers are ranks 1 to N - 1 (rank 0 runs `main`); spawned by a program
    /// started without a launcher, they are ranks 0 to n - 1 of the spawned job.
    ///
    /// ```
    /// use concurrent_futures::{current_worker, pool};
    ///
    /// let info = pool!(Thread => { submit(current_worker).result().unwrap().unwrap() });
    /// assert_eq!(info.rank(), None); // only Mpi workers have one
    /// ```
    pub fn rank(&self) -> Option<usize> {
        self.mpi.as_ref().map(|(rank, _)| *rank)
    }

    /// The name of the host the worker runs on (Mpi backend, as `MPI_Get_processor_name` gives
    /// it; `None` on the others).
    ///
    /// ```
    /// use concurrent_futures::{current_worker, pool};
    ///
    /// let info = pool!(Process => { submit(current_worker).result().unwrap().unwrap() });
    /// assert_eq!(info.host(), None); // only Mpi workers report one
    /// ```
    pub fn host(&self) -> Option<&str> {
        self.mpi.as_ref().map(|(_, host)| host.as_str())
    }

    /// The kind of pool this worker belongs to.
    ///
    /// ```
    /// use concurrent_futures::{current_worker, pool, Backend};
    ///
    /// let info = pool!(Thread => { submit(current_worker).result().unwrap().unwrap() });
    /// assert_eq!(info.backend(), Backend::Thread);
    /// ```
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The worker's number within its pool, from 0 up to `max_workers - 1`.
    ///
    /// ```
    /// use concurrent_futures::{current_worker, pool};
    ///
    /// let info = pool!(Thread(max_workers = 1) => { submit(current_worker).result().unwrap().unwrap() });
    /// assert_eq!(info.index(), 0);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// The id of the operating-system process the worker runs in.
    ///
    /// ```
    /// use concurrent_futures::{current_worker, pool};
    ///
    /// let info = pool!(Thread => { submit(current_worker).result().unwrap().unwrap() });
    /// assert_eq!(info.pid(), std::process::id()); // a Thread worker shares this process
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name of the worker's thread (`executor-<pool>-<index>`, or the pool's
    /// `thread_name_prefix` followed by `-<index>`).
    ///
    /// ```
    /// use concurrent_futures::{current_worker, pool};
    ///
    /// let info = pool!(Thread(max_workers = 1, thread_name_prefix = "fetch") => {
    ///     submit(current_worker).result().unwrap().unwrap()
    /// });
    /// assert_eq!(info.thread_name(), Some("fetch-0"));
    /// ```
    pub fn thread_name(&self) -> Option<&str> {
        self.thread_name.as_deref()
    }
}

impl fmt::Display for WorkerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} worker {} (pid {}",
            self.backend, self.index, self.pid
        )?;
        if let Some(name) = &self.thread_name {
            write!(f, ", thread {name}")?;
        }
        if let Some((rank, host)) = &self.mpi {
            write!(f, ", rank {rank} on {host}")?;
        }
        f.write_str(")")
    }
}

thread_local! {
    static CURRENT: RefCell<Option<WorkerInfo>> = const { RefCell::new(None) };
    static CURRENT_POOL: Cell<u64> = const { Cell::new(0) };
}

/// The identity of the worker running the calling code, or `None` outside any pool's worker
/// (for example in the `pool!` block itself).
///
/// ```
/// use concurrent_futures::{current_worker, pool};
///
/// pool!(Thread => {
///     let line = submit(|| current_worker().map(|w| w.to_string())).result().unwrap();
///     assert!(line.unwrap().starts_with("Thread worker 0 (pid "));
/// });
/// ```
pub fn current_worker() -> Option<WorkerInfo> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Marks the calling thread as a worker of pool `pool_id` for the rest of its life.
pub(crate) fn become_worker(pool_id: u64, info: WorkerInfo) {
    CURRENT.with(|current| *current.borrow_mut() = Some(info));
    CURRENT_POOL.with(|pool| pool.set(pool_id));
}

/// Marks the calling thread as the task-running thread of a worker process. It belongs to no
/// pool of this process, so a Thread pool that one of its tasks opens never runs tasks inline on it.
pub(crate) fn become_process_worker(info: WorkerInfo) {
    CURRENT.with(|current| *current.borrow_mut() = Some(info));
}

/// The id of the pool the calling thread works for; 0 if none (pool ids start at 1).
pub(crate) fn current_pool_id() -> u64 {
    CURRENT_POOL.with(Cell::get)
}
