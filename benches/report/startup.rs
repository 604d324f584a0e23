//! Start-up: open a pool of 2 workers, run 2 calls, shut it down; 4 samples per run.

use concurrent_futures::pool;

use crate::figures::{Table, Unit};
use crate::peers::{peer_rows, rayon_pool, timed, PROCESS, THREAD};
use crate::python::{python, PY_KEYS};
use crate::settings::Settings;
use crate::tiny_tasks::{add, add_pair};
use crate::{STARTUP_PER_RUN, WORKERS};

pub(crate) fn startup(settings: &Settings) -> Table {
    let runs = settings.startup_runs;
    let rows = peer_rows(runs, 1.0);
    Table {
        title: format!(
            "Start-up: open a pool of {WORKERS} workers, run {WORKERS} calls, shut down"
        ),
        about: format!(
            "Each sample opens a pool with {WORKERS} workers, submits {WORKERS} calls of `a + b` \
             at once (so that both workers start: `pool!` and Python start workers lazily) and \
             waits for them, then shuts the pool down and waits for its workers. {runs} samples \
             (4 per run of the other tables). rayon's `ThreadPool` does not wait for its \
             threads when dropped. Python's interpreter start is not included: each sample runs \
             in a fresh `python3` after one untimed pool of the same kind."
        ),
        unit: Unit::Millis,
        rows,
        refs: vec![THREAD, PROCESS],
        others: 0.0,
    }
}

pub(crate) fn startup_run(table: &mut Table, run: usize) {
    let rows = &mut table.rows;
    for run in run * STARTUP_PER_RUN..(run + 1) * STARTUP_PER_RUN {
        let (t, sum) = timed(|| {
            pool!(Thread(max_workers = WORKERS) => {
                let a = submit(add, 1, 2);
                let b = submit(add, 3, 4);
                a.result().unwrap() + b.result().unwrap()
            })
        });
        assert_eq!(sum, 10);
        rows[0].seconds[run] = Some(t);

        let (t, sum) = timed(|| {
            pool!(Process(max_workers = WORKERS) => {
                let a = submit(add, 1, 2);
                let b = submit(add, 3, 4);
                a.result().unwrap() + b.result().unwrap()
            })
        });
        assert_eq!(sum, 10);
        rows[1].seconds[run] = Some(t);

        let (t, sum) = timed(|| {
            let pool = rayon_pool(WORKERS);
            let (a, b) = pool.join(|| add(1, 2), || add(3, 4));
            drop(pool);
            a + b
        });
        assert_eq!(sum, 10);
        rows[2].seconds[run] = Some(t);

        let (t, sum) = timed(|| {
            std::thread::scope(|scope| {
                let a = scope.spawn(|| add(1, 2));
                let b = scope.spawn(|| add(3, 4));
                a.join().unwrap() + b.join().unwrap()
            })
        });
        assert_eq!(sum, 10);
        rows[3].seconds[run] = Some(t);

        let (t, sum) = timed(|| {
            let pool = procspawn::Pool::new(WORKERS).unwrap();
            let a = pool.spawn((1u64, 2u64), add_pair);
            let b = pool.spawn((3u64, 4u64), add_pair);
            let sum = a.join().unwrap() + b.join().unwrap();
            pool.shutdown();
            sum
        });
        assert_eq!(sum, 10);
        rows[4].seconds[run] = Some(t);

        let py = python("startup", &[WORKERS.to_string()]);
        for (i, key) in PY_KEYS.iter().enumerate() {
            rows[5 + i].seconds[run] = py.get(*key).copied();
        }
    }
}
