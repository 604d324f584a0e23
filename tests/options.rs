//! Pool options: `max_workers` bounds concurrency; invalid values are refused with the option's name.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use concurrent_futures::pool;

/// Counts how many tasks run at once and remembers the most seen.
struct Concurrency {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Concurrency {
    fn enter_and_leave(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(5));
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        #[test]
        fn max_workers_bounds_how_many_tasks_run_at_once() {
            for limit in [1, 2, 3] {
                let seen = Concurrency {
                    now: AtomicUsize::new(0),
                    peak: AtomicUsize::new(0),
                };
                pool!($backend(max_workers = limit) => {
                    for _ in 0..24 {
                        let _ = submit(|| seen.enter_and_leave());
                    }
                });
                let peak = seen.peak.load(Ordering::SeqCst);
                assert!(
                    peak <= limit,
                    "{peak} tasks ran at once with max_workers = {limit}"
                );
                assert!(peak >= 1);
            }
        }

        #[test]
        fn the_default_pool_runs_tasks_concurrently() {
            // Two tasks that each wait for the other can only finish if they run at the same time.
            let (a_tx, a_rx) = std::sync::mpsc::channel();
            let (b_tx, b_rx) = std::sync::mpsc::channel();
            let (a, b) = pool!($backend => {
                let a = submit(move || { a_tx.send(()).unwrap(); b_rx.recv_timeout(Duration::from_secs(30)).is_ok() });
                let b = submit(move || { b_tx.send(()).unwrap(); a_rx.recv_timeout(Duration::from_secs(30)).is_ok() });
                (a.result().unwrap(), b.result().unwrap())
            });
            assert!(a && b);
        }

        #[test]
        fn a_zero_max_workers_computed_at_run_time_panics_naming_the_option() {
            let zero = std::hint::black_box(0);
            let outcome = std::panic::catch_unwind(|| pool!($backend(max_workers = zero) => { 1 }));
            let payload = outcome.unwrap_err();
            let message = payload.downcast_ref::<&str>().copied().unwrap_or_default();
            assert!(
                message.contains("`max_workers` must be at least 1"),
                "{message}"
            );
        }

        #[test]
        fn option_values_are_runtime_expressions() {
            let workers = 1 + 1;
            let prefix = format!("job{}", 7);
            let name = pool!($backend(max_workers = workers, thread_name_prefix = prefix) => {
                submit(|| std::thread::current().name().map(str::to_string)).result().unwrap()
            });
            assert_eq!(name.as_deref(), Some("job7-0"));
        }
    };
}

mod thread {
    use super::*;
    thread_contract!(Thread);
}

mod auto {
    use super::*;
    thread_contract!(Auto);
}

#[test]
#[should_panic(expected = "pool! option `timeout` must be longer than zero, got 0ns")]
fn a_zero_timeout_is_refused_at_block_entry() {
    let timeout = std::time::Duration::ZERO;
    pool!(Process(timeout = timeout) => {});
}
