//! `memory_limit` (Process): a task that allocates past its worker's cap fails with
//! `TaskError::MemoryLimitExceeded`; its worker is replaced and every other task completes.

use concurrent_futures::{pool, TaskError, WorkerDeath};

const LIMIT: u64 = 256 << 20;

fn square(x: u64) -> u64 {
    x * x
}

/// Allocates `mib` MiB at once and touches it.
fn allocate_at_once(mib: usize) -> usize {
    let block = vec![1u8; mib << 20];
    block.iter().step_by(4096).map(|&b| b as usize).sum()
}

/// Allocates 1 MiB at a time and keeps it, without bound.
fn allocate_without_bound() -> usize {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&kept);
    }
}

#[test]
fn a_task_that_allocates_without_bound_fails_with_memory_limit_exceeded() {
    let (faulty, healthy) = pool!(Process(max_workers = 2, memory_limit = LIMIT) => {
        let before: Vec<_> = (0..10).map(|i| submit(square, i)).collect();
        let faulty = submit(allocate_without_bound);
        let after: Vec<_> = (10..20).map(|i| submit(square, i)).collect();
        let healthy: Vec<u64> = before
            .into_iter()
            .chain(after)
            .map(|f| f.result().expect("a healthy task completes"))
            .collect();
        (faulty.result(), healthy)
    });
    assert_eq!(healthy, (0..20).map(|i| i * i).collect::<Vec<u64>>());
    match faulty {
        Err(TaskError::MemoryLimitExceeded { limit, requested }) => {
            assert_eq!(limit, LIMIT);
            assert!(requested >= 1 << 20, "the failed allocation: {requested}");
        }
        other => panic!("expected MemoryLimitExceeded, got {other:?}"),
    }
}

#[test]
fn one_allocation_over_the_limit_reports_its_size() {
    let (over, under) = pool!(Process(max_workers = 1, memory_limit = LIMIT) => {
        let over = submit(allocate_at_once, 1024);
        let under = submit(allocate_at_once, 64);
        (over.result(), under.result())
    });
    let error = over.unwrap_err();
    assert_eq!(
        error,
        TaskError::MemoryLimitExceeded {
            limit: LIMIT,
            requested: 1 << 30
        }
    );
    assert!(error.to_string().contains(
        "tried to allocate 1073741824 bytes, which its worker's memory limit of 268435456 bytes"
    ));
    // The replacement worker has the same limit, and 64 MiB fits under it.
    assert_eq!(under, Ok(64 << 8));
}

#[test]
fn the_limit_holds_in_every_replacement_worker() {
    let outcomes = pool!(Process(max_workers = 1, memory_limit = LIMIT) => {
        let work: Vec<_> = (0..3).map(|_| submit(allocate_at_once, 512)).collect();
        work.into_iter().map(|f| f.result()).collect::<Vec<_>>()
    });
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(TaskError::MemoryLimitExceeded { .. })),
            "{outcome:?}"
        );
    }
}

fn abort() -> usize {
    std::process::abort()
}

#[test]
fn an_abort_for_another_reason_is_still_a_worker_death() {
    let outcome =
        pool!(Process(max_workers = 1, memory_limit = LIMIT) => { submit(abort).result() });
    match outcome {
        Err(TaskError::WorkerDied { death, .. }) => {
            assert_eq!(death, WorkerDeath::Signaled(libc::SIGABRT))
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

#[test]
fn without_a_limit_the_same_allocation_succeeds() {
    let outcome = pool!(Process(max_workers = 1) => { submit(allocate_at_once, 512).result() });
    assert_eq!(outcome, Ok(512 << 8));
}

#[test]
#[should_panic(expected = "`memory_limit` must be at least 16 MiB (16777216 bytes), got 1048576")]
fn a_limit_below_the_floor_panics_at_block_entry() {
    let limit: u64 = 1 << 20;
    pool!(Process(memory_limit = limit) => {});
}

#[test]
fn a_worker_at_the_smallest_limit_still_serves_calls() {
    let squares = pool!(Process(max_workers = 2, memory_limit = 16 << 20) => {
        map(square, 0..100u64).collect::<Result<Vec<u64>, TaskError>>()
    });
    assert_eq!(squares, Ok((0..100).map(|i| i * i).collect()));
}
