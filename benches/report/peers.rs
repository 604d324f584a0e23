//! The peers every table compares, by the label its rows carry, and how they are timed.

use std::time::Instant;

use crate::figures::Row;
use crate::python::python_peer_rows;

pub(crate) const THREAD: &str = "`pool!(Thread)`";
pub(crate) const PROCESS: &str = "`pool!(Process)`";
pub(crate) const RAYON: &str = "rayon";
pub(crate) const STD_SCOPE: &str = "`std::thread::scope`";
pub(crate) const PIPE: &str = "floor: 1-byte pipe round trip to `cat`";
pub(crate) const THREAD_WARM: &str = "`pool!(Thread)`, back to back";
pub(crate) const RAYON_WARM: &str = "rayon, back to back";
pub(crate) const PROCESS_CHUNK_1: &str = "`pool!(Process)`, chunk size 1 (the default)";
pub(crate) const PROCSPAWN: &str = "procspawn `Pool`";

/// The rows every table but the CPU-bound one starts with, covering `units` each: the Rust peers
/// (`rows[0..5]`), then Python's (`rows[5..8]`, in [`PY_KEYS`](crate::python::PY_KEYS) order).
pub(crate) fn peer_rows(runs: usize, units: f64) -> Vec<Row> {
    let mut rows = rust_peer_rows(runs, units);
    rows.extend(python_peer_rows(runs, units));
    rows
}

/// A row for each Rust peer, in the order every table lists them.
pub(crate) fn rust_peer_rows(runs: usize, units: f64) -> Vec<Row> {
    [THREAD, PROCESS, RAYON, STD_SCOPE, PROCSPAWN]
        .map(|label| Row::new(label, runs, units))
        .into()
}

/// How long `f` takes, in seconds, and its value.
pub(crate) fn timed<R>(f: impl FnOnce() -> R) -> (f64, R) {
    let started = Instant::now();
    let value = f();
    (started.elapsed().as_secs_f64(), value)
}

/// A rayon pool of `workers` threads (built outside the timing, as rayon is used).
pub(crate) fn rayon_pool(workers: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("rayon starts")
}
