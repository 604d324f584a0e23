//! How many calls a remote backend keeps in flight to one worker: enough that tiny calls are
//! pipelined rather than paying a round trip each, few enough that long calls never wait behind
//! each other on one worker while another idles. The same rule on Process and Mpi.

/// How much work, in run time, a pool tries to keep in flight to each worker.
const WORK_IN_FLIGHT_NS: f64 = 1_000_000.0;
/// How many bytes of results a pool lets each worker have in flight: one result of 1 MiB. The
/// receiving side makes a buffer for each, and buffers alive at once come back from the allocator
/// as fresh pages once freed together (200 calls with 1 MiB results on 2 Mpi workers, windows of
/// 25 calls: 170,569 page faults in all, against 11,701 with one call at a time, and 2.2 GB/s
/// against 6.5); and one driver thread fetches every worker's results, so a deeper window only
/// makes the workers wait longer (2 MiB: 2.2-3.1 GB/s, against 3.0-5.0 with one call at a time,
/// three runs each). Arguments need no such bound: a worker receives one call's at a time, and a
/// call's run time counts from its arrival, so large arguments already make a call long.
const RESULT_BYTES_IN_FLIGHT: f64 = 1024.0 * 1024.0;
/// The most calls in flight to one worker.
const MAX_WINDOW: usize = 256;

/// Folds `sample` into a moving `average` (a fifth of its weight to the newest; the first sample
/// sets it).
fn fold_into(average: &mut f64, sample: f64) {
    *average = if *average == 0.0 {
        sample
    } else {
        0.8 * *average + 0.2 * sample
    };
}

/// Folds a call's run time into the moving `average_ns` of a worker's calls and gives the window
/// that keeps about `WORK_IN_FLIGHT_NS` of work in flight: one call at a time when calls are long,
/// up to `MAX_WINDOW` when they are tiny.
fn next_window(average_ns: &mut f64, elapsed_ns: u64) -> usize {
    fold_into(average_ns, elapsed_ns as f64);
    let window = WORK_IN_FLIGHT_NS / average_ns.max(1_000.0);
    (window as usize).clamp(1, MAX_WINDOW)
}

/// The window of a worker, with the block whose calls sized it: about
/// `WORK_IN_FLIGHT_NS` of run time in flight, and at most `RESULT_BYTES_IN_FLIGHT` of results
/// (a call that returns 1 MiB in 0.1 µs of run time is not a tiny call). A worker that
/// serves calls of several blocks in turn (Mpi: one set of workers for every block of the process)
/// starts again at one call when it turns to another block's, since those may cost something
/// else; one that goes on with the same block keeps its window, even after it ran out of calls in
/// flight. (A Process worker serves one block all its life.)
#[derive(Debug, Clone)]
pub(crate) struct Window {
    calls: usize,
    average_ns: f64,
    average_bytes: f64,
    block: Option<u64>,
}

impl Window {
    pub(crate) fn new() -> Self {
        Window {
            calls: 1,
            average_ns: 0.0,
            average_bytes: 0.0,
            block: None,
        }
    }

    /// The worker takes calls of `block` (by its id) next. (Only Mpi workers serve several
    /// blocks: a Process worker serves one all its life.)
    #[cfg_attr(not(any(feature = "mpi", test)), expect(dead_code))]
    pub(crate) fn serve(&mut self, block: u64) {
        if self.block != Some(block) {
            *self = Window {
                block: Some(block),
                ..Window::new()
            };
        }
    }

    /// A call of the block served ran for `elapsed_ns` in the worker (from its arrival) and
    /// returned `bytes` of result.
    pub(crate) fn record(&mut self, elapsed_ns: u64, bytes: usize) {
        let by_time = next_window(&mut self.average_ns, elapsed_ns);
        fold_into(&mut self.average_bytes, bytes as f64);
        let by_bytes = (RESULT_BYTES_IN_FLIGHT / self.average_bytes.max(1.0)) as usize;
        self.calls = by_time.min(by_bytes).max(1);
    }

    /// The moving average of the worker's calls' run time, in nanoseconds (0 before the first).
    #[cfg_attr(not(any(feature = "mpi", test)), expect(dead_code))]
    pub(crate) fn average_ns(&self) -> f64 {
        self.average_ns
    }

    /// The moving average of the bytes of the worker's results (0 before the first).
    #[cfg_attr(not(any(feature = "mpi", test)), expect(dead_code))]
    pub(crate) fn average_bytes(&self) -> f64 {
        self.average_bytes
    }

    /// How many calls may be in flight to the worker.
    pub(crate) fn calls(&self) -> usize {
        self.calls
    }

    /// How many calls the worker may take now, with `in_flight` calls in flight, from `queued`
    /// calls that `workers` workers could take: the room left in its window, at most its
    /// [`fair_share`]. None where the window is full, or shrank below what is in flight.
    pub(crate) fn room(&self, in_flight: usize, queued: usize, workers: usize) -> usize {
        self.calls
            .saturating_sub(in_flight)
            .min(fair_share(queued, workers))
    }
}

/// How many of `queued` calls one of `workers` workers that could take them may take at once: its
/// fair share, rounded up, and at least one. Without it the first worker whose window opens takes
/// a whole queue of calls that move large arguments but run quickly, and the others idle (200
/// calls with 1 MiB arguments on 2 Mpi workers: one took 199). The share is of what is queued
/// now, not of the block: a worker that comes back for more while its calls are in flight takes a
/// share of what is left (its own calls in flight are not counted against it).
fn fair_share(queued: usize, workers: usize) -> usize {
    queued.div_ceil(workers.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_ran_out_of_calls_keeps_its_window_for_the_same_block() {
        let mut window = Window::new();
        window.serve(7);
        assert_eq!(window.calls(), 1, "a new block's calls start one at a time");
        window.record(5_000, 100);
        let grown = window.calls();
        assert_eq!(grown, 200, "1 ms of work in flight at 5 µs a call");
        // Its only call answered, the worker has none in flight; the block's next calls go to it.
        window.serve(7);
        assert_eq!(
            window.calls(),
            grown,
            "the same block keeps the window it measured"
        );
        window.serve(8);
        assert_eq!(
            window.calls(),
            1,
            "another block's calls are measured afresh"
        );
    }

    #[test]
    fn long_calls_go_one_at_a_time_and_tiny_ones_up_to_the_bound() {
        let mut window = Window::new();
        window.serve(1);
        window.record(5_000_000, 100);
        assert_eq!(window.calls(), 1);
        assert_eq!(
            window.average_ns(),
            5_000_000.0,
            "the first call sets the average"
        );
        assert_eq!(window.average_bytes(), 100.0);
        let mut tiny = Window::new();
        tiny.serve(1);
        for _ in 0..50 {
            tiny.record(10, 40);
        }
        assert_eq!(tiny.calls(), MAX_WINDOW);
    }

    #[test]
    fn calls_that_return_large_results_keep_few_bytes_in_flight_however_quick() {
        let mut window = Window::new();
        window.serve(1);
        window.record(100, 256 << 10);
        assert_eq!(window.calls(), 4, "four results of 256 KiB");
        window.record(100, 64 << 20);
        assert_eq!(window.calls(), 1, "never under one call");
    }

    #[test]
    fn a_worker_takes_at_most_its_share_of_the_queue_and_always_one() {
        assert_eq!(fair_share(198, 2), 99);
        assert_eq!(fair_share(199, 2), 100);
        assert_eq!(fair_share(1, 4), 1);
        assert_eq!(fair_share(0, 2), 1);
        assert_eq!(fair_share(5, 0), 5);
    }

    #[test]
    fn a_workers_room_is_what_its_window_has_left_within_its_share() {
        let mut window = Window::new();
        window.serve(1);
        window.record(1_000, 8);
        assert_eq!(window.calls(), 256);
        assert_eq!(window.room(6, 1_000, 2), 250, "the window's room");
        assert_eq!(window.room(6, 100, 2), 50, "the fair share");
        window.record(10_000_000, 8);
        assert!(window.calls() < 6);
        assert_eq!(
            window.room(6, 100, 2),
            0,
            "a window that shrank below its calls in flight"
        );
    }
}
