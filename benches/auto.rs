//! `Auto` against hand-tuned `Thread` pools and Python (issue 9): does the pool that finds its
//! worker count by measurement come close to the best fixed `max_workers` on each kind of work?
//! It rewrites the part of `BENCHMARKS.md` between `<!-- auto:begin -->` and `<!-- auto:end -->`
//! and `benchmarks-auto-workers.svg`.
//!
//! ```sh
//! cargo bench --bench auto                 # 3 runs: about 4 minutes on 2 cores
//! AUTO_RUNS=5 cargo bench --bench auto     # more runs of the settings that take under 2 s
//! AUTO_QUICK=1 cargo bench --bench auto    # smoke: 1 run, no I/O sweep at 1 and 2 workers,
//!                                          # 5 tiny blocks; writes under target/auto/
//! AUTO_ONLY=io_cpu,cpu AUTO_QUICK=1 ...    # only those workloads (io, cpu, io_cpu, cpu_io,
//!                                          # tiny, starvation); writes under target/auto/
//! AUTO_LOG=1 ...                           # print the governor's records as they come
//! ```
//!
//! Each block runs on a thread of its own; one that runs for more than a minute is taken for hung:
//! the bench notes it (with the governor's decisions until then), leaves that thread behind, and
//! goes on; the report lists the hung blocks.
//!
//! Workloads, each timed as the wall time of one whole `pool!` block (workers started and joined
//! inside it):
//! - I/O-bound: 400 `fetch`es, each a new connection to a local HTTP server (in this process, a
//!   thread per connection) that answers after 50 ms; all submitted, then collected.
//! - CPU-bound: 64 `spin`s, a loop calibrated to about 20 ms on one thread.
//! - Mixed: in one block, the I/O batch, collected, then the CPU batch; and the reverse.
//! - Tiny: 20,000 calls of `add(a, b)`; the median of at least 60 blocks per setting, interleaved.
//! - Starvation: as many tasks as cores wait for a flag that a task queued after them sets.
//!
//! Settings: `Auto` (default options), `Thread(max_workers = n)` for n = 1, 2, 4, ..., 128 (the best
//! is the oracle), `Thread` with its default `max_workers`, and Python's default
//! `ThreadPoolExecutor()` (`benches/python/auto.py`, against the same server). In each run every
//! setting is timed once per workload, interleaved; a setting whose first run took 2 s or more
//! is timed in the first run only. While each `Auto` block runs, a sampler thread counts the
//! threads named `auto-*` every 2 ms, and a logger keeps the governor's `concurrent_futures::auto` records.
//!
//! The bench's parts, under `benches/auto/`: `settings.rs`, `workloads.rs` (the blocks, and how
//! each is run and timed), `starvation.rs`, `server.rs` (the I/O workload's HTTP server),
//! `trace.rs` (the sampler and the governor's log), `results.rs` (the figures, and Python's),
//! and the output: `report.rs` (the Markdown), `workers.rs` (its sections on `Auto`'s workers) and
//! `plot.rs`. The statistics, the machine and its meter, the CPU-bound task, the environment's
//! switches and the splicing into `BENCHMARKS.md` are shared with the `report` bench
//! (`benches/common/`).
//!
//! Under `cargo test --benches` (no `--bench` argument) it does nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs the block as one `pool!` under `$setting` and gives its value (the caller has
/// `concurrent_futures::pool` in scope). Defined before the modules, which use it.
macro_rules! in_pool {
    ($setting:expr, { $($body:tt)* }) => {
        match $setting {
            // The one place that names the `Auto` backend (default options; its workers named
            // `auto-<index>` for the sampler).
            $crate::Setting::Auto => {
                pool!(Auto(thread_name_prefix = $crate::trace::PREFIX) => { $($body)* })
            }
            $crate::Setting::Fixed(workers) => {
                pool!(Thread(max_workers = workers) => { $($body)* })
            }
            $crate::Setting::ThreadDefault => pool!(Thread => { $($body)* }),
            $crate::Setting::Python => {
                unreachable!("Python's blocks run in benches/python/auto.py")
            }
        }
    };
}

mod common;
#[path = "auto/plot.rs"]
mod plot;
#[path = "auto/report.rs"]
mod report;
#[path = "auto/results.rs"]
mod results;
#[path = "auto/server.rs"]
mod server;
#[path = "auto/settings.rs"]
mod settings;
#[path = "auto/starvation.rs"]
mod starvation;
#[path = "auto/trace.rs"]
mod trace;
#[path = "auto/workloads.rs"]
mod workloads;

use common::cpu_task::{calibrate, spin};
use common::machine::{load_average, Meter};
use common::markdown::splice_into;
use results::Results;
use settings::Settings;
use starvation::Starvation;
use workloads::{timed_block, tiny_rounds, Ctx};

const IO_TASKS: u32 = 400;
const CPU_TASKS: usize = 64;
const CPU_TASK_SECONDS: f64 = 0.020;
const TINY_TASKS: u64 = 20_000;
/// Tiny-task blocks per setting, over all runs together.
const TINY_BLOCKS: usize = 60;
const PYTHON_TINY_BLOCKS: usize = 5;
const SWEEP: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];
/// A setting whose first run takes this long or longer is timed in the first run only.
const SLOW: f64 = 2.0;
/// How long a starving task waits before it gives up: a safety net under `Auto`, and the only
/// way out for a fixed pool of `cores` workers.
const STARVATION_SAFETY: Duration = Duration::from_secs(30);
const STARVATION_FIXED: Duration = Duration::from_secs(2);
/// A block that runs longer than this is taken for hung (the slowest, mixed on one worker, takes
/// about 22 s).
const HUNG: Duration = Duration::from_secs(60);

/// Who runs a block, in the order the tables list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Setting {
    Auto,
    Fixed(usize),
    ThreadDefault,
    Python,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Workload {
    Io,
    Cpu,
    IoCpu,
    CpuIo,
    Tiny,
}

impl Workload {
    const TIMED_ONCE_PER_RUN: [Workload; 4] = [
        Workload::Io,
        Workload::Cpu,
        Workload::IoCpu,
        Workload::CpuIo,
    ];

    /// Its name in `benches/python/auto.py`.
    fn python_name(self) -> &'static str {
        match self {
            Workload::Io => "io",
            Workload::Cpu => "cpu",
            Workload::IoCpu => "io_cpu",
            Workload::CpuIo => "cpu_io",
            Workload::Tiny => "tiny",
        }
    }

    fn from_name(name: &str) -> Option<Workload> {
        Workload::TIMED_ONCE_PER_RUN
            .into_iter()
            .chain([Workload::Tiny])
            .find(|w| w.python_name() == name)
    }

    fn has_io(self) -> bool {
        matches!(self, Workload::Io | Workload::IoCpu | Workload::CpuIo)
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("auto: run it with `cargo bench --bench auto`");
        return;
    }
    let settings = Settings::from_env();
    trace::install_logger(common::settings::switch("AUTO_LOG"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_before = load_average();
    let mut meter = Meter::default();
    let started = Instant::now();
    eprintln!(
        "auto: {} run(s), {} cores, load average before: {load_before}",
        settings.runs, cores
    );

    let (results, spin_n) = meter.measure(|| time_everything(&settings, cores));
    let report = report::Report {
        results: &results,
        settings: &settings,
        cores,
        spin_n,
        load_before,
        load_after: load_average(),
        others: meter.cores(),
        minutes: started.elapsed().as_secs_f64() / 60.0,
    };
    let markdown = report.markdown();
    println!("{markdown}");
    match report.write_svg(&settings.svg) {
        Ok(()) => eprintln!("auto: wrote {}", settings.svg.display()),
        Err(e) => eprintln!("auto: the plot was not written: {e}"),
    }
    splice_into(&settings.markdown, &report::SECTION, &markdown);
    eprintln!(
        "auto: wrote {} in {:.1} min",
        settings.markdown.display(),
        report.minutes
    );
}

/// Every block of every run, then the untimed ones: the figures, and `spin`'s argument for
/// about 20 ms.
fn time_everything(settings: &Settings, cores: usize) -> (Results, u64) {
    let port = server::start();
    let spin_n = calibrate(CPU_TASK_SECONDS);
    // Blocks run on threads of their own (see `guarded`), so what they share lives for good.
    let ctx: &'static Ctx = Box::leak(Box::new(Ctx {
        port,
        spin_n,
        spins: spin(black_box(spin_n)).wrapping_mul(CPU_TASKS as u64),
        pages: std::sync::OnceLock::new(),
    }));
    let mut results = Results::default();
    for run in 0..settings.runs {
        eprintln!("auto: run {}/{}", run + 1, settings.runs);
        for workload in Workload::TIMED_ONCE_PER_RUN {
            if !settings.runs_workload(workload.python_name()) {
                continue;
            }
            for setting in settings.pools(workload) {
                if !results.wanted(workload, setting, run) {
                    continue;
                }
                let timed = timed_block(workload, setting, ctx, true);
                if let Some(seconds) = timed.seconds {
                    eprintln!("auto:   {workload:?} {setting:?}: {:.1} ms", seconds * 1e3);
                }
                results.record(workload, setting, timed);
            }
        }
        if settings.runs_workload("tiny") {
            tiny_rounds(settings, ctx, &mut results);
        }
        results.run_python(settings, port, run);
    }
    if settings.runs_workload("tiny") {
        // Untimed: how many workers `Auto` starts for tiny tasks.
        results.tiny_trace = timed_block(Workload::Tiny, Setting::Auto, ctx, true).trace;
    }
    if settings.runs_workload("starvation") {
        results.starvation = Some(Starvation::run(cores));
    }

    (results, spin_n)
}
