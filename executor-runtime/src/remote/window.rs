//! How many calls a remote backend keeps in flight to one worker: enough that tiny calls are
//! pipelined rather than paying a round trip each, few enough that long calls never wait behind
//! each other on one worker while another idles. The same rule on Process and Mpi.

/// How much work, in run time, a pool tries to keep in flight to each worker.
const WORK_IN_FLIGHT_NS: f64 = 1_000_000.0;
/// The most calls in flight to one worker.
const MAX_WINDOW: usize = 256;

/// Folds a call's run time into the moving `average_ns` of a worker's calls and gives the window
/// that keeps about `WORK_IN_FLIGHT_NS` of work in flight: one call at a time when calls are long,
/// up to `MAX_WINDOW` when they are tiny.
pub(crate) fn next_window(average_ns: &mut f64, elapsed_ns: u64) -> usize {
    let elapsed = elapsed_ns as f64;
    *average_ns = if *average_ns == 0.0 {
        elapsed
    } else {
        0.8 * *average_ns + 0.2 * elapsed
    };
    let window = WORK_IN_FLIGHT_NS / average_ns.max(1_000.0);
    (window as usize).clamp(1, MAX_WINDOW)
}
