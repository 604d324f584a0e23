//! `map` over a million items (100,000 in quick runs), each peer its own way.

use concurrent_futures::pool;
use rayon::prelude::*;

use crate::figures::{sig, Row, Table, Unit};
use crate::peers::{peer_rows, timed, PROCESS, PROCESS_CHUNK_1, THREAD};
use crate::python::{python, PY_KEYS};
use crate::settings::Settings;
use crate::{MAP_CHUNKSIZE, PROCSPAWN_BATCH, WORKERS};

fn square(x: u64) -> u64 {
    x * x
}

fn square_all(xs: Vec<u64>) -> Vec<u64> {
    xs.into_iter().map(square).collect()
}

pub(crate) fn mapping(settings: &Settings) -> Table {
    let runs = settings.runs;
    let n = settings.map_items;
    let items = n as f64;
    let chunk = MAP_CHUNKSIZE;
    let mut rows = peer_rows(runs, items);
    rows.push(Row::new(PROCESS_CHUNK_1, runs, items));
    Table {
        title: format!("`map` over {} items", sig(items)),
        about: format!(
            "`square(x) = x * x` over `0..{n}`, every result collected in input order. \
             `pool!(Thread)`: `map(square, items)` (one task per item, at most \
             2 × `max_workers` ahead); `pool!(Process)`: `map(square, items, {chunk})`, chunks of \
             {chunk} items; rayon: `into_par_iter().map().collect()`; `std::thread::scope`: one \
             thread per worker over a contiguous range; procspawn (no `map`): one call per chunk \
             of {chunk}, {} chunks outstanding at most. Python: `list(ex.map(square, range(n), \
             chunksize={chunk}))` (a thread pool ignores the chunk size: one future per item). \
             `pool!` and procspawn include start-up; Python excludes it. The last row is \
             `map(square, items)` on `pool!(Process)`, whose chunk size is then 1, as \
             Python's (Python's own would take minutes at about 100 µs a call, so it is not \
             run).",
            PROCSPAWN_BATCH / 4
        ),
        unit: Unit::PerItem(1e9, "ns/item"),
        rows,
        refs: vec![THREAD, PROCESS],
        others: 0.0,
    }
}

pub(crate) fn mapping_run(table: &mut Table, rayon: &rayon::ThreadPool, n: usize, run: usize) {
    let chunk = MAP_CHUNKSIZE;
    let rows = &mut table.rows;
    let expected: u64 = (0..n as u64).map(square).fold(0, u64::wrapping_add);
    let check = |out: &[u64]| {
        assert_eq!(out.len(), n);
        assert_eq!(out.iter().copied().fold(0, u64::wrapping_add), expected);
        assert_eq!(out[n - 1], square(n as u64 - 1));
    };
    let (t, out): (f64, Vec<u64>) = timed(|| {
        pool!(Thread(max_workers = WORKERS) => {
            map(square, 0..n as u64).map(Result::unwrap).collect()
        })
    });
    check(&out);
    rows[0].seconds[run] = Some(t);

    let (t, out): (f64, Vec<u64>) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            map(square, 0..n as u64, chunk).map(Result::unwrap).collect()
        })
    });
    check(&out);
    rows[1].seconds[run] = Some(t);

    let (t, out) = timed(|| {
        rayon.install(|| {
            (0..n as u64)
                .into_par_iter()
                .map(square)
                .collect::<Vec<_>>()
        })
    });
    check(&out);
    rows[2].seconds[run] = Some(t);

    let (t, out) = timed(|| {
        let per = n.div_ceil(WORKERS) as u64;
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..WORKERS as u64)
                .map(|w| {
                    let range = w * per..((w + 1) * per).min(n as u64);
                    scope.spawn(move || range.map(square).collect::<Vec<_>>())
                })
                .collect();
            let mut out = Vec::with_capacity(n);
            for h in handles {
                out.extend(h.join().unwrap());
            }
            out
        })
    });
    check(&out);
    rows[3].seconds[run] = Some(t);

    let (t, out) = timed(|| {
        let pool = procspawn::Pool::new(WORKERS).unwrap();
        let chunks: Vec<Vec<u64>> = (0..n as u64)
            .collect::<Vec<_>>()
            .chunks(chunk)
            .map(<[u64]>::to_vec)
            .collect();
        let mut out = Vec::with_capacity(n);
        for batch in chunks.chunks(PROCSPAWN_BATCH / 4) {
            let handles: Vec<_> = batch
                .iter()
                .map(|c| pool.spawn(c.clone(), square_all))
                .collect();
            for h in handles {
                out.extend(h.join().unwrap());
            }
        }
        pool.shutdown();
        out
    });
    check(&out);
    rows[4].seconds[run] = Some(t);

    let py = python(
        "map",
        &[n.to_string(), chunk.to_string(), WORKERS.to_string()],
    );
    for (i, key) in PY_KEYS.iter().enumerate() {
        rows[5 + i].seconds[run] = py.get(*key).copied();
    }

    let (t, out): (f64, Vec<u64>) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            map(square, 0..n as u64).map(Result::unwrap).collect()
        })
    });
    check(&out);
    rows[8].seconds[run] = Some(t);
}
