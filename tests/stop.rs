//! `Future::stop` (issue 17): a running call stopped on request. On Process its worker is killed
//! and replaced and every other call is unaffected; on Thread and Auto the call is asked, through
//! `stop_requested()`; a call that has not started is cancelled everywhere.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use concurrent_futures::{current_worker, pool, stop_requested, TaskError};

fn square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(5));
    x * x
}

/// Never returns: only a kill ends it.
fn spin() -> u64 {
    loop {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn my_pid() -> u32 {
    current_worker().map(|w| w.pid()).unwrap_or(0)
}

fn wait_running<R>(future: &concurrent_futures::Future<R>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !future.running() {
        assert!(Instant::now() < deadline, "the call never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn process_stop_kills_the_running_call_and_no_other() {
    let started = Instant::now();
    let (stuck, stopped, again, others, after, pids) = pool!(Process(max_workers = 2) => {
        let before: Vec<_> = (0..10).map(|i| submit(square, i)).collect();
        let stuck = submit(spin);
        let behind: Vec<_> = (10..30).map(|i| submit(square, i)).collect();
        wait_running(&stuck);
        let stopped = stuck.stop();
        let again = stuck.stop();
        let others: Vec<u64> = before
            .into_iter()
            .chain(behind)
            .map(|f| f.result().expect("a call not stopped completes"))
            .collect();
        // Later calls run on the surviving worker and the replacement.
        let pids: Vec<u32> = (0..8).map(|_| submit(my_pid)).map(|f| f.result().unwrap()).collect();
        let after = submit(square, 7).result();
        (stuck.result(), stopped, again, others, after, pids)
    });
    assert!(stopped, "a running Process call can be stopped");
    assert!(again, "stopping a stopped call answers true again");
    assert_eq!(stuck, Err(TaskError::Stopped));
    assert_eq!(others, (0..30).map(|i| i * i).collect::<Vec<u64>>());
    assert_eq!(after, Ok(49));
    assert!(pids
        .iter()
        .all(|&pid| pid != 0 && pid != std::process::id()));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn process_stop_of_the_only_worker_lets_a_replacement_serve_the_rest() {
    let (stuck, queued_behind, first_pid, later_pid) = pool!(Process(max_workers = 1) => {
        let first_pid = submit(my_pid).result().unwrap();
        let stuck = submit(spin);
        let queued: Vec<_> = (0..5).map(|i| submit(square, i)).collect();
        wait_running(&stuck);
        assert!(stuck.stop());
        let queued: Vec<_> = queued.into_iter().map(|f| f.result()).collect();
        let later_pid = submit(my_pid).result().unwrap();
        (stuck.result(), queued, first_pid, later_pid)
    });
    assert_eq!(stuck, Err(TaskError::Stopped));
    assert_eq!(queued_behind, (0..5).map(|i| Ok(i * i)).collect::<Vec<_>>());
    assert_ne!(
        first_pid, later_pid,
        "a replacement worker serves later calls"
    );
}

#[test]
fn process_stop_cancels_a_queued_call_and_leaves_a_finished_one() {
    let (queued, stopped_queued, finished, stopped_finished, stuck) = pool!(Process(max_workers = 1) => {
        let finished = submit(square, 3);
        let finished = match finished.result_timeout(Duration::from_secs(30)) {
            Ok(result) => result,
            Err(_) => panic!("a 5 ms call did not finish in 30 s"),
        };
        let stuck = submit(spin);
        let queued = submit(square, 4);
        wait_running(&stuck);
        let stopped_queued = queued.stop();
        assert!(queued.cancelled());
        let done = submit(square, 5);
        assert!(stuck.stop());
        assert!(done.wait_timeout(Duration::from_secs(30)));
        let stopped_finished = done.stop();
        (queued.result(), stopped_queued, finished, stopped_finished, stuck.result())
    });
    assert!(stopped_queued, "stop on a call not started cancels it");
    assert_eq!(queued, Err(TaskError::Cancelled));
    assert_eq!(finished, Ok(9));
    assert!(!stopped_finished, "a finished call is not stopped");
    assert_eq!(stuck, Err(TaskError::Stopped));
}

/// Thread and Auto cannot kill a thread: `stop` asks, and the call decides.
#[test]
fn thread_stop_raises_the_flag_the_running_call_reads() {
    let (started_tx, started_rx) = mpsc::channel();
    let (stopped, result, queued, stopped_queued, unasked) = pool!(Thread(max_workers = 1) => {
        let unasked = submit(stop_requested).result();
        let f = submit(move || {
            started_tx.send(()).unwrap();
            let mut rounds = 0_u64;
            while !stop_requested() {
                rounds += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            rounds
        });
        let queued = submit(|| 1_u64);
        started_rx.recv().unwrap();
        let stopped_queued = queued.stop();
        let stopped = f.stop();
        (stopped, f.result(), queued.result(), stopped_queued, unasked)
    });
    assert!(!stopped, "a running thread is asked, not stopped");
    assert!(
        result.is_ok(),
        "the call returned its value when asked: {result:?}"
    );
    assert!(stopped_queued);
    assert_eq!(queued, Err(TaskError::Cancelled));
    assert_eq!(unasked, Ok(false), "a call nobody asked to stop sees false");
    assert!(!stop_requested(), "outside a task the flag is false");
}

#[test]
fn auto_stop_raises_the_flag_too() {
    let (started_tx, started_rx) = mpsc::channel();
    let (stopped, result) = pool!(Auto => {
        let f = submit(move || {
            started_tx.send(()).unwrap();
            while !stop_requested() {
                std::thread::sleep(Duration::from_millis(1));
            }
            "asked"
        });
        started_rx.recv().unwrap();
        (f.stop(), f.result())
    });
    assert!(!stopped);
    assert_eq!(result, Ok("asked"));
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Tiny calls widen a worker's window, so the stopped call is often sent behind others that the
/// worker has not run yet, and calls are sent behind it: it is stopped once it runs, whatever
/// runs before or after it.
#[test]
fn process_stop_of_a_call_sent_behind_others() {
    for _ in 0..5 {
        let (stuck, sums) = pool!(Process(max_workers = 1) => {
            let before: Vec<_> = (0..300).map(|i| submit(add, i, 1)).collect();
            let stuck = submit(spin);
            let after: Vec<_> = (300..400).map(|i| submit(add, i, 1)).collect();
            wait_running(&stuck);
            assert!(stuck.stop());
            let sums: Vec<u64> = before
                .into_iter()
                .chain(after)
                .map(|f| f.result().expect("a call not stopped completes"))
                .collect();
            (stuck.result(), sums)
        });
        assert_eq!(stuck, Err(TaskError::Stopped));
        assert_eq!(sums, (1..=400).collect::<Vec<u64>>());
    }
}
