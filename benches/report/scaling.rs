//! Scaling: the speedup of 32 CPU-bound tasks over a plain loop, on 1 to 16 workers, for
//! `pool!(Thread)`, `pool!(Process)` and rayon.

use crate::common::stats::summarise;
use crate::cpu_bound::{cpu_process, cpu_rayon, cpu_thread, spin_all, sum_check};
use crate::peers::{timed, PROCESS, RAYON, THREAD};
use crate::settings::Settings;
use crate::{SCALING_TASKS, SCALING_WORKERS};

/// Speedup over a plain loop at each worker count, for each backend (in `SCALING_WORKERS` order).
pub struct Scaling {
    pub tasks: usize,
    /// The plain loop's time per call, in each measurement.
    pub task_ms: Vec<Option<f64>>,
    pub cores: usize,
    /// (backend label, per worker count: speedup in each run)
    pub series: Vec<(&'static str, Vec<Vec<Option<f64>>>)>,
    /// Cores used by other processes while it ran (see [`crate::common::machine::Meter`]).
    pub others: f64,
}

impl Scaling {
    pub fn task_ms(&self) -> f64 {
        summarise(self.task_ms.iter().copied()).map_or(0.0, |s| s.median)
    }
}

pub fn scaling(settings: &Settings) -> Scaling {
    let runs = settings.runs;
    let cols = SCALING_WORKERS.len();
    Scaling {
        tasks: SCALING_TASKS,
        task_ms: Vec::new(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        series: vec![
            (THREAD, vec![vec![None; runs]; cols]),
            (PROCESS, vec![vec![None; runs]; cols]),
            (RAYON, vec![vec![None; runs]; cols]),
        ],
        others: 0.0,
    }
}

pub fn scaling_run(scaling: &mut Scaling, pools: &[rayon::ThreadPool], n: u64, run: usize) {
    let tasks = scaling.tasks;
    // A plain loop next to each worker count; the run's fastest is the baseline, so a disturbed
    // plain loop cannot inflate a speedup (a disturbed pool can only lower one).
    let mut sequential = f64::INFINITY;
    let mut times = Vec::new();
    for (i, &workers) in SCALING_WORKERS.iter().enumerate() {
        let (seq, sum) = timed(|| spin_all(n, tasks));
        assert_eq!(sum, sum_check(n, tasks));
        sequential = sequential.min(seq);
        scaling.task_ms.push(Some(seq / tasks as f64 * 1e3));
        times.push([
            cpu_thread(n, tasks, workers),
            cpu_process(n, tasks, workers),
            cpu_rayon(&pools[i], n, tasks),
        ]);
    }
    for (i, backends) in times.iter().enumerate() {
        for ((_, cols), time) in scaling.series.iter_mut().zip(backends) {
            cols[i][run] = Some(sequential / time);
        }
    }
}
