//! CPU-bound tasks: every peer against a plain loop over the same calls, on 2 workers (the
//! speedup); the timing of one CPU-bound batch on each backend serves the scaling table too.

use std::hint::black_box;

use concurrent_futures::pool;
use rayon::prelude::*;

use crate::common::cpu_task::spin;
use crate::figures::{sig, Row};
use crate::peers::{rust_peer_rows, timed};
use crate::python::{python, python_peer_rows, PY_KEYS};
use crate::settings::Settings;
use crate::{CPU_TASKS, CPU_TASK_SECONDS, WORKERS};

pub(crate) fn spin_all(n: u64, tasks: usize) -> u64 {
    (0..tasks)
        .map(|_| spin(black_box(n)))
        .fold(0, u64::wrapping_add)
}

/// One CPU-bound workload on `workers` workers: each peer's seconds.
pub(crate) fn cpu_thread(n: u64, tasks: usize, workers: usize) -> f64 {
    let (t, sum) = timed(|| {
        pool!(Thread(max_workers = workers) => {
            let futures: Vec<_> = (0..tasks).map(|_| submit(spin, n)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).fold(0, u64::wrapping_add)
        })
    });
    assert_eq!(sum, sum_check(n, tasks));
    t
}

pub(crate) fn cpu_process(n: u64, tasks: usize, workers: usize) -> f64 {
    let (t, sum) = timed(|| {
        pool!(Process(max_workers = workers) => {
            let futures: Vec<_> = (0..tasks).map(|_| submit(spin, n)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).fold(0, u64::wrapping_add)
        })
    });
    assert_eq!(sum, sum_check(n, tasks));
    t
}

pub(crate) fn cpu_rayon(pool: &rayon::ThreadPool, n: u64, tasks: usize) -> f64 {
    let (t, sum) = timed(|| {
        pool.install(|| {
            (0..tasks)
                .into_par_iter()
                .map(|_| spin(black_box(n)))
                .reduce(|| 0, u64::wrapping_add)
        })
    });
    assert_eq!(sum, sum_check(n, tasks));
    t
}

/// The expected sum, from one call (every call returns the same).
pub(crate) fn sum_check(n: u64, tasks: usize) -> u64 {
    use std::sync::Mutex;
    static MEMO: Mutex<Option<(u64, u64)>> = Mutex::new(None);
    let mut memo = MEMO.lock().unwrap();
    let one = match *memo {
        Some((m, one)) if m == n => one,
        _ => {
            let one = spin(n);
            *memo = Some((n, one));
            one
        }
    };
    one.wrapping_mul(tasks as u64)
}

/// CPU-bound work at one worker count: the wall times of every peer, and each language's plain
/// loop over the same calls (the speedup's baseline).
pub(crate) struct CpuTable {
    pub about: String,
    pub sequential: Row,
    pub rows: Vec<Row>,
    pub python_sequential: Row,
    pub python_rows: Vec<Row>,
    pub others: f64,
}

pub(crate) fn cpu_bound(settings: &Settings, n: u64) -> CpuTable {
    let runs = settings.runs;
    let tasks = CPU_TASKS;
    let sequential = Row::new("plain loop (Rust)", runs, 1.0);
    let rows = rust_peer_rows(runs, 1.0);
    let python_sequential = Row::new("plain loop (Python)", runs, 1.0);
    let python_rows = python_peer_rows(runs, 1.0);
    CpuTable {
        about: format!(
            "{tasks} calls of a CPU-bound function calibrated to about {} ms each (Rust: a \
             chain of {} dependent multiply-adds; Python: a loop calibrated the same way in \
             each run) on {WORKERS} workers, against a plain loop over the same calls in the \
             same run. `pool!` and procspawn include start-up; rayon's pool is built outside \
             the timing; `std::thread::scope` starts a thread per call; Python excludes \
             start-up. Python's `ThreadPoolExecutor` holds the GIL: no speedup is expected.",
            sig(CPU_TASK_SECONDS * 1e3),
            sig(n as f64)
        ),
        sequential,
        rows,
        python_sequential,
        python_rows,
        others: 0.0,
    }
}

pub(crate) fn cpu_bound_run(table: &mut CpuTable, rayon: &rayon::ThreadPool, n: u64, run: usize) {
    let tasks = CPU_TASKS;
    let CpuTable {
        sequential,
        rows,
        python_sequential,
        python_rows,
        ..
    } = table;
    let (t, sum) = timed(|| spin_all(n, tasks));
    assert_eq!(sum, sum_check(n, tasks));
    sequential.seconds[run] = Some(t);
    rows[0].seconds[run] = Some(cpu_thread(n, tasks, WORKERS));
    rows[1].seconds[run] = Some(cpu_process(n, tasks, WORKERS));
    rows[2].seconds[run] = Some(cpu_rayon(rayon, n, tasks));
    let (t, sum) = timed(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..tasks)
                .map(|_| scope.spawn(|| spin(black_box(n))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .fold(0, u64::wrapping_add)
        })
    });
    assert_eq!(sum, sum_check(n, tasks));
    rows[3].seconds[run] = Some(t);
    let (t, sum) = timed(|| {
        let pool = procspawn::Pool::new(WORKERS).unwrap();
        let handles: Vec<_> = (0..tasks).map(|_| pool.spawn(n, spin)).collect();
        let sum = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold(0, u64::wrapping_add);
        pool.shutdown();
        sum
    });
    assert_eq!(sum, sum_check(n, tasks));
    rows[4].seconds[run] = Some(t);

    let py = python(
        "cpu",
        &[
            tasks.to_string(),
            CPU_TASK_SECONDS.to_string(),
            WORKERS.to_string(),
        ],
    );
    python_sequential.seconds[run] = py.get("sequential").copied();
    for (i, key) in PY_KEYS.iter().enumerate() {
        python_rows[i].seconds[run] = py.get(*key).copied();
    }
}
