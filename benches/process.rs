//! The Process backend against its floor: 20,000 tiny tasks, 200 tasks with a 1 MiB argument, and
//! pool start-up, on 2 workers; and a raw pipe ping-pong between two processes.
//!
//! Run: `cargo bench --bench process`. `BENCHMARKS.md` records the figures and the ratios.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use executor::pool;

const TASKS: usize = 20_000;
const PAYLOADS: usize = 200;
const WORKERS: usize = 2;

fn main() {
    divan::main();
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn executor_process_tiny(bencher: Bencher) {
    bencher.counter(ItemsCount::new(TASKS)).bench(|| {
        let out: Vec<u64> = pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..TASKS as u64).map(|i| submit(add, i, 1)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).collect()
        });
        assert_eq!(out.len(), TASKS);
        out
    });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn executor_process_1mib_arguments(bencher: Bencher) {
    let payload = vec![7u8; 1 << 20];
    bencher.counter(BytesCount::new(PAYLOADS << 20)).bench(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..PAYLOADS).map(|_| submit(length, payload.clone())).collect();
            futures.into_iter().map(|f| f.result().unwrap()).sum::<usize>()
        })
    });
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn executor_process_startup_one_task(bencher: Bencher) {
    bencher
        .bench(|| pool!(Process(max_workers = WORKERS) => { submit(add, 1, 2).result().unwrap() }));
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn executor_process_startup_two_workers(bencher: Bencher) {
    bencher.bench(|| {
        pool!(Process(max_workers = WORKERS) => {
            let a = submit(add, 1, 2);
            let b = submit(add, 3, 4);
            a.result().unwrap() + b.result().unwrap()
        })
    });
}

/// The floor: one byte to `cat` and back, through two pipes, per round trip.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn floor_pipe_ping_pong(bencher: Bencher) {
    const ROUND_TRIPS: usize = 2_000;
    let mut cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("`cat` runs");
    let mut to_cat = cat.stdin.take().unwrap();
    let mut from_cat = cat.stdout.take().unwrap();
    bencher
        .counter(ItemsCount::new(ROUND_TRIPS))
        .bench_local(|| {
            let mut byte = [0u8; 1];
            for _ in 0..ROUND_TRIPS {
                to_cat.write_all(&byte).unwrap();
                from_cat.read_exact(&mut byte).unwrap();
            }
        });
    drop(to_cat);
    cat.wait().unwrap();
}
