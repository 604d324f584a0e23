//! The Process backend against its peers and its floor, on 2 workers: 20,000 tiny tasks, 200 tasks
//! with a 1 MiB argument, and pool start-up, through `pool!(Process)`, the `procspawn` crate's
//! `Pool`, and (after divan's table) Python's `ProcessPoolExecutor`, driven by running
//! `benches/python/executors.py`; plus a raw pipe ping-pong between two processes.
//!
//! Run: `cargo bench --bench process`. `BENCHMARKS.md` records the figures and the ratios.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use concurrent_futures::pool;
use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;

const TASKS: usize = 20_000;
const PAYLOADS: usize = 200;
const WORKERS: usize = 2;

fn main() {
    // procspawn needs this first thing in `main`; `pool!` needs nothing.
    procspawn::init();
    divan::main();
    run_python_peers();
}

/// Runs Python's side of the comparison in the same run and prints its figures.
fn run_python_peers() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/executors.py");
    println!("\nPython concurrent.futures, same work ({script}):");
    match Command::new("python3").arg(script).arg("3").status() {
        Ok(status) if status.success() => {}
        Ok(status) => println!("python3 failed: {status}"),
        Err(error) => println!("python3 could not run: {error}"),
    }
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

/// The 200 arguments are built outside the timed part (as Python's benchmark passes one prebuilt
/// `bytes` object): the figure is the cost of moving them, not of making them.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn executor_process_1mib_arguments(bencher: Bencher) {
    let payload = vec![7u8; 1 << 20];
    bencher
        .counter(BytesCount::new(PAYLOADS << 20))
        .with_inputs(|| vec![payload.clone(); PAYLOADS])
        .bench_values(|payloads| {
            pool!(Process(max_workers = WORKERS) => {
                let futures: Vec<_> = payloads.into_iter().map(|p| submit(length, p)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).sum::<usize>()
            })
        });
}

/// Tens of MiB per argument: 8 tasks with a 64 MiB `Vec<u8>` each.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn executor_process_64mib_arguments(bencher: Bencher) {
    let payload = vec![7u8; 64 << 20];
    bencher
        .counter(BytesCount::new(8usize << 26))
        .with_inputs(|| vec![payload.clone(); 8])
        .bench_values(|payloads| {
            pool!(Process(max_workers = WORKERS) => {
                let futures: Vec<_> = payloads.into_iter().map(|p| submit(length, p)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).sum::<usize>()
            })
        });
}

/// The floor for payloads: copying the same bytes once in memory.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn floor_memcpy_1mib(bencher: Bencher) {
    let payload = vec![7u8; 1 << 20];
    let mut target = vec![0u8; 1 << 20];
    bencher
        .counter(BytesCount::new(PAYLOADS << 20))
        .bench_local(|| {
            for _ in 0..PAYLOADS {
                target.copy_from_slice(divan::black_box(&payload));
            }
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

fn add_pair((a, b): (u64, u64)) -> u64 {
    a + b
}

/// procspawn's pool fails with EMFILE beyond about 1,000 outstanding calls (3 descriptors each), so
/// it gets its 20,000 calls in batches of 1,000.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn procspawn_pool_tiny(bencher: Bencher) {
    bencher.counter(ItemsCount::new(TASKS)).bench(|| {
        let pool = procspawn::Pool::new(WORKERS).unwrap();
        let mut out = Vec::with_capacity(TASKS);
        for batch in (0..TASKS as u64).collect::<Vec<_>>().chunks(1_000) {
            let handles: Vec<_> = batch
                .iter()
                .map(|&i| pool.spawn((i, 1u64), add_pair))
                .collect();
            out.extend(handles.into_iter().map(|h| h.join().unwrap()));
        }
        pool.shutdown();
        assert_eq!(out.len(), TASKS);
        out
    });
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn procspawn_pool_startup_one_task(bencher: Bencher) {
    bencher.bench(|| {
        let pool = procspawn::Pool::new(WORKERS).unwrap();
        let value = pool.spawn((1u64, 2u64), add_pair).join().unwrap();
        pool.shutdown();
        value
    });
}

fn length_of(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// As `executor_process_1mib_arguments`, through procspawn (arguments built outside the timing).
/// With all 200 calls outstanding, procspawn 1.0 hangs here (no progress, no CPU, for minutes), so
/// it gets them in batches of `WORKERS`, one call per worker at a time.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn procspawn_pool_1mib_arguments(bencher: Bencher) {
    let payload = vec![7u8; 1 << 20];
    bencher
        .counter(BytesCount::new(PAYLOADS << 20))
        .with_inputs(|| vec![payload.clone(); PAYLOADS])
        .bench_values(|payloads| {
            let pool = procspawn::Pool::new(WORKERS).unwrap();
            let mut total = 0;
            let mut payloads = payloads.into_iter();
            loop {
                let handles: Vec<_> = payloads
                    .by_ref()
                    .take(WORKERS)
                    .map(|p| pool.spawn(p, length_of))
                    .collect();
                if handles.is_empty() {
                    break;
                }
                total += handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .sum::<usize>();
            }
            pool.shutdown();
            assert_eq!(total, PAYLOADS << 20);
            total
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
