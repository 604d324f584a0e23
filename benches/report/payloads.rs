//! Payloads: tasks with a large `Vec<u8>` argument (1 MiB and 64 MiB), with `memcpy` as the
//! floor.

use std::hint::black_box;

use concurrent_futures::pool;

use crate::figures::{Row, Table, Unit};
use crate::peers::{peer_rows, timed, PROCESS, THREAD};
use crate::python::{python, PY_KEYS};
use crate::settings::Settings;
use crate::{MIB, WORKERS};

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

pub fn payloads(settings: &Settings, size: usize, tasks: usize) -> Table {
    let runs = settings.runs;
    let bytes = (size * tasks) as f64;
    let mut rows = peer_rows(runs, bytes);
    rows.push(Row::new(
        &format!("floor: `memcpy` of {} MiB", size / MIB),
        runs,
        bytes,
    ));
    Table {
        title: format!(
            "{} tasks with a {} MiB `Vec<u8>` argument",
            tasks,
            size / MIB
        ),
        about: format!(
            "{tasks} calls of `length(v: Vec<u8>) -> usize`, each with its own {} MiB vector, \
             built before the timing starts (Python: one prebuilt `bytes` object). Threads \
             (`pool!(Thread)`, rayon, `std::thread::scope`, `ThreadPoolExecutor`) move the \
             vector and copy nothing: their rate shows their per-call cost, not a copy. \
             `pool!(Process)` and procspawn include start-up and shut-down; procspawn gets its \
             calls {WORKERS} at a time (with more outstanding it hangs: see below the \
             report); Python's figures exclude start-up. The floor copies the same bytes once in memory, into one \
             reused buffer.",
            size / MIB
        ),
        unit: Unit::Rate,
        rows,
        refs: vec![THREAD, PROCESS],
        others: 0.0,
    }
}

pub fn payloads_run(
    table: &mut Table,
    rayon: &rayon::ThreadPool,
    (size, tasks): (usize, usize),
    run: usize,
) {
    let rows = &mut table.rows;
    let total = size * tasks;
    // The arguments are built outside the timing for every peer (as Python passes one prebuilt
    // `bytes` object): the figure is the cost of moving them, not of making them.
    let inputs = || vec![vec![7u8; size]; tasks];
    let payloads = inputs();
    let (t, sum) = timed(|| {
        pool!(Thread(max_workers = WORKERS) => {
            let futures: Vec<_> = payloads.into_iter().map(|p| submit(length, p)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).sum::<usize>()
        })
    });
    assert_eq!(sum, total);
    rows[0].seconds[run] = Some(t);

    let payloads = inputs();
    let (t, sum) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = payloads.into_iter().map(|p| submit(length, p)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).sum::<usize>()
        })
    });
    assert_eq!(sum, total);
    rows[1].seconds[run] = Some(t);

    let payloads = inputs();
    let (t, out) = timed(|| {
        let mut out = vec![0usize; tasks];
        rayon.scope(|scope| {
            for (slot, p) in out.iter_mut().zip(payloads) {
                scope.spawn(move |_| *slot = length(p));
            }
        });
        out
    });
    assert_eq!(out.iter().sum::<usize>(), total);
    rows[2].seconds[run] = Some(t);

    let payloads = inputs();
    let (t, sum) = timed(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = payloads
                .into_iter()
                .map(|p| scope.spawn(move || length(p)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum::<usize>()
        })
    });
    assert_eq!(sum, total);
    rows[3].seconds[run] = Some(t);

    // procspawn 1.0 hangs with more large calls outstanding than workers (`spawn` blocks
    // sending the arguments while the pool's threads block handing results to handles that
    // nobody joins yet), so it gets them one per worker at a time.
    let payloads = inputs();
    let (t, sum) = timed(|| {
        let pool = procspawn::Pool::new(WORKERS).unwrap();
        let mut sum = 0;
        let mut payloads = payloads.into_iter();
        loop {
            let handles: Vec<_> = payloads
                .by_ref()
                .take(WORKERS)
                .map(|p| pool.spawn(p, length))
                .collect();
            if handles.is_empty() {
                break;
            }
            sum += handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum::<usize>();
        }
        pool.shutdown();
        sum
    });
    assert_eq!(sum, total);
    rows[4].seconds[run] = Some(t);

    let py = python(
        "payload",
        &[size.to_string(), tasks.to_string(), WORKERS.to_string()],
    );
    for (i, key) in PY_KEYS.iter().enumerate() {
        rows[5 + i].seconds[run] = py.get(*key).copied();
    }

    let source = vec![7u8; size];
    let mut target = vec![0u8; size];
    let (t, ()) = timed(|| {
        for _ in 0..tasks {
            target.copy_from_slice(black_box(&source));
            black_box(&mut target);
        }
    });
    rows[8].seconds[run] = Some(t);
}
