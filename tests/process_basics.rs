//! The Process backend: the same block as Thread, each call in a worker process.

use concurrent_futures::{current_worker, pool, Backend, TaskError};
use serde::{Deserialize, Serialize};

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn pid() -> u32 {
    std::process::id()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Page {
    url: String,
    words: Vec<String>,
}

fn count_words(page: Page) -> (String, usize) {
    (page.url, page.words.len())
}

#[test]
fn results_come_back_in_order() {
    let sums: Vec<u64> = pool!(Process(max_workers = 2) => {
        let futures: Vec<_> = (0..200).map(|i| submit(add, i, 1)).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    assert_eq!(sums, (1..=200).collect::<Vec<_>>());
}

#[test]
fn calls_run_in_other_processes() {
    let pids: Vec<u32> = pool!(Process(max_workers = 2) => {
        let futures: Vec<_> = (0..4).map(|_| submit(pid)).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    assert!(pids.iter().all(|&p| p != std::process::id()), "{pids:?}");
}

#[test]
fn user_structs_closures_and_paths_cross_the_boundary() {
    let page = Page {
        url: "https://example.com".into(),
        words: vec!["a".into(), "b".into()],
    };
    let (counted, doubled, length) = pool!(Process => {
        let counted = submit(count_words, page.clone());
        let doubled = submit(|x: i64| x * 2, 21);
        let length = submit(u64::pow, 2, 10);
        (counted.result(), doubled.result(), length.result())
    });
    assert_eq!(counted, Ok(("https://example.com".to_string(), 2)));
    assert_eq!(doubled, Ok(42));
    assert_eq!(length, Ok(1024));
}

#[test]
fn a_task_knows_it_runs_in_a_worker_process() {
    let info = pool!(Process(max_workers = 1) => { submit(current_worker).result().unwrap() })
        .expect("a call runs on a worker");
    assert_eq!(info.backend(), Backend::Process);
    assert_eq!(info.index(), 0);
    assert_ne!(info.pid(), std::process::id());
}

fn fails(message: String) -> u8 {
    panic!("{message}")
}

#[test]
fn a_panic_comes_back_and_the_worker_serves_on() {
    let (failed, after) = pool!(Process(max_workers = 1) => {
        let failed = submit(fails, "bad input".to_string());
        let after = submit(pid);
        (failed.result(), after.result())
    });
    assert_eq!(
        failed.unwrap_err().panic().map(|p| p.message()),
        Some("bad input")
    );
    assert!(after.is_ok());
}

fn sum_on_inner_pools(n: u64) -> (u64, u64) {
    let on_threads: u64 = pool!(Thread(max_workers = 2) => {
        let parts: Vec<_> = (0..n).map(|i| submit(add, i, 0)).collect();
        parts.into_iter().map(|f| f.result().unwrap()).sum()
    });
    let on_processes: u64 = pool!(Process(max_workers = 2) => {
        let parts: Vec<_> = (0..n).map(|i| submit(add, i, 0)).collect();
        parts.into_iter().map(|f| f.result().unwrap()).sum()
    });
    (on_threads, on_processes)
}

#[test]
fn a_worker_process_can_open_pools_of_its_own() {
    let sums = pool!(Process(max_workers = 2) => {
        let outer: Vec<_> = (0..3).map(|_| submit(sum_on_inner_pools, 10)).collect();
        outer.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(sums, vec![(45, 45); 3]);
}

#[test]
#[should_panic(
    expected = "a task in a pool! block panicked and its future was dropped without reading the result: nobody reads this"
)]
fn an_unread_panic_is_reported_when_the_block_ends() {
    pool!(Process(max_workers = 1) => {
        let _ = submit(fails, "nobody reads this".to_string());
    });
}

#[test]
fn cancelled_calls_never_run_and_the_rest_do() {
    let (cancelled, results) = pool!(Process(max_workers = 1) => {
        let slow = submit(sleep_ms, 300);
        let queued: Vec<_> = (0..5).map(|i| submit(add, i, 0)).collect();
        let cancelled = queued[4].cancel();
        let results: Vec<_> = queued.into_iter().map(|f| f.result()).collect();
        slow.result().unwrap();
        (cancelled, results)
    });
    assert!(cancelled);
    assert_eq!(results[..4], [Ok(0), Ok(1), Ok(2), Ok(3)]);
    assert_eq!(results[4], Err(TaskError::Cancelled));
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

fn checksum_and_echo(label: String, bytes: Vec<u8>) -> (String, u64, Vec<u8>) {
    let sum = bytes.iter().map(|&b| u64::from(b)).sum();
    (label, sum, bytes)
}

fn reversed(bytes: Vec<u8>, label: String) -> (Vec<u8>, String) {
    (bytes.into_iter().rev().collect(), label)
}

#[test]
fn byte_vectors_of_any_size_cross_intact() {
    let sizes = [0usize, 1, 16 << 10, (1 << 20) + 7, 8 << 20];
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&n| (0..n).map(|i| (i * 7 % 251) as u8).collect())
        .collect();
    let (echoed, flipped) = pool!(Process(max_workers = 2) => {
        let echoed: Vec<_> = payloads
            .iter()
            .map(|p| submit(checksum_and_echo, format!("{}", p.len()), p.clone()))
            .collect();
        let flipped: Vec<_> = payloads
            .iter()
            .map(|p| submit(reversed, p.clone(), "after".to_string()))
            .collect();
        (
            echoed.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>(),
            flipped.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>(),
        )
    });
    for ((payload, (label, sum, back)), (flip, after)) in payloads.iter().zip(echoed).zip(flipped) {
        assert_eq!(label, payload.len().to_string());
        assert_eq!(sum, payload.iter().map(|&b| u64::from(b)).sum::<u64>());
        assert_eq!(&back, payload);
        assert!(flip.iter().eq(payload.iter().rev()));
        assert_eq!(after, "after");
    }
}

fn filled(n: usize) -> Vec<u8> {
    vec![0xAB; n]
}

#[test]
fn byte_vector_results_come_back() {
    let results = pool!(Process(max_workers = 2) => {
        let futures: Vec<_> = [0, 5, 1 << 20].iter().map(|&n| submit(filled, n)).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(results, vec![vec![], vec![0xAB; 5], vec![0xAB; 1 << 20]]);
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

fn checksum(label: &str, bytes: &[u8], seed: u64) -> String {
    let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
    format!("{label}:{}", sum + seed)
}

/// A block that borrows compiles under both keywords: `&str` and `&[u8]` arguments cross as copies,
/// and the worker hands the function references to its copies.
#[test]
fn borrowed_text_and_bytes_work_as_on_threads() {
    let pages = ["a b c".to_string(), "d e".to_string(), "f".to_string()];
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let expected_sum: u64 = blob.iter().map(|&b| u64::from(b)).sum();

    let on_threads: (Vec<usize>, String) = pool!(Thread => {
        let counts: Vec<_> = pages.iter().map(|p| submit(word_count, p.as_str())).collect();
        let sum = submit(checksum, "blob", blob.as_slice(), 1);
        (counts.into_iter().map(|f| f.result().unwrap()).collect(), sum.result().unwrap())
    });
    let on_processes: (Vec<usize>, String) = pool!(Process => {
        let counts: Vec<_> = pages.iter().map(|p| submit(word_count, p.as_str())).collect();
        let sum = submit(checksum, "blob", blob.as_slice(), 1);
        (counts.into_iter().map(|f| f.result().unwrap()).collect(), sum.result().unwrap())
    });
    assert_eq!(
        on_threads,
        (vec![3, 2, 1], format!("blob:{}", expected_sum + 1))
    );
    assert_eq!(on_processes, on_threads);

    let closures = pool!(Process => {
        let upper = submit(|s: &str| s.to_uppercase(), "shout");
        let first = submit(|b: &[u8], n: usize| b[..n].to_vec(), blob.as_slice(), 3);
        (upper.result().unwrap(), first.result().unwrap())
    });
    assert_eq!(closures, ("SHOUT".to_string(), vec![0, 1, 2]));
}

#[test]
fn max_tasks_per_child_replaces_each_worker_after_that_many_tasks() {
    let pids: Vec<u32> = pool!(Process(max_workers = 1, max_tasks_per_child = 2) => {
        let futures: Vec<_> = (0..7).map(|_| submit(pid)).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    let mut distinct = pids.clone();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        4,
        "7 tasks, 2 per worker: 4 workers, in turn: {pids:?}"
    );
    for chunk in pids.chunks(2) {
        assert!(chunk.iter().all(|&p| p == chunk[0]), "{pids:?}");
    }
}
