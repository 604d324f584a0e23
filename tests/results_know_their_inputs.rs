//! A result can say what it was computed from: `wait` and `as_completed` take `(key, future)`
//! pairs and give the keys back with the futures, and `map_unordered(f, items)` yields each
//! item's result beside the item, in the order the work finishes. On every backend.

mod common;

use std::time::Duration;

use common::within;
use concurrent_futures::{as_completed, pool, wait, Future, ALL_COMPLETED, FIRST_COMPLETED};

fn sleep_then_double(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    2 * ms
}

fn fails_on_three(x: u64) -> u64 {
    assert_ne!(x, 3, "three");
    x
}

/// Keys come back with their futures, in the order the futures finish (the calls sleep 1, 300 and
/// 900 ms: gaps far wider than a loaded machine's scheduling delays).
fn check_keyed_as_completed(arrived: Vec<(&'static str, u64)>) {
    assert_eq!(arrived, [("quick", 2), ("middle", 600), ("slow", 1800)]);
}

/// Every item comes back once, beside its own result, and a failed item beside its error.
fn check_unordered(mut pairs: Vec<(u64, Result<u64, concurrent_futures::TaskError>)>) {
    assert_eq!(pairs.len(), 6);
    pairs.sort_by_key(|(item, _)| *item);
    for (item, result) in pairs {
        match item {
            3 => assert!(result.is_err(), "3 failed: {result:?}"),
            _ => assert_eq!(result, Ok(item)),
        }
    }
}

/// `map_unordered` yields in the order the work finishes, not the order of the input.
fn check_completion_order(order: Vec<u64>) {
    assert_eq!(order, [2, 600, 1800]);
}

macro_rules! every_backend {
    ($backend:ident) => {
        #[test]
        fn as_completed_gives_back_each_key_with_its_future() {
            let arrived = within("as_completed with keys", || {
                pool!($backend(max_workers = 3) => {
                    let keyed: Vec<(&str, Future<u64>)> = vec![
                        ("slow", submit(sleep_then_double, 900)),
                        ("quick", submit(sleep_then_double, 1)),
                        ("middle", submit(sleep_then_double, 300)),
                    ];
                    as_completed(keyed, None)
                        .map(|done| {
                            let (key, future) = done.unwrap();
                            (key, future.result().unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            });
            check_keyed_as_completed(arrived);
        }

        #[test]
        fn wait_gives_back_each_key_with_its_future() {
            let (first, rest) = within("wait with keys", || {
                pool!($backend(max_workers = 2) => {
                    let keyed = vec![(1u8, submit(sleep_then_double, 600)), (2u8, submit(sleep_then_double, 1))];
                    let waited = wait(keyed, FIRST_COMPLETED, None);
                    let first: Vec<u8> = waited.done.iter().map(|(key, _)| *key).collect();
                    let rest = wait(waited.not_done, ALL_COMPLETED, None);
                    let rest: Vec<(u8, u64)> = rest.done.into_iter().map(|(k, f)| (k, f.result().unwrap())).collect();
                    (first, rest)
                })
            });
            assert_eq!(first, [2]);
            assert_eq!(rest, [(1, 1200)]);
        }

        #[test]
        fn map_unordered_pairs_each_item_with_its_result() {
            let pairs = within("map_unordered", || {
                pool!($backend(max_workers = 2) => { map_unordered(fails_on_three, 0..6u64).collect::<Vec<_>>() })
            });
            check_unordered(pairs);
        }

        #[test]
        fn map_unordered_yields_in_the_order_the_work_finishes() {
            let order = within("map_unordered order", || {
                pool!($backend(max_workers = 3) => {
                    map_unordered(sleep_then_double, vec![900u64, 1, 300])
                        .map(|(item, result)| {
                            assert_eq!(result, Ok(2 * item));
                            2 * item
                        })
                        .collect::<Vec<_>>()
                })
            });
            check_completion_order(order);
        }
    };
}

mod thread {
    use super::*;
    every_backend!(Thread);
}

mod auto {
    use super::*;
    every_backend!(Auto);
}

mod process {
    use super::*;
    every_backend!(Process);

    /// Items travel in chunks; each chunk's items come back beside their results.
    #[test]
    fn map_unordered_in_chunks_keeps_items_with_their_results() {
        let pairs = pool!(Process(max_workers = 2) => {
            map_unordered(fails_on_three, 0..6u64, 4).collect::<Vec<_>>()
        });
        check_unordered(pairs);
    }
}
