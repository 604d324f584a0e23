//! `submit(f, args...)` runs `f(args...)` on the pool and its future gives back what `f` returned:
//! in the order the futures are read, for every arity, for every way of naming `f`, and from
//! anywhere in the block.

use concurrent_futures::{pool, Future, TaskError};

fn add(a: u64, b: u64) -> u64 {
    a + b
}

mod math {
    pub(crate) fn double(x: i32) -> i32 {
        2 * x
    }
}

struct Greeter;

impl Greeter {
    fn greet(name: &str) -> String {
        format!("hello {name}")
    }
}

fn first<T: Clone>(items: Vec<T>) -> T {
    items[0].clone()
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        #[test]
        fn results_come_back_in_submission_order() {
            let sums: Vec<u64> = pool!($backend(max_workers = 4) => {
                let futures: Vec<Future<u64>> = (0..1000).map(|i| submit(add, i, 1)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).collect()
            });
            assert_eq!(sums, (1..=1000).collect::<Vec<u64>>());
        }

        #[test]
        fn the_block_value_is_the_value_of_the_pool_expression() {
            let value = pool!($backend => { 6 * 7 });
            assert_eq!(value, 42);
            let unit: () = pool!($backend => {});
            assert_eq!(unit, ());
        }

        #[test]
        fn every_arity_from_zero_to_twelve() {
            #[rustfmt::skip]
            let results = pool!($backend => {
                vec![
                    submit(|| 0).result().unwrap(),
                    submit(|a: u32| a, 1).result().unwrap(),
                    submit(|a: u32, b: u32| a + b, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32| a + b + c, 1, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32, d: u32| a + b + c + d, 1, 1, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32, d: u32, e: u32| a + b + c + d + e, 1, 1, 1, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32, d: u32, e: u32, f: u32| a + b + c + d + e + f, 1, 1, 1, 1, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32| a + b + c + d + e + f + g, 1, 1, 1, 1, 1, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32| a + b + c + d + e + f + g + h, 1, 1, 1, 1, 1, 1, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32, i: u32| a + b + c + d + e + f + g + h + i, 1, 1, 1, 1, 1, 1, 1, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32, i: u32, j: u32| a + b + c + d + e + f + g + h + i + j, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32, i: u32, j: u32, k: u32| a + b + c + d + e + f + g + h + i + j + k, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1).result().unwrap(),
                    submit(|a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32, i: u32, j: u32, k: u32, l: u32| a + b + c + d + e + f + g + h + i + j + k + l, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1).result().unwrap(),
                ]
            });
            assert_eq!(results, (0..=12).collect::<Vec<u32>>());
        }

        #[test]
        fn functions_paths_methods_turbofish_and_closures() {
            let offset = 10;
            let (sum, doubled, greeting, head, captured, inferred) = pool!($backend => {
                let sum = submit(add, 2, 3);
                let doubled = submit(math::double, 21);
                let greeting = submit(Greeter::greet, "rust");
                let head = submit(first::<char>, vec!['a', 'b']);
                let captured = submit(move |x: i32| x + offset, 5);
                let inferred = submit(|s| String::len(&s), String::from("four"));
                (sum.result(), doubled.result(), greeting.result(), head.result(), captured.result(), inferred.result())
            });
            assert_eq!(sum, Ok(5));
            assert_eq!(doubled, Ok(42));
            assert_eq!(greeting.as_deref(), Ok("hello rust"));
            assert_eq!(head, Ok('a'));
            assert_eq!(captured, Ok(15));
            assert_eq!(inferred, Ok(4));
        }

        #[test]
        fn submit_works_in_loops_closures_iterators_nested_blocks_and_macro_arguments() {
            let total = pool!($backend => {
                let mut futures = Vec::new();
                for i in 0..3 {
                    futures.push(submit(add, i, 0));
                }
                let make = |x: u64| submit(add, x, 100);
                futures.push(make(1));
                futures.extend((0..2).map(|i| submit(add, i, 1000)));
                {
                    let nested = { submit(add, 7, 0) };
                    futures.push(nested);
                }
                futures.extend(vec![submit(add, 1, 1), submit(add, 2, 2)]);
                let echoed = format!("{:?}", submit(add, 20, 22).result());
                assert_eq!(echoed, "Ok(42)");
                futures.into_iter().map(|f| f.result().unwrap()).sum::<u64>()
            });
            assert_eq!(total, (1 + 2) + 101 + (1000 + 1001) + 7 + 2 + 4);
        }

        #[test]
        fn arguments_are_evaluated_at_submit_time_in_order() {
            let mut trace = Vec::new();
            let mut next = |label: &str| {
                trace.push(label.to_string());
                trace.len() as u64
            };
            let value = pool!($backend => {
                let f = submit(add, next("a"), next("b"));
                next("after submit");
                f.result().unwrap()
            });
            assert_eq!(value, 3);
            assert_eq!(trace, ["a", "b", "after submit"]);
        }

        #[test]
        fn a_fire_and_forget_task_still_runs_before_the_block_ends() {
            let counter = std::sync::atomic::AtomicUsize::new(0);
            pool!($backend => {
                for _ in 0..50 {
                    let _ = submit(|| {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    });
                }
            });
            assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), 50);
        }

        #[test]
        fn task_error_lifts_into_box_dyn_error_with_question_mark() {
            fn run() -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
                let value = pool!($backend => { submit(|| -> u64 { panic!("lifted") }).result()? });
                Ok(value)
            }
            let error = run().unwrap_err();
            let task_error = error
                .downcast_ref::<TaskError>()
                .expect("a TaskError inside the box");
            assert_eq!(task_error.panic().map(|p| p.message()), Some("lifted"));
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
