//! `pool!` blocks nest, a task may open a `pool!` block of its own, and a task may wait on
//! another task of its own pool, all without deadlock. Every way of waiting keeps that promise:
//! `result`, `exception`, `wait`, `as_completed` and `map`'s iterator, each run by a task on a
//! pool of one worker whose work is queued behind it (each test fails after 30 s rather than
//! hang).

mod common;

use common::within;
use concurrent_futures::{as_completed, pool, wait, Future, ALL_COMPLETED, FIRST_COMPLETED};

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn process_level(depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    pool!(Process(max_workers = 2) => {
        let futures: Vec<_> = (0..3).map(|_| submit(process_level, depth - 1)).collect();
        futures.into_iter().map(|f| f.result().unwrap()).sum()
    })
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        fn inner_sum(n: u64) -> u64 {
            pool!($backend(max_workers = 2) => {
                let futures: Vec<_> = (0..n).map(|i| submit(add, i, 0)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).sum()
            })
        }

        #[test]
        fn a_block_nests_inside_a_block() {
            let total = pool!($backend(max_workers = 1) => {
                let outer = submit(add, 1, 2);
                let inner = pool!($backend(max_workers = 1) => { submit(add, 3, 4).result().unwrap() });
                outer.result().unwrap() + inner
            });
            assert_eq!(total, 10);
        }

        #[test]
        fn tasks_open_their_own_blocks_even_when_every_worker_is_busy() {
            // More tasks than workers, each opening a pool that itself has more tasks than workers.
            let sums = pool!($backend(max_workers = 2) => {
                let futures: Vec<_> = (0..6).map(|_| submit(inner_sum, 10)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>()
            });
            assert_eq!(sums, vec![45; 6]);
        }

        #[test]
        fn three_levels_deep_with_more_tasks_than_workers() {
            fn level(depth: u32) -> u64 {
                if depth == 0 {
                    return 1;
                }
                pool!($backend(max_workers = 2) => {
                    let futures: Vec<_> = (0..3).map(|_| submit(level, depth - 1)).collect();
                    futures.into_iter().map(|f| f.result().unwrap()).sum()
                })
            }
            assert_eq!(level(3), 27);
        }

        #[test]
        fn a_task_may_submit_to_its_own_pool_and_wait_even_with_one_worker() {
            // The only worker waits on a task queued behind it: it runs that task itself rather than block.
            let value = pool!($backend(max_workers = 1) => {
                let chained: Future<u64> = submit(|| submit(add, 20, 22).result().unwrap());
                chained.result().unwrap()
            });
            assert_eq!(value, 42);
        }

        #[test]
        fn a_task_may_wait_on_tasks_of_its_own_pool_with_one_worker() {
            let all = within("wait(ALL_COMPLETED) in a task", || {
                pool!($backend(max_workers = 1) => {
                    submit(|| {
                        let inner = vec![submit(add, 2, 3), submit(add, 4, 5)];
                        let waited = wait(inner, ALL_COMPLETED, None);
                        assert!(waited.not_done.is_empty());
                        waited.done.into_iter().map(|f| f.result().unwrap()).sum::<u64>()
                    })
                    .result()
                    .unwrap()
                })
            });
            assert_eq!(all, 14);
            let first = within("wait(FIRST_COMPLETED) in a task", || {
                pool!($backend(max_workers = 1) => {
                    submit(|| wait(vec![submit(add, 1, 1)], FIRST_COMPLETED, None).done.len())
                        .result()
                        .unwrap()
                })
            });
            assert_eq!(first, 1);
        }

        #[test]
        fn a_task_may_take_tasks_of_its_own_pool_as_they_complete_with_one_worker() {
            let values = within("as_completed in a task", || {
                pool!($backend(max_workers = 1) => {
                    submit(|| {
                        let inner: Vec<_> = (0..3).map(|i| submit(add, i, 10)).collect();
                        let mut values: Vec<u64> = as_completed(inner, None)
                            .map(|f| f.unwrap().result().unwrap())
                            .collect();
                        values.sort();
                        values
                    })
                    .result()
                    .unwrap()
                })
            });
            assert_eq!(values, [10, 11, 12]);
        }

        #[test]
        fn a_task_may_map_and_read_errors_on_its_own_pool_with_one_worker() {
            let (mapped, error) = within("map and exception in a task", || {
                pool!($backend(max_workers = 1) => {
                    submit(|| {
                        let mapped: Vec<u64> = map(|x: u64| x * 2, 0..5u64).map(|r| r.unwrap()).collect();
                        let failing = submit(|| -> u64 { panic!("inner") });
                        let error = failing.exception();
                        assert!(failing.result().is_err());
                        (mapped, error.is_some())
                    })
                    .result()
                    .unwrap()
                })
            });
            assert_eq!(mapped, [0, 2, 4, 6, 8]);
            assert!(error);
        }

        fn thread_level_over_processes(depth: u32) -> u64 {
            pool!($backend(max_workers = 2) => {
                let futures: Vec<_> = (0..3).map(|_| submit(process_level, depth)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).sum()
            })
        }

        #[test]
        fn process_blocks_inside_a_thread_block_inside_a_process_block() {
            let total = pool!(Process(max_workers = 2) => {
                submit(thread_level_over_processes, 1).result().unwrap()
            });
            assert_eq!(total, 9);
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

/// A task in a worker process opens a Process block of its own: workers start workers.
#[test]
fn three_levels_deep_with_more_tasks_than_workers_on_processes() {
    assert_eq!(process_level(3), 27);
}
