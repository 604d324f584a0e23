//! 20,000 tiny tasks (`a + b`, results collected in order) on 2 workers, through `pool!(Thread)`,
//! through `rayon::scope` + `spawn`, and through `std::thread::scope` with a thread per task; and
//! through `pool!(Auto)` against `pool!(Thread)` at its default size (issue 9: Auto must add no
//! measurable cost).
//!
//! Run: `cargo bench --bench tiny_tasks`. Divan prints the median and the fastest/slowest sample
//! of each; `BENCHMARKS.md` records the per-task figures and the ratios between them.
//!
//! The `pool!` figure includes opening the pool (starting its 2 threads) and joining it, since each
//! block owns its workers; rayon's pool is built once, outside the timed loop, as rayon is used.

use std::sync::OnceLock;

use concurrent_futures::pool;
use divan::counter::ItemsCount;
use divan::Bencher;

const TASKS: usize = 20_000;
const WORKERS: usize = 2;

fn main() {
    divan::main();
}

#[inline(never)]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn expected() -> Vec<u64> {
    (0..TASKS as u64).map(|i| i + 1).collect()
}

#[divan::bench]
fn executor_pool_thread(bencher: Bencher) {
    bencher.counter(ItemsCount::new(TASKS)).bench(|| {
        let out: Vec<u64> = pool!(Thread(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..TASKS as u64).map(|i| submit(add, i, 1)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).collect()
        });
        debug_assert_eq!(out, expected());
        out
    });
}

/// `Thread` with its default size, `min(32, cpus + 4)`: what `Auto` is held to (issue 9).
#[divan::bench]
fn executor_pool_thread_default(bencher: Bencher) {
    bencher.counter(ItemsCount::new(TASKS)).bench(|| {
        let out: Vec<u64> = pool!(Thread => {
            let futures: Vec<_> = (0..TASKS as u64).map(|i| submit(add, i, 1)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).collect()
        });
        debug_assert_eq!(out, expected());
        out
    });
}

/// `Auto`: the same block; it starts one worker per core and its governor sees too little of
/// so short a block to act.
#[divan::bench]
fn executor_pool_auto(bencher: Bencher) {
    bencher.counter(ItemsCount::new(TASKS)).bench(|| {
        let out: Vec<u64> = pool!(Auto => {
            let futures: Vec<_> = (0..TASKS as u64).map(|i| submit(add, i, 1)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).collect()
        });
        debug_assert_eq!(out, expected());
        out
    });
}

fn rayon_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(WORKERS)
            .build()
            .unwrap()
    })
}

#[divan::bench]
fn rayon_scope_spawn(bencher: Bencher) {
    let pool = rayon_pool();
    bencher.counter(ItemsCount::new(TASKS)).bench(|| {
        let mut out = vec![0u64; TASKS];
        pool.scope(|scope| {
            for (i, slot) in out.iter_mut().enumerate() {
                scope.spawn(move |_| *slot = add(i as u64, 1));
            }
        });
        debug_assert_eq!(out, expected());
        out
    });
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn std_thread_scope_thread_per_task(bencher: Bencher) {
    bencher.counter(ItemsCount::new(TASKS)).bench(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..TASKS as u64)
                .map(|i| scope.spawn(move || add(i, 1)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<u64>>()
        })
    });
}
