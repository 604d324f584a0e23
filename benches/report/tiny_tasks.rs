//! Tiny tasks: 20,000 calls of `a + b` through every peer, with a pipe ping-pong to `cat` as the
//! floor, and the two peers that start from idle timed back to back too.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use concurrent_futures::pool;

use crate::common::stats::summarise;
use crate::figures::{sig, Row, Table, Unit};
use crate::peers::{peer_rows, timed, PIPE, PROCESS, RAYON_WARM, THREAD, THREAD_WARM};
use crate::python::{python, PY_KEYS};
use crate::settings::Settings;
use crate::{BACK_TO_BACK, PIPE_ROUND_TRIPS, PROCSPAWN_BATCH, TINY_TASKS, WORKERS};

/// First blocks (and first scopes) timed per run, and the pause before each.
const FIRST_SAMPLES: usize = 3;
const IDLE_MS: u64 = 200;

pub(crate) fn add(a: u64, b: u64) -> u64 {
    a + b
}

pub(crate) fn add_pair((a, b): (u64, u64)) -> u64 {
    a + b
}

pub(crate) fn tiny_tasks(settings: &Settings) -> Table {
    let runs = settings.runs;
    let n = TINY_TASKS;
    let items = n as f64;
    let mut rows = peer_rows(runs, items);
    rows.extend([
        Row::new(PIPE, runs, PIPE_ROUND_TRIPS as f64),
        Row::new(THREAD_WARM, runs, items),
        Row::new(RAYON_WARM, runs, items),
    ]);
    Table {
        title: format!("Tiny tasks: {} calls of `a + b`", sig(items)),
        about: format!(
            "{} calls of `add(i, 1)` on {WORKERS} workers, results read in submission order. \
             `pool!` and procspawn figures include opening the pool (starting its workers) and \
             shutting it down, since a block owns its workers; rayon's pool is built once, \
             outside the timing, as rayon is used; `std::thread::scope` starts a thread per \
             call; procspawn gets its calls in batches of {PROCSPAWN_BATCH} (it fails with \
             `EMFILE` beyond about 1,000 outstanding calls). Python's figures exclude start-up \
             (its workers are started by untimed calls first), which favours Python. The floor \
             is one round trip of one byte through two pipes to a `cat` process, per call. \
             Each run starts with a wait of at least 2 s for a quiet machine. \
             `pool!(Thread)`'s first block (which starts its threads) and rayon's first scope \
             (its threads idle) are each taken {FIRST_SAMPLES} times per run, turn about \
             (rayon first in odd runs), each after {IDLE_MS} ms with nothing running; the \
             median of the {FIRST_SAMPLES} is the run's figure (one sample per run let a \
             single stall decide a run). Every other peer runs once per run; the two *back \
             to back* rows are the median of {BACK_TO_BACK} blocks (or scopes) in a row, as \
             divan measures, in each run.",
            sig(items)
        ),
        unit: Unit::PerItem(1e6, "µs/task"),
        rows,
        refs: vec![THREAD, PROCESS],
        others: 0.0,
    }
}

pub(crate) fn tiny_tasks_run(table: &mut Table, rayon: &rayon::ThreadPool, run: usize) {
    let n = TINY_TASKS;
    let rows = &mut table.rows;
    let expected: u64 = (0..n as u64).map(|i| i + 1).sum();
    let thread_once = || {
        let (t, out): (f64, Vec<u64>) = timed(|| {
            pool!(Thread(max_workers = WORKERS) => {
                let futures: Vec<_> = (0..n as u64).map(|i| submit(add, i, 1)).collect();
                futures.into_iter().map(|f| f.result().unwrap()).collect()
            })
        });
        assert_eq!(out.iter().sum::<u64>(), expected);
        t
    };
    let rayon_once = || {
        let (t, out) = timed(|| {
            let mut out = vec![0u64; n];
            rayon.scope(|scope| {
                for (i, slot) in out.iter_mut().enumerate() {
                    scope.spawn(move |_| *slot = add(i as u64, 1));
                }
            });
            out
        });
        assert_eq!(out.iter().sum::<u64>(), expected);
        t
    };
    // The median of `BACK_TO_BACK` in a row: the state divan's benchmarks measure.
    let warm = |once: &dyn Fn() -> f64| {
        summarise((0..BACK_TO_BACK).map(|_| Some(once()))).map(|s| s.median)
    };
    // Each first block and first scope after the same idle pause, turn about, the one that goes
    // first changing with the run (only the very first follows the run's longer wait).
    let idle = || std::thread::sleep(std::time::Duration::from_millis(IDLE_MS));
    let mut firsts = (Vec::new(), Vec::new());
    for _ in 0..FIRST_SAMPLES {
        if run % 2 == 0 {
            idle();
            firsts.0.push(Some(thread_once()));
            idle();
            firsts.1.push(Some(rayon_once()));
        } else {
            idle();
            firsts.1.push(Some(rayon_once()));
            idle();
            firsts.0.push(Some(thread_once()));
        }
    }
    let median = |samples: Vec<Option<f64>>| summarise(samples).map(|s| s.median);
    rows[0].seconds[run] = median(firsts.0);
    rows[2].seconds[run] = median(firsts.1);

    let (t, out): (f64, Vec<u64>) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..n as u64).map(|i| submit(add, i, 1)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).collect()
        })
    });
    assert_eq!(out.iter().sum::<u64>(), expected);
    rows[1].seconds[run] = Some(t);

    let (t, out): (f64, Vec<u64>) = timed(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n as u64)
                .map(|i| scope.spawn(move || add(i, 1)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    });
    assert_eq!(out.iter().sum::<u64>(), expected);
    rows[3].seconds[run] = Some(t);

    let (t, out) = timed(|| {
        let pool = procspawn::Pool::new(WORKERS).unwrap();
        let mut out = Vec::with_capacity(n);
        for batch in (0..n as u64).collect::<Vec<_>>().chunks(PROCSPAWN_BATCH) {
            let handles: Vec<_> = batch
                .iter()
                .map(|&i| pool.spawn((i, 1u64), add_pair))
                .collect();
            out.extend(handles.into_iter().map(|h| h.join().unwrap()));
        }
        pool.shutdown();
        out
    });
    assert_eq!(out.iter().sum::<u64>(), expected);
    rows[4].seconds[run] = Some(t);

    let py = python("tiny", &[n.to_string(), WORKERS.to_string()]);
    for (i, key) in PY_KEYS.iter().enumerate() {
        rows[5 + i].seconds[run] = py.get(*key).copied();
    }

    rows[8].seconds[run] = Some(pipe_ping_pong(PIPE_ROUND_TRIPS));
    rows[9].seconds[run] = warm(&thread_once);
    rows[10].seconds[run] = warm(&rayon_once);
}

/// Seconds for `round_trips` one-byte round trips to `cat` through two pipes (`cat` started
/// outside the timing).
fn pipe_ping_pong(round_trips: usize) -> f64 {
    let mut cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("`cat` runs");
    let mut to_cat = cat.stdin.take().unwrap();
    let mut from_cat = cat.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    // One untimed round trip: `cat` is up and waiting.
    to_cat.write_all(&byte).unwrap();
    from_cat.read_exact(&mut byte).unwrap();
    let (t, ()) = timed(|| {
        for _ in 0..round_trips {
            to_cat.write_all(&byte).unwrap();
            from_cat.read_exact(&mut byte).unwrap();
        }
    });
    drop(to_cat);
    cat.wait().unwrap();
    t
}
