//! Large payloads through a Process worker's shared-memory ring (`process::ring`): tails of
//! `RING_MIN` bytes and more cross it, in chunks, after their message's head has crossed the
//! socket. They arrive whole and in order at every size around its thresholds, between calls
//! whose payloads take the socket; and a worker that dies or is killed while one crosses fails
//! only its own call, without leaving anyone waiting.

use std::sync::mpsc;
use std::time::Duration;

use concurrent_futures::{pool, TaskError, WorkerDeath};

mod common;
use common::payloads::{patterned_bytes, two_byte_text};

/// Tails at least this long take the ring (`ring::RING_MIN`).
const RING_MIN: usize = 256 << 10;
/// A ring's slots and their size (`ring::SLOTS`, `ring::CHUNK`).
const SLOTS: usize = 4;
const CHUNK: usize = 512 << 10;

/// The sizes tried: both sides of the threshold, both sides of a chunk, several rings' worth and a
/// byte, and one large payload.
const SIZES: [usize; 9] = [
    RING_MIN - 1,
    RING_MIN,
    RING_MIN + 1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    3 * SLOTS * CHUNK + 1,
    5 * SLOTS * CHUNK,
    48 << 20,
];

fn echo_bytes(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

fn echo_text(text: String) -> String {
    text
}

fn copy_slice(bytes: &[u8]) -> Vec<u8> {
    bytes.to_vec()
}

fn copy_str(text: &str) -> String {
    text.to_string()
}

fn make_bytes(len: usize, seed: usize) -> Vec<u8> {
    patterned_bytes(len, seed)
}

fn make_text(len: usize) -> String {
    two_byte_text(len)
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// This process's shared memory in its resident set (`RssShmem`), in KiB: the pages of its ring
/// that it has touched, and nothing else in a worker.
fn resident_shared_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssShmem:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// In a worker: a thread that aborts the whole worker as soon as a payload starts crossing its
/// ring (the first chunk it copies in or out maps ring pages into its resident set).
fn abort_once_the_ring_is_used() {
    let before = resident_shared_memory();
    std::thread::spawn(move || loop {
        if resident_shared_memory() > before {
            std::process::abort();
        }
        std::thread::sleep(Duration::from_micros(100));
    });
}

/// In a worker: builds a large result, then aborts while the result crosses the ring.
fn abort_while_returning(len: usize) -> Vec<u8> {
    let result = vec![3u8; len];
    abort_once_the_ring_is_used();
    result
}

/// In a worker: writes a count into the pool → worker ring that no worker following the protocol
/// could write (its "consumed" count, 128 bytes into the ring's header, set 2^31 chunks past what
/// was published), as a worker whose memory is corrupt might. Whether the ring's file was found.
fn corrupt_the_rings_consumed_count() -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let Some(start) = maps
        .lines()
        .find(|line| line.contains("memfd:executor-ring"))
        .and_then(|line| line.split('-').next())
        .and_then(|start| usize::from_str_radix(start, 16).ok())
    else {
        return false;
    };
    // SAFETY: `start + 128` lies in the first page of the worker's mapping of its ring (a shared,
    // writable mapping of at least 4 MiB), 4-aligned; the pool only ever reads that word
    // atomically, and this write is the fault under test.
    let consumed = unsafe { std::sync::atomic::AtomicU32::from_ptr((start + 128) as *mut u32) };
    consumed.fetch_add(1 << 31, std::sync::atomic::Ordering::SeqCst);
    true
}

/// Runs `f` on a thread of its own and gives its result, failing the test (instead of hanging it)
/// if it takes longer than a generous deadline.
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (answer, answers) = mpsc::channel();
    std::thread::spawn(move || answer.send(f()).unwrap());
    answers
        .recv_timeout(Duration::from_secs(300))
        .expect("the block finished (nothing hung)")
}

#[test]
fn tails_cross_the_ring_whole_as_arguments_and_results_of_every_kind_and_size() {
    within(|| {
        pool!(Process(max_workers = 1) => {
            for (seed, len) in SIZES.into_iter().enumerate() {
                let sent = patterned_bytes(len, seed);
                assert!(submit(echo_bytes, sent.clone()).result().unwrap() == sent, "Vec<u8> of {len}");
                assert!(submit(copy_slice, sent.as_slice()).result().unwrap() == sent, "&[u8] of {len}");
                assert!(submit(make_bytes, len, seed).result().unwrap() == sent, "Vec<u8> result of {len}");
                let sent = two_byte_text(len);
                assert!(submit(echo_text, sent.clone()).result().unwrap() == sent, "String of {len}");
                assert!(submit(copy_str, sent.as_str()).result().unwrap() == sent, "&str of {len}");
                assert!(submit(make_text, len).result().unwrap() == sent, "String result of {len}");
            }
        })
    });
}

#[test]
fn large_and_small_calls_interleaved_on_two_workers_keep_their_own_payloads() {
    within(|| {
        pool!(Process(max_workers = 2) => {
            let futures: Vec<_> = (0..24)
                .map(|i| match i % 3 {
                    0 => (i, Some(submit(echo_bytes, patterned_bytes(3 << 20, i))), None),
                    1 => (i, Some(submit(make_bytes, (2 << 20) + i, i)), None),
                    _ => (i, None, Some(submit(add, i as u64, 1))),
                })
                .collect();
            for (i, large, small) in futures {
                match (large, small) {
                    (Some(large), _) => {
                        let expected = match i % 3 {
                            0 => patterned_bytes(3 << 20, i),
                            _ => patterned_bytes((2 << 20) + i, i),
                        };
                        assert!(large.result().unwrap() == expected, "call {i}");
                    }
                    (_, Some(small)) => assert_eq!(small.result().unwrap(), i as u64 + 1),
                    _ => unreachable!(),
                }
            }
        })
    });
}

#[test]
fn a_worker_that_aborts_while_its_large_result_crosses_fails_that_call_alone() {
    let (died, beside, next) = within(|| {
        pool!(Process(max_workers = 2) => {
            let died = submit(abort_while_returning, 256 << 20);
            let beside = submit(make_bytes, 8 << 20, 5);
            (died.result(), beside.result(), submit(make_bytes, 4 << 20, 6).result())
        })
    });
    assert!(
        matches!(died, Err(TaskError::WorkerDied { .. })),
        "{died:?}"
    );
    assert!(
        beside.unwrap() == patterned_bytes(8 << 20, 5),
        "the other worker's call"
    );
    assert!(
        next.unwrap() == patterned_bytes(4 << 20, 6),
        "a replacement serves the next call"
    );
}

#[test]
fn a_worker_that_aborts_while_a_large_argument_crosses_fails_that_call_alone() {
    let (died, next) = within(|| {
        pool!(Process(max_workers = 1) => {
            submit(abort_once_the_ring_is_used).result().unwrap();
            let died = submit(length, patterned_bytes(256 << 20, 1)).result();
            (died, submit(length, patterned_bytes(4 << 20, 2)).result())
        })
    });
    assert!(
        matches!(died, Err(TaskError::WorkerDied { .. })),
        "{died:?}"
    );
    assert_eq!(next.unwrap(), 4 << 20, "a replacement serves the next call");
}

/// The pool is pushing a large argument into the ring while the worker runs the call before it,
/// which overruns its timeout: the worker is killed, the push ends, the call that overran fails
/// with `TimedOut`, and the large call runs on a replacement.
#[test]
fn a_worker_killed_by_timeout_while_a_large_argument_waits_in_the_ring_is_replaced() {
    let (tiny, slow, large) = within(|| {
        pool!(Process(max_workers = 1, timeout = Duration::from_millis(500)) => {
            // A tiny call first: the pool then keeps several calls in flight to the worker.
            let tiny = submit(add, 1, 2).result();
            let slow = submit(nap, 60_000);
            let large = submit(length, patterned_bytes(16 << 20, 3));
            (tiny, slow.result(), large.result())
        })
    });
    assert_eq!(tiny.unwrap(), 3);
    assert!(matches!(slow, Err(TaskError::TimedOut { .. })), "{slow:?}");
    assert_eq!(large.unwrap(), 16 << 20);
}

#[test]
fn a_worker_that_writes_an_impossible_count_into_its_ring_is_killed_as_a_protocol_breach() {
    let (found, broken, next) = within(|| {
        pool!(Process(max_workers = 1) => {
            let found = submit(corrupt_the_rings_consumed_count).result().unwrap();
            // The pool reads the worker's count before it copies a large argument's first chunk.
            let broken = submit(length, patterned_bytes(1 << 20, 2)).result();
            (found, broken, submit(length, patterned_bytes(1 << 20, 3)).result())
        })
    });
    assert!(found, "the worker found its ring's mapping");
    assert!(
        matches!(
            broken,
            Err(TaskError::WorkerDied {
                death: WorkerDeath::BrokeProtocol,
                ..
            })
        ),
        "{broken:?}"
    );
    assert_eq!(next, Ok(1 << 20), "a replacement serves the next call");
}
