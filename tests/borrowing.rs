//! Tasks may borrow data that outlives the `pool!` expression, as with `std::thread::scope`.
//! (Borrowing data that does not live long enough is a compile error: see `tests/ui/`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use concurrent_futures::pool;

fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().map(|&b| u32::from(b)).sum()
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        #[test]
        fn tasks_borrow_str_slices_and_structs_from_the_enclosing_function() {
            let pages = [String::from("a b c"), String::from("d e"), String::from("")];
            let blob = [1u8, 2, 3, 4];
            let (counts, sum) = pool!($backend => {
                let counts: Vec<_> = pages.iter().map(|p| submit(count_words, p.as_str())).collect();
                let sum = submit(checksum, &blob[1..]);
                (counts.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>(), sum.result().unwrap())
            });
            assert_eq!(counts, [3, 2, 0]);
            assert_eq!(sum, 9);
            // Still usable: the block only borrowed them.
            assert_eq!(pages.len(), 3);
        }

        #[test]
        fn tasks_share_mutable_state_through_a_borrowed_mutex_and_atomics() {
            let log = Mutex::new(Vec::new());
            let hits = AtomicUsize::new(0);
            pool!($backend(max_workers = 4) => {
                for i in 0..100 {
                    let _ = submit(|i: usize| {
                        log.lock().unwrap().push(i);
                        hits.fetch_add(1, Ordering::Relaxed);
                    }, i);
                }
            });
            let mut log = log.into_inner().unwrap();
            log.sort_unstable();
            assert_eq!(log, (0..100).collect::<Vec<_>>());
            assert_eq!(hits.into_inner(), 100);
        }

        #[test]
        fn a_result_may_borrow_from_the_enclosing_function() {
            let text = String::from("alpha beta gamma");
            let longest: &str = pool!($backend => {
                submit(|t: &str| t.split(' ').max_by_key(|w| w.len()).unwrap(), text.as_str()).result().unwrap()
            });
            assert_eq!(longest, "gamma"); // the last of the longest words
        }

        #[test]
        fn futures_may_leave_the_block_already_resolved() {
            let futures =
                pool!($backend => { (0..4).map(|i| submit(|x: u32| x * 10, i)).collect::<Vec<_>>() });
            assert!(
                futures.iter().all(|f| f.done()),
                "the block joined every task before it ended"
            );
            let values: Vec<u32> = futures.into_iter().map(|f| f.result().unwrap()).collect();
            assert_eq!(values, [0, 10, 20, 30]);
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
