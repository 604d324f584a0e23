//! What fresh memory costs a block (issue 16), in two probes that print each sample.
//!
//! - First blocks: a `pool!(Thread)` block of 20,000 `add(i, 1)` and a rayon scope of the same,
//!   taken turn about, each after 200 ms idle (as the report's first-block row), with the page
//!   faults the process took during each (`getrusage`). Then 20 `pool!(Thread)` blocks back to back.
//! - Fresh copies: 8 copies of 64 MiB, each into a fresh vector advised for huge pages (as the pool's
//!   process receives a large result), all kept until the last, first right after another such set
//!   was freed, then after 3 s of sleep. On a VM with free page reporting (`virtio_balloon`) the
//!   guest hands freed memory back to its host about 2 s after the free, and the host must fault it
//!   in again when it is next touched.
//!
//! Run: `cargo bench --bench fresh_memory` (`FRESH_ROUNDS=n` rounds of each, 6 by default).

use std::hint::black_box;
use std::time::{Duration, Instant};

use concurrent_futures::pool;

#[path = "report/huge_pages.rs"]
mod huge_pages;
use huge_pages::copy_into_huge_pages;

const TASKS: u64 = 20_000;
const MIB: usize = 1 << 20;

fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Minor page faults the whole process has taken so far.
fn faults() -> i64 {
    // SAFETY: an all-zero `rusage` is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `getrusage` writes one `rusage` through the valid pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_minflt
}

/// Milliseconds and page faults of `f`.
fn measured<R>(f: impl FnOnce() -> R) -> (f64, i64, R) {
    let (before, started) = (faults(), Instant::now());
    let out = f();
    (
        started.elapsed().as_secs_f64() * 1e3,
        faults() - before,
        out,
    )
}

fn first_blocks(rounds: usize) {
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a rayon pool");
    let thread_block = || {
        let (ms, faults, out): (_, _, Vec<u64>) = measured(|| {
            pool!(Thread(max_workers = 2) => {
                let futures: Vec<_> = (0..TASKS).map(|i| submit(add, i, 1)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).collect()
            })
        });
        assert_eq!(out.len() as u64, TASKS);
        (ms, faults)
    };
    let rayon_scope = || {
        let (ms, faults, out) = measured(|| {
            let mut out = vec![0u64; TASKS as usize];
            rayon.scope(|scope| {
                for (i, slot) in out.iter_mut().enumerate() {
                    scope.spawn(move |_| *slot = add(i as u64, 1));
                }
            });
            out
        });
        assert_eq!(out.len() as u64, TASKS);
        (ms, faults)
    };
    let idle = || std::thread::sleep(Duration::from_millis(200));
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (pool, rayon) = if round % 2 == 0 {
            idle();
            let pool = thread_block();
            idle();
            (pool, rayon_scope())
        } else {
            idle();
            let rayon = rayon_scope();
            idle();
            (thread_block(), rayon)
        };
        println!(
            "first block: pool!(Thread) {:.2} ms ({} faults), rayon {:.2} ms ({} faults): {:.2}x",
            pool.0,
            pool.1,
            rayon.0,
            rayon.1,
            pool.0 / rayon.0
        );
        ratios.push(pool.0 / rayon.0);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "first block, median of the ratios: {:.2}x",
        ratios[ratios.len() / 2]
    );
    let back_to_back: Vec<String> = (0..20)
        .map(|_| {
            let (ms, faults) = thread_block();
            format!("{ms:.2} ms/{faults}")
        })
        .collect();
    println!("pool!(Thread) back to back: {}", back_to_back.join(", "));
}

fn fresh_copies(rounds: usize) {
    let source = vec![7u8; 64 * MIB];
    let mut target = vec![1u8; 64 * MIB]; // written, so its pages are in
    let set = |label: &str| {
        let mut kept = Vec::new();
        let times: Vec<String> = (0..8)
            .map(|_| {
                let (ms, _, copy) = measured(|| copy_into_huge_pages(black_box(&source)));
                kept.push(copy);
                format!("{ms:.1}")
            })
            .collect();
        println!("{label}: {} ms", times.join(", "));
    };
    for round in 0..rounds {
        let (ms, _, ()) = measured(|| {
            target.copy_from_slice(black_box(&source));
            black_box(&mut target);
        });
        println!("memcpy of 64 MiB into a reused buffer: {ms:.1} ms");
        set(if round == 0 {
            "8 fresh copies, the process's first"
        } else {
            "8 fresh copies, right after a free"
        });
        set("8 fresh copies, right after a free");
        std::thread::sleep(Duration::from_secs(3));
        set("8 fresh copies, after 3 s of sleep");
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds = std::env::var("FRESH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    first_blocks(rounds);
    fresh_copies(rounds.min(3));
}
