//! Leaving a `pool!` block in any way first waits for every task submitted in it, and `?`,
//! `return`, `break` and `continue` act on the enclosing function or loop, as in a plain block.
//!
//! Each test submits tasks that sleep before they record that they finished, leaves the block
//! early, and checks that every task had finished by the time control reached the code after it.

use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use executor::pool;

const TASKS: usize = 8;

fn slow_increment(counter: &AtomicUsize) {
    std::thread::sleep(Duration::from_millis(20));
    counter.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn falling_off_the_end_waits_for_every_task() {
    let done = AtomicUsize::new(0);
    pool!(Thread(max_workers = 2) => {
        for _ in 0..TASKS {
            let _ = submit(slow_increment, &done);
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), TASKS);
}

#[test]
fn question_mark_returns_from_the_function_after_waiting() {
    fn parse_all(done: &AtomicUsize) -> Result<u32, std::num::ParseIntError> {
        pool!(Thread(max_workers = 2) => {
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
        pool!(Thread(max_workers = 2) => {
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
        pool!(Thread(max_workers = 2) => {
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
            pool!(Thread => {
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
        pool!(Thread(max_workers = 2) => {
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
