//! Payloads: tasks with a large `Vec<u8>` argument (1 MiB and 64 MiB), with `memcpy` as the
//! floor; and on Process the other large kinds (issue 16): `Vec<u8>` and `String` results, `String`,
//! `&str` and `&[u8]` arguments, each copying the payload once in the timing.

use std::hint::black_box;

use concurrent_futures::pool;

use crate::figures::{Row, Table, Unit};
use crate::huge_pages::copy_into_huge_pages;
use crate::peers::{peer_rows, timed, PROCESS, THREAD};
use crate::python::{python, PY_KEYS};
use crate::settings::Settings;
use crate::{MIB, WORKERS};

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn text_length(text: String) -> usize {
    text.len()
}

fn slice_length(bytes: &[u8]) -> usize {
    bytes.len()
}

fn str_length(text: &str) -> usize {
    text.len()
}

fn bytes_of(len: usize) -> Vec<u8> {
    vec![7u8; len]
}

fn text_of(len: usize) -> String {
    "a".repeat(len)
}

/// The floor's label in a table of payloads of `size` bytes.
pub(crate) fn floor_label(size: usize) -> String {
    format!("floor: `memcpy` of {} MiB", size / MIB)
}

/// What making a payload costs: a clone into a fresh buffer (page faults, then the copy), which
/// every row that copies the payload once in its timing pays.
pub(crate) const FRESH_FLOOR: &str = "floor: clone into a fresh buffer";

/// The least a large result costs the pool's process: it copies each result into a fresh vector,
/// which the user then owns, advised for huge pages (`remote::buffer`). The kernel zeroes those
/// pages first, so on a machine where fresh memory is dear this floor, not the pool, bounds the
/// results row: on the 2-vCPU Intel VM of 2026-12-01 a C probe of the same copy ran at 0.35–0.40
/// of a `memcpy` into a reused buffer, and in the report of 11:12 UTC this row at 0.50 and the
/// results at 0.51.
///
/// Only in tables whose payloads are [`ADVISED_FROM`] or more: the pool advises no smaller buffer, so
/// below that this row would be the clone's above.
pub(crate) const FRESH_HUGE_FLOOR: &str =
    "floor: copy into a fresh buffer advised for huge pages (what each result costs the pool's process)";

/// The smallest receive buffer the pool advises for huge pages (`remote::buffer`: two huge pages).
const ADVISED_FROM: usize = 4 * MIB;

/// The Process rows of the other kinds of payload, each copying the payload once in the timing.
pub(crate) const PROCESS_VEC_CLONED: &str =
    "`pool!(Process)`, `Vec<u8>` argument cloned into `submit`";
pub(crate) const PROCESS_VEC_RESULT: &str =
    "`pool!(Process)`, `Vec<u8>` result, built in the worker";
pub(crate) const PROCESS_STRING_CLONED: &str =
    "`pool!(Process)`, `String` argument cloned into `submit`";
pub(crate) const PROCESS_STRING_RESULT: &str =
    "`pool!(Process)`, `String` result, built in the worker";
pub(crate) const PROCESS_SLICE: &str = "`pool!(Process)`, `&[u8]` argument (`submit` copies it)";
pub(crate) const PROCESS_STR: &str = "`pool!(Process)`, `&str` argument (`submit` copies it)";
const KINDS: [&str; 6] = [
    PROCESS_VEC_CLONED,
    PROCESS_VEC_RESULT,
    PROCESS_STRING_CLONED,
    PROCESS_STRING_RESULT,
    PROCESS_SLICE,
    PROCESS_STR,
];

pub(crate) fn payloads(settings: &Settings, size: usize, tasks: usize) -> Table {
    let runs = settings.runs;
    let bytes = (size * tasks) as f64;
    let mut rows = peer_rows(runs, bytes);
    rows.push(Row::new(&floor_label(size), runs, bytes));
    rows.push(Row::new(FRESH_FLOOR, runs, bytes));
    if size >= ADVISED_FROM {
        rows.push(Row::new(FRESH_HUGE_FLOOR, runs, bytes));
    }
    rows.extend(KINDS.map(|label| Row::new(label, runs, bytes)));
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
             reused buffer. The next row clones them into a fresh buffer each time, what making a payload costs. \
             {}The last {} rows are `pool!(Process)` with the other kinds of large payload, \
             each copying the payload once inside the timing, as a program that keeps its data would: \
             an owned argument is cloned into `submit`, a result is built in the worker \
             (`vec![7u8; n]`, `\"a\".repeat(n)`), a borrowed argument is copied by `submit` itself; \
             the rows to compare are these with each other (a result with the cloned argument, a \
             string with the bytes of the same row kind).",
            size / MIB,
            if size >= ADVISED_FROM {
                "The one after copies them into a fresh buffer advised for huge pages, as the \
                 pool's process does with each large result it receives (the kernel zeroes those \
                 pages first). "
            } else {
                ""
            },
            KINDS.len()
        ),
        unit: Unit::Rate,
        rows,
        refs: vec![THREAD, PROCESS],
        others: 0.0,
    }
}

pub(crate) fn payloads_run(
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
    let (t, ()) = timed(|| {
        for _ in 0..tasks {
            black_box(black_box(&source).clone());
        }
    });
    rows[9].seconds[run] = Some(t);
    if let Some(row) = rows.iter_mut().find(|r| r.label == FRESH_HUGE_FLOOR) {
        let (t, ()) = timed(|| {
            for _ in 0..tasks {
                black_box(copy_into_huge_pages(black_box(&source)));
            }
        });
        row.seconds[run] = Some(t);
    }
    drop((source, target));

    process_kinds_run(rows, (size, tasks), run);
}

/// The other kinds of large payload through `pool!(Process)` (see [`KINDS`]), each copying the
/// payload once in the timing.
fn process_kinds_run(rows: &mut [Row], (size, tasks): (usize, usize), run: usize) {
    let total = size * tasks;
    let bytes = vec![7u8; size];
    let text = "a".repeat(size);
    let mut record = |label: &str, t: f64, sum: usize| {
        assert_eq!(sum, total, "{label}");
        let row = rows.iter_mut().find(|r| r.label == label).expect("a row");
        row.seconds[run] = Some(t);
    };
    let (t, sum) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..tasks).map(|_| submit(length, bytes.clone())).collect();
            futures.into_iter().map(|f| f.result().unwrap()).sum::<usize>()
        })
    });
    record(PROCESS_VEC_CLONED, t, sum);
    let (t, sum) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..tasks).map(|_| submit(bytes_of, size)).collect();
            futures.into_iter().map(|f| f.result().unwrap().len()).sum::<usize>()
        })
    });
    record(PROCESS_VEC_RESULT, t, sum);
    let (t, sum) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..tasks).map(|_| submit(text_length, text.clone())).collect();
            futures.into_iter().map(|f| f.result().unwrap()).sum::<usize>()
        })
    });
    record(PROCESS_STRING_CLONED, t, sum);
    let (t, sum) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..tasks).map(|_| submit(text_of, size)).collect();
            futures.into_iter().map(|f| f.result().unwrap().len()).sum::<usize>()
        })
    });
    record(PROCESS_STRING_RESULT, t, sum);
    let (t, sum) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> =
                (0..tasks).map(|_| submit(slice_length, bytes.as_slice())).collect();
            futures.into_iter().map(|f| f.result().unwrap()).sum::<usize>()
        })
    });
    record(PROCESS_SLICE, t, sum);
    let (t, sum) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..tasks).map(|_| submit(str_length, text.as_str())).collect();
            futures.into_iter().map(|f| f.result().unwrap()).sum::<usize>()
        })
    });
    record(PROCESS_STR, t, sum);
}
