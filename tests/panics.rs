//! A panic in a task is caught and returned as `TaskError::Panicked(panic)`; the pool and the
//! other tasks carry on. A panic nobody read is reported when the block ends. (Where it panicked:
//! `tests/panic_location.rs`.)

use std::panic;

use concurrent_futures::{pool, TaskError};

/// The panic message of a task that panicked.
fn message<T>(outcome: &Result<T, TaskError>) -> Option<&str> {
    outcome.as_ref().err()?.panic().map(|panic| panic.message())
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        #[test]
        fn a_panicking_task_gives_its_message_and_the_others_complete() {
            let results = pool!($backend(max_workers = 2) => {
                let futures: Vec<_> = (0..20)
                    .map(|i| submit(|i: u32| if i % 5 == 0 { panic!("task {i} failed") } else { i }, i))
                    .collect();
                futures.into_iter().map(|f| f.result()).collect::<Vec<_>>()
            });
            for (i, result) in results.iter().enumerate() {
                if i % 5 == 0 {
                    assert_eq!(message(result), Some(format!("task {i} failed").as_str()));
                } else {
                    assert_eq!(result, &Ok(i as u32));
                }
            }
        }

        #[test]
        fn string_str_and_non_string_payloads_are_described() {
            let (owned, literal, other) = pool!($backend => {
                let owned = submit(|| -> () { panic!("{}", String::from("owned message")) });
                let literal = submit(|| -> () { panic!("literal message") });
                let other = submit(|| -> () { panic::panic_any(42_u32) });
                (owned.result(), literal.result(), other.result())
            });
            assert_eq!(message(&owned), Some("owned message"));
            assert_eq!(message(&literal), Some("literal message"));
            assert_eq!(message(&other), Some("<a panic payload that is not a string>"));
        }

        #[test]
        fn the_pool_keeps_serving_after_a_panic() {
            let after = pool!($backend(max_workers = 1) => {
                let failed = submit(|| -> u8 { panic!("first") });
                assert!(failed.result().is_err());
                submit(|| 7u8).result()
            });
            assert_eq!(after, Ok(7));
        }

        #[test]
        fn a_panic_whose_future_was_dropped_unread_panics_the_block_at_its_end() {
            let outcome = panic::catch_unwind(|| {
                pool!($backend => {
                    drop(submit(|| -> () { panic!("nobody looked") }));
                })
            });
            let payload = outcome.expect_err("an unread task panic must not vanish");
            let message = payload
                .downcast_ref::<String>()
                .expect("a formatted message");
            assert!(message.contains("nobody looked"), "{message}");
            assert!(
                message.contains("dropped without reading the result"),
                "{message}"
            );
        }

        #[test]
        fn a_panic_that_was_read_does_not_panic_the_block() {
            let seen = pool!($backend => { submit(|| -> () { panic!("looked at") }).result() });
            assert_eq!(message(&seen), Some("looked at"));
        }

        #[test]
        fn a_panic_whose_future_left_the_block_is_left_to_its_owner() {
            let future = pool!($backend => { submit(|| -> () { panic!("still held") }) });
            assert_eq!(message(&future.result()), Some("still held"));
        }

        #[test]
        fn an_early_exit_with_an_unread_panic_does_not_turn_into_a_panic() {
            fn early() -> Result<(), String> {
                pool!($backend => {
                    drop(submit(|| -> () { panic!("unread, early exit") }));
                    Err("left early".to_string())?;
                    Ok(())
                })
            }
            assert_eq!(early(), Err("left early".to_string()));
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
