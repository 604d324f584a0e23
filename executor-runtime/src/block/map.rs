//! What `map(f, items)` promises on every backend: results in input order, work started as soon
//! as the map is created, and a bounded amount of it in flight, so mapping over a long or endless
//! iterator holds only that much in memory. The Thread backend's map (`crate::thread`) sends one
//! task per item; the remote backends' (`crate::remote`) one call per chunk of items.

/// How many tasks (Thread) or chunks (Process, Mpi) a map keeps in flight per worker. Enough that
/// the reader rarely waits for a worker, and a worker rarely waits for the reader (with one or two
/// per worker, tiny items cost a wake-up each); bounded, so an endless input holds a fixed amount
/// of memory.
pub(crate) const AHEAD_PER_WORKER: usize = 32;
