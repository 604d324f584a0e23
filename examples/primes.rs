//! CPU-bound work on both backends: count the primes below 4,000,000, split into 32 ranges, with a
//! plain loop, with `pool!(Thread => ...)` and with `pool!(Process => ...)`, and print the speedups.
//!
//! ```sh
//! cargo run --release --example primes
//! ```
//!
//! In Rust both backends run CPU-bound work in parallel (there is no GIL); expect a speedup close to
//! the number of cores from each. Processes pay a little more per call (a worker start, and the
//! arguments and result crossing a socket) in exchange for isolation: a crash in a task takes down
//! only its worker.

use std::time::Instant;

use concurrent_futures::pool;

#[path = "shared/primes.rs"]
mod primes;

use primes::{primes_in as count_primes, ranges, CHUNKS, LIMIT};

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("counting primes below {LIMIT} in {CHUNKS} ranges, on {cores} cores");

    let started = Instant::now();
    let plain: u64 = ranges().into_iter().map(|(a, b)| count_primes(a, b)).sum();
    let plain_time = started.elapsed();
    println!("plain loop:      {plain} primes in {plain_time:.2?}");

    let started = Instant::now();
    let threads: u64 = pool!(Thread(max_workers = cores) => {
        let work: Vec<_> = ranges().into_iter().map(|(a, b)| submit(count_primes, a, b)).collect();
        work.into_iter().map(|f| f.result().unwrap()).sum()
    });
    let thread_time = started.elapsed();
    println!(
        "pool!(Thread):   {threads} primes in {thread_time:.2?}  ({:.2}x)",
        plain_time.as_secs_f64() / thread_time.as_secs_f64()
    );

    let started = Instant::now();
    let processes: u64 = pool!(Process(max_workers = cores) => {
        let work: Vec<_> = ranges().into_iter().map(|(a, b)| submit(count_primes, a, b)).collect();
        work.into_iter().map(|f| f.result().unwrap()).sum()
    });
    let process_time = started.elapsed();
    println!(
        "pool!(Process):  {processes} primes in {process_time:.2?}  ({:.2}x)",
        plain_time.as_secs_f64() / process_time.as_secs_f64()
    );

    assert_eq!(plain, threads);
    assert_eq!(plain, processes);
}
