//! Scaling: the speedup of 32 CPU-bound tasks over a plain loop, on 1 to 16 workers, for
//! `pool!(Thread)`, `pool!(Process)` and rayon.

use crate::common::stats::summarise;
use crate::cpu_bound::{cpu_process, cpu_rayon, cpu_thread, spin_all, sum_check};
use crate::peers::{timed, PROCESS, RAYON, THREAD};
use crate::settings::Settings;
use crate::{SCALING_TASKS, SCALING_WORKERS};

/// Speedup over a plain loop at each worker count, for each backend (in `SCALING_WORKERS` order).
pub(crate) struct Scaling {
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
    pub(crate) fn task_ms(&self) -> f64 {
        summarise(self.task_ms.iter().copied()).map_or(0.0, |s| s.median)
    }
}

pub(crate) fn scaling(settings: &Settings) -> Scaling {
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

/// Samples per run at each worker count up to the cores (the targets' columns): each a plain loop
/// and then the three backends, in an order that turns by sample, so that each backend takes each
/// place once. 3 is the fewest for a median that one disturbed sample cannot move; the whole
/// report took 6.1 min before, 7.0 and 7.7 after, on 2 cores.
pub(crate) const SAMPLES: usize = 3;

pub(crate) fn scaling_run(scaling: &mut Scaling, pools: &[rayon::ThreadPool], n: u64, run: usize) {
    let tasks = scaling.tasks;
    let cores = scaling.cores;
    for (i, &workers) in SCALING_WORKERS.iter().enumerate() {
        // Each backend's time is set against the plain loop timed just before it, in the same
        // sample, and the run's figure is the median of its samples. On the 2-vCPU Intel VM a
        // plain loop of 32 calls took 611-770 ms within 30 s (12 samples), so the run's fastest
        // plain loop, the baseline before, set every pool against the machine's luckiest moment:
        // the report of 2026-12-01 06:56 read 1.66-1.87 for 2 workers, rayon's included.
        let samples = if workers <= cores { SAMPLES } else { 1 };
        let mut speedups: [Vec<f64>; 3] = Default::default();
        for sample in 0..samples {
            let (seq, sum) = timed(|| spin_all(n, tasks));
            assert_eq!(sum, sum_check(n, tasks));
            scaling.task_ms.push(Some(seq / tasks as f64 * 1e3));
            for turn in 0..3 {
                // Beyond the cores (one sample) the order turns by run instead.
                let backend = (turn + sample + run) % 3;
                let time = match backend {
                    0 => cpu_thread(n, tasks, workers),
                    1 => cpu_process(n, tasks, workers),
                    _ => cpu_rayon(&pools[i], n, tasks),
                };
                speedups[backend].push(seq / time);
            }
        }
        for ((_, cols), speedups) in scaling.series.iter_mut().zip(&speedups) {
            cols[i][run] = summarise(speedups.iter().copied()).map(|s| s.median);
        }
    }
}
