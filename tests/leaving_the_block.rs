//! Leaving a `pool!` block in any way first waits for its tasks, and `?`, `return`, `break` and
//! `continue` act on the enclosing function or loop, as in a plain block.
//!
//! Each test submits tasks that sleep before they record that they finished, leaves the block
//! early, and checks the tasks by the time control reached the code after it. By default (as
//! Python's `with` block, `std::thread::scope` and `rayon::scope`) every task has run; with
//! `cancel_futures = true` an early exit cancels the tasks that had not started, and no task runs
//! after the block.

use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use concurrent_futures::{pool, TaskError};

const TASKS: usize = 8;

fn slow_increment(counter: &AtomicUsize) {
    std::thread::sleep(Duration::from_millis(20));
    counter.fetch_add(1, Ordering::SeqCst);
}

/// Waits until the first task has started, then counts the futures that end cancelled.
fn count_cancellations<R>(futures: &[concurrent_futures::Future<R>], cancelled: &Arc<AtomicUsize>) {
    while !futures[0].running() && !futures[0].done() {
        std::thread::yield_now();
    }
    for future in futures {
        let cancelled = Arc::clone(cancelled);
        future.add_done_callback(move |outcome| {
            if let Err(TaskError::Cancelled) = outcome {
                cancelled.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        #[test]
        fn falling_off_the_end_waits_for_every_task() {
            let done = AtomicUsize::new(0);
            pool!($backend(max_workers = 2) => {
                for _ in 0..TASKS {
                    let _ = submit(slow_increment, &done);
                }
            });
            assert_eq!(done.load(Ordering::SeqCst), TASKS);
        }

        #[test]
        fn question_mark_returns_from_the_function_after_waiting() {
            fn parse_all(done: &AtomicUsize) -> Result<u32, std::num::ParseIntError> {
                pool!($backend(max_workers = 2, cancel_futures = false) => {
                    for _ in 0..TASKS {
                        let _ = submit(slow_increment, done);
                    }
                    let n: u32 = "not a number".parse()?;
                    Ok(n)
                })
            }
            let done = AtomicUsize::new(0);
            assert!(parse_all(&done).is_err());
            assert_eq!(done.load(Ordering::SeqCst), TASKS);
        }

        #[test]
        fn return_leaves_the_function_after_waiting() {
            fn early(done: &AtomicUsize) -> &'static str {
                pool!($backend(max_workers = 2, cancel_futures = false) => {
                    for _ in 0..TASKS {
                        let _ = submit(slow_increment, done);
                    }
                    return "returned";
                })
            }
            let done = AtomicUsize::new(0);
            assert_eq!(early(&done), "returned");
            assert_eq!(done.load(Ordering::SeqCst), TASKS);
        }

        #[test]
        fn break_and_continue_act_on_the_enclosing_loop_after_waiting() {
            let done = AtomicUsize::new(0);
            let mut rounds = 0;
            let mut seen_after_each_exit = Vec::new();
            for round in 0..4 {
                rounds += 1;
                pool!($backend(max_workers = 2, cancel_futures = false) => {
                    let _ = submit(slow_increment, &done);
                    if round == 0 {
                        continue;
                    }
                    if round == 2 {
                        break;
                    }
                });
                seen_after_each_exit.push(done.load(Ordering::SeqCst));
            }
            // Round 0 continued, round 1 fell through, round 2 broke out: round 3 never ran.
            assert_eq!(rounds, 3);
            assert_eq!(seen_after_each_exit, [2]);
            assert_eq!(done.load(Ordering::SeqCst), 3);
        }

        #[test]
        fn labelled_break_reaches_an_outer_loop() {
            let done = AtomicUsize::new(0);
            let mut last = 0;
            'outer: for i in 0..10 {
                for _ in 0..10 {
                    pool!($backend(cancel_futures = false) => {
                        let _ = submit(slow_increment, &done);
                        if i == 1 {
                            break 'outer;
                        }
                    });
                }
                last = i;
            }
            assert_eq!(last, 0);
            assert_eq!(done.load(Ordering::SeqCst), 11);
        }

        #[test]
        fn a_panic_in_the_block_unwinds_after_waiting() {
            let done = AtomicUsize::new(0);
            let outcome = panic::catch_unwind(|| {
                pool!($backend(max_workers = 2, cancel_futures = false) => {
                    for _ in 0..TASKS {
                        let _ = submit(slow_increment, &done);
                    }
                    panic!("the block itself panics");
                })
            });
            let payload = outcome.unwrap_err();
            assert_eq!(
                payload.downcast_ref::<&str>(),
                Some(&"the block itself panics")
            );
            assert_eq!(done.load(Ordering::SeqCst), TASKS);
        }

        /// The default: `?` leaves the block only after every task submitted in it has run, the
        /// queued ones included (the program: 4 tasks of 150 ms on 2 workers, then `?`).
        #[test]
        fn by_default_an_early_exit_runs_every_task_submitted() {
            fn parse_after_submitting(done: &AtomicUsize) -> Result<u32, std::num::ParseIntError> {
                pool!($backend(max_workers = 2) => {
                    for _ in 0..4 {
                        let _ = submit(|| {
                            std::thread::sleep(Duration::from_millis(150));
                            done.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    let n: u32 = "x".parse()?;
                    Ok(n)
                })
            }
            let done = AtomicUsize::new(0);
            assert!(parse_after_submitting(&done).is_err());
            assert_eq!(done.load(Ordering::SeqCst), 4, "every task ran");
        }

        /// With `cancel_futures = true`: `?` (or any early exit) cancels the tasks that had not
        /// started; the running one finishes, and nothing runs after the block.
        #[test]
        fn with_cancel_futures_an_early_exit_cancels_the_tasks_not_started() {
            let ran = Arc::new(AtomicUsize::new(0));
            let cancelled = Arc::new(AtomicUsize::new(0));
            let result: Result<u32, std::num::ParseIntError> = (|| {
                pool!($backend(max_workers = 1, cancel_futures = true) => {
                    let futures: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let ran = Arc::clone(&ran);
                            submit(move || slow_increment(&ran))
                        })
                        .collect();
                    count_cancellations(&futures, &cancelled);
                    let n: u32 = "not a number".parse()?;
                    Ok(n)
                })
            })();
            assert!(result.is_err());
            let ran_in_block = ran.load(Ordering::SeqCst);
            assert!(ran_in_block >= 1, "the running task finishes");
            assert!(ran_in_block < TASKS, "the queued ones did not run");
            assert_eq!(ran_in_block + cancelled.load(Ordering::SeqCst), TASKS);
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(
                ran.load(Ordering::SeqCst),
                ran_in_block,
                "nothing runs after the block"
            );
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

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// The default on Process too: every call submitted runs before `?` leaves the block.
#[test]
fn by_default_an_early_exit_runs_every_call_submitted() {
    fn parse_after_submitting() -> (
        Result<u32, std::num::ParseIntError>,
        Vec<concurrent_futures::Future<u64>>,
    ) {
        let mut futures = Vec::new();
        let parsed = (|| {
            pool!(Process(max_workers = 2) => {
                for _ in 0..4 {
                    futures.push(submit(sleep_ms, 150));
                }
                let n: u32 = "x".parse()?;
                Ok(n)
            })
        })();
        (parsed, futures)
    }
    let (parsed, futures) = parse_after_submitting();
    assert!(parsed.is_err());
    for future in futures {
        assert_eq!(future.result(), Ok(150), "every call ran");
    }
}

#[test]
fn with_cancel_futures_an_early_exit_cancels_the_calls_not_sent_to_a_worker() {
    let cancelled = Arc::new(AtomicUsize::new(0));
    let result: Result<u32, std::num::ParseIntError> = (|| {
        pool!(Process(max_workers = 1, cancel_futures = true) => {
            let futures: Vec<_> = (0..TASKS).map(|_| submit(sleep_ms, 100)).collect();
            count_cancellations(&futures, &cancelled);
            let n: u32 = "not a number".parse()?;
            Ok(n)
        })
    })();
    assert!(result.is_err());
    let cancelled = cancelled.load(Ordering::SeqCst);
    assert!(
        (TASKS - 2..TASKS).contains(&cancelled),
        "{cancelled} cancelled"
    );
}
