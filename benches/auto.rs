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
//! threads named `auto-*` every 2 ms, and a logger keeps the governor's `executor::auto` records.
//!
//! Under `cargo test --benches` (no `--bench` argument) it does nothing.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use executor::pool;

#[path = "common/machine.rs"]
mod common_machine;
#[path = "auto/machine.rs"]
mod machine;
#[path = "auto/plot.rs"]
mod plot;
#[path = "auto/report.rs"]
mod report;
#[path = "auto/server.rs"]
mod server;
#[path = "auto/trace.rs"]
mod trace;

use server::fetch;
use trace::{Trace, Tracer};

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

/// Runs the block as one `pool!` under `$setting` and gives its value.
macro_rules! in_pool {
    ($setting:expr, { $($body:tt)* }) => {
        match $setting {
            // The one place that names the `Auto` backend (default options; its workers named
            // `auto-<index>` for the sampler).
            Setting::Auto => pool!(Auto(thread_name_prefix = trace::PREFIX) => { $($body)* }),
            Setting::Fixed(workers) => pool!(Thread(max_workers = workers) => { $($body)* }),
            Setting::ThreadDefault => pool!(Thread => { $($body)* }),
            Setting::Python => unreachable!("Python's blocks run in benches/python/auto.py"),
        }
    };
}

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
    trace::install_logger(std::env::var_os("AUTO_LOG").is_some_and(|v| v != "0"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_before = machine::load_average();
    let meter = machine::Meter::start();
    let started = Instant::now();
    eprintln!(
        "auto: {} run(s), {} cores, load average before: {load_before}",
        settings.runs, cores
    );

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
            tiny_rounds(&settings, ctx, &mut results);
        }
        results.run_python(&settings, port, run);
    }
    if settings.runs_workload("tiny") {
        // Untimed: how many workers `Auto` starts for tiny tasks.
        results.tiny_trace = timed_block(Workload::Tiny, Setting::Auto, ctx, true).trace;
    }
    if settings.runs_workload("starvation") {
        results.starvation = Some(Starvation::run(cores));
    }

    let report = report::Report {
        results: &results,
        settings: &settings,
        cores,
        spin_n,
        load_before,
        load_after: machine::load_average(),
        others: meter.others(),
        minutes: started.elapsed().as_secs_f64() / 60.0,
    };
    let markdown = report.markdown();
    println!("{markdown}");
    match report.write_svg(&settings.svg) {
        Ok(()) => eprintln!("auto: wrote {}", settings.svg.display()),
        Err(e) => eprintln!("auto: the plot was not written: {e}"),
    }
    report::splice_into(&settings.markdown, &markdown);
    eprintln!(
        "auto: wrote {} in {:.1} min",
        settings.markdown.display(),
        report.minutes
    );
}

struct Settings {
    runs: usize,
    quick: bool,
    /// `AUTO_ONLY`: the workloads to run (all when `None`).
    only: Option<Vec<String>>,
    tiny_blocks_per_run: usize,
    markdown: PathBuf,
    svg: PathBuf,
}

impl Settings {
    fn from_env() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let quick = std::env::var_os("AUTO_QUICK").is_some_and(|v| v != "0");
        let runs = std::env::var("AUTO_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(if quick { 1 } else { 3 });
        let only: Option<Vec<String>> = std::env::var("AUTO_ONLY").ok().map(|v| {
            v.split(',')
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .collect()
        });
        for name in only.iter().flatten() {
            assert!(
                name == "starvation" || Workload::from_name(name).is_some(),
                "AUTO_ONLY: unknown workload {name:?}"
            );
        }
        let (markdown, svg) = if quick || only.is_some() {
            let dir = root.join("target/auto");
            std::fs::create_dir_all(&dir).expect("target/auto can be made");
            (
                dir.join("BENCHMARKS.md"),
                dir.join("benchmarks-auto-workers.svg"),
            )
        } else {
            (
                root.join("BENCHMARKS.md"),
                root.join("benchmarks-auto-workers.svg"),
            )
        };
        Settings {
            runs,
            quick,
            only,
            tiny_blocks_per_run: if quick { 5 } else { TINY_BLOCKS.div_ceil(runs) },
            markdown,
            svg,
        }
    }

    fn command(&self) -> String {
        let mut command = String::new();
        if self.quick {
            command.push_str("AUTO_QUICK=1 ");
        }
        if let Some(only) = &self.only {
            command.push_str(&format!("AUTO_ONLY={} ", only.join(",")));
        }
        if self.runs != if self.quick { 1 } else { 3 } {
            command.push_str(&format!("AUTO_RUNS={} ", self.runs));
        }
        command + "cargo bench --bench auto"
    }

    /// Whether `AUTO_ONLY` lets the workload called `name` run.
    fn runs_workload(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|w| w == name))
    }

    /// The fixed sizes swept for `workload` (quick mode skips the 20 s and 10 s I/O ones).
    fn sweep(&self, workload: Workload) -> Vec<usize> {
        SWEEP
            .into_iter()
            .filter(|&n| !(self.quick && workload.has_io() && n <= 2))
            .collect()
    }

    /// Every `pool!` setting timed on `workload`, in the order they run within a run.
    fn pools(&self, workload: Workload) -> Vec<Setting> {
        let mut pools = vec![Setting::Auto];
        pools.extend(self.sweep(workload).into_iter().map(Setting::Fixed));
        pools.push(Setting::ThreadDefault);
        pools
    }
}

// ---------------------------------------------------------------------------------------------
// Results

/// Every figure of a benchmark run.
#[derive(Default)]
struct Results {
    /// Wall seconds of each block, in the order timed.
    times: BTreeMap<(Workload, Setting), Vec<f64>>,
    /// One trace per `Auto` block of the workloads timed once per run.
    traces: BTreeMap<Workload, Vec<Trace>>,
    tiny_trace: Option<Trace>,
    python_workers: Option<usize>,
    python_error: Option<String>,
    starvation: Option<Starvation>,
    /// Blocks taken for hung: workload, setting, the trace until then.
    hung: Vec<(Workload, Setting, Option<Trace>)>,
}

impl Results {
    /// Whether to time `setting` on `workload` in `run`: always in the first, later only if its
    /// first run was fast (or no run has finished yet: it hung).
    fn wanted(&self, workload: Workload, setting: Setting, run: usize) -> bool {
        run == 0
            || self
                .times
                .get(&(workload, setting))
                .and_then(|t| t.first())
                .is_none_or(|&first| first < SLOW)
    }

    fn record(&mut self, workload: Workload, setting: Setting, timed: Timed) {
        match timed.seconds {
            Some(seconds) => {
                self.times
                    .entry((workload, setting))
                    .or_default()
                    .push(seconds);
                if let Some(trace) = timed.trace {
                    self.traces.entry(workload).or_default().push(trace);
                }
            }
            None => self.hung.push((workload, setting, timed.trace)),
        }
    }

    /// One run of `benches/python/auto.py`: every workload Python is still wanted on.
    fn run_python(&mut self, settings: &Settings, port: u16, run: usize) {
        if self.python_error.is_some() {
            return;
        }
        let workloads: Vec<&str> = Workload::TIMED_ONCE_PER_RUN
            .into_iter()
            .chain([Workload::Tiny])
            .filter(|&w| settings.runs_workload(w.python_name()))
            .filter(|&w| self.wanted(w, Setting::Python, run))
            .map(Workload::python_name)
            .collect();
        if workloads.is_empty() {
            return;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/auto.py");
        let tiny_blocks = if settings.quick {
            1
        } else {
            PYTHON_TINY_BLOCKS
        };
        let output = Command::new("python3")
            .arg(&script)
            .args([
                "--port",
                &port.to_string(),
                "--workloads",
                &workloads.join(","),
            ])
            .args(["--io-tasks", &IO_TASKS.to_string()])
            .args(["--cpu-tasks", &CPU_TASKS.to_string()])
            .args(["--cpu-seconds", &CPU_TASK_SECONDS.to_string()])
            .args(["--tiny-tasks", &TINY_TASKS.to_string()])
            .args(["--tiny-blocks", &tiny_blocks.to_string()])
            .output();
        let json = match output {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                self.python_error = Some(format!("{}: {why}", o.status));
                return;
            }
            Err(e) => {
                self.python_error = Some(format!("python3 did not start: {e}"));
                return;
            }
        };
        self.python_workers = json_number(&json, "max_workers").map(|n| n as usize);
        for workload in Workload::TIMED_ONCE_PER_RUN
            .into_iter()
            .chain([Workload::Tiny])
        {
            if let Some(seconds) = json_number(&json, workload.python_name()) {
                eprintln!("auto:   {workload:?} Python: {:.1} ms", seconds * 1e3);
                let timed = Timed {
                    seconds: Some(seconds),
                    trace: None,
                };
                self.record(workload, Setting::Python, timed);
            }
        }
    }
}

/// The number after `"key":` in the flat JSON that `auto.py` prints (no JSON crate here).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let quoted = format!("\"{key}\":");
    let rest = &json[json.find(&quoted)? + quoted.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE ".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The workloads

/// What every block needs.
struct Ctx {
    port: u16,
    /// `spin`'s argument for about 20 ms.
    spin_n: u64,
    /// What the CPU batch sums to.
    spins: u64,
    /// What the I/O batch's pages add up to, in bytes (the first block's answer).
    pages: std::sync::OnceLock<usize>,
}

/// The CPU task: a multiply-add chain of `n` steps.
fn spin(n: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..n {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
    }
    x
}

#[inline(never)]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Iterations of `spin` that take about `seconds` on one thread here (the fastest of a few tries).
fn calibrate(seconds: f64) -> u64 {
    let probe = 1u64 << 20;
    let fastest = (0..5)
        .map(|_| {
            let t = Instant::now();
            black_box(spin(black_box(probe)));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    ((probe as f64) * seconds / fastest) as u64
}

/// One block's figures: its wall time (`None`: it hung), and its trace.
struct Timed {
    seconds: Option<f64>,
    trace: Option<Trace>,
}

/// Runs one block of `workload` under `setting`, timed; an `Auto` block is traced when `traced`.
fn timed_block(workload: Workload, setting: Setting, ctx: &'static Ctx, traced: bool) -> Timed {
    let tracer = (traced && setting == Setting::Auto).then(Tracer::start);
    let ran = guarded(format!("{workload:?} under {setting:?}"), move || {
        let start = Instant::now();
        let switched = block(workload, setting, ctx);
        (start, Instant::now(), switched)
    });
    match ran {
        Some((start, end, switched)) => Timed {
            seconds: Some((end - start).as_secs_f64()),
            trace: tracer.map(|t| t.finish(end, switched)),
        },
        None => Timed {
            seconds: None,
            trace: tracer.map(|t| t.finish(Instant::now(), None)),
        },
    }
}

/// The tiny-task blocks of one run: rounds of every setting, each round starting one setting
/// further on, so that no setting always follows the same one (a block can leave its threads
/// exiting, or the governor ticking, behind). Unlike the other workloads, every block runs on the
/// same thread (one guarded thread for the whole section): a fresh thread per block of 2 ms moved
/// the times by more than the settings differ (its start, and the malloc arena it is given after
/// the I/O blocks' hundreds of threads).
fn tiny_rounds(settings: &Settings, ctx: &'static Ctx, results: &mut Results) {
    let pools = settings.pools(Workload::Tiny);
    let rounds = settings.tiny_blocks_per_run;
    let timed = guarded("the tiny-task rounds".into(), move || {
        let mut times = Vec::new();
        for round in 0..rounds {
            let mut order = pools.clone();
            let shift = round % order.len().max(1);
            order.rotate_left(shift);
            for setting in order {
                let start = Instant::now();
                block(Workload::Tiny, setting, ctx);
                times.push((setting, start.elapsed().as_secs_f64()));
            }
        }
        times
    });
    match timed {
        Some(times) => {
            for (setting, seconds) in times {
                let timed = Timed {
                    seconds: Some(seconds),
                    trace: None,
                };
                results.record(Workload::Tiny, setting, timed);
            }
        }
        None => {
            let hung = Timed {
                seconds: None,
                trace: None,
            };
            results.record(Workload::Tiny, Setting::Auto, hung);
        }
    }
}

/// Runs `f` on a thread of its own and gives its value, or `None` if it runs longer than
/// [`HUNG`]: then the thread is left behind, blocked for good (the pool's workers with it), and
/// the bench goes on. A panic in `f` is passed on.
fn guarded<T: Send + 'static>(what: String, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, outcome) = mpsc::channel();
    let runner = thread::Builder::new()
        .name("block".into())
        .spawn(move || {
            let _ = done.send(f());
        })
        .expect("a thread for the block");
    match outcome.recv_timeout(HUNG) {
        Ok(value) => {
            let _ = runner.join();
            Some(value)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match runner.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the block's thread ended without sending"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            eprintln!(
                "auto: the block {what} has run for {} s: taken for hung, left behind",
                HUNG.as_secs()
            );
            trace::dump_state();
            None
        }
    }
}

/// One `pool!` block of `workload`; gives when a mixed block switched batches.
fn block(workload: Workload, setting: Setting, ctx: &Ctx) -> Option<Instant> {
    let (port, n) = (ctx.port, ctx.spin_n);
    let (pages, spins, switched) = match workload {
        Workload::Io => in_pool!(setting, {
            let pages: Vec<_> = (0..IO_TASKS).map(|i| submit(fetch, port, i)).collect();
            let bytes: usize = pages
                .into_iter()
                .map(|f| f.result().expect("a fetch"))
                .sum();
            (Some(bytes), None, None)
        }),
        Workload::Cpu => in_pool!(setting, {
            let spins: Vec<_> = (0..CPU_TASKS).map(|_| submit(spin, n)).collect();
            let sum = spins
                .into_iter()
                .map(|f| f.result().expect("a spin"))
                .fold(0, u64::wrapping_add);
            (None, Some(sum), None)
        }),
        Workload::IoCpu => in_pool!(setting, {
            let pages: Vec<_> = (0..IO_TASKS).map(|i| submit(fetch, port, i)).collect();
            let bytes: usize = pages
                .into_iter()
                .map(|f| f.result().expect("a fetch"))
                .sum();
            let switched = Instant::now();
            let spins: Vec<_> = (0..CPU_TASKS).map(|_| submit(spin, n)).collect();
            let sum = spins
                .into_iter()
                .map(|f| f.result().expect("a spin"))
                .fold(0, u64::wrapping_add);
            (Some(bytes), Some(sum), Some(switched))
        }),
        Workload::CpuIo => in_pool!(setting, {
            let spins: Vec<_> = (0..CPU_TASKS).map(|_| submit(spin, n)).collect();
            let sum = spins
                .into_iter()
                .map(|f| f.result().expect("a spin"))
                .fold(0, u64::wrapping_add);
            let switched = Instant::now();
            let pages: Vec<_> = (0..IO_TASKS).map(|i| submit(fetch, port, i)).collect();
            let bytes: usize = pages
                .into_iter()
                .map(|f| f.result().expect("a fetch"))
                .sum();
            (Some(bytes), Some(sum), Some(switched))
        }),
        Workload::Tiny => {
            let sum = in_pool!(setting, {
                let sums: Vec<_> = (0..TINY_TASKS).map(|i| submit(add, i, 1)).collect();
                sums.into_iter()
                    .map(|f| f.result().expect("an add"))
                    .sum::<u64>()
            });
            assert_eq!(
                sum,
                TINY_TASKS * (TINY_TASKS + 1) / 2,
                "{setting:?}: tiny tasks' sum"
            );
            (None, None, None)
        }
    };
    if let Some(bytes) = pages {
        assert_eq!(
            bytes,
            *ctx.pages.get_or_init(|| bytes),
            "{setting:?}: page bytes"
        );
    }
    if let Some(sum) = spins {
        assert_eq!(sum, ctx.spins, "{setting:?}: the spins' sum");
    }
    switched
}

// ---------------------------------------------------------------------------------------------
// Starvation

/// A flag that tasks wait for.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

/// Waits until the gate opens, or `limit` passes; whether it opened.
fn wait_for_gate(gate: &Gate, limit: Duration) -> bool {
    let open = gate.open.lock().expect("the gate's lock");
    let (open, _) = gate
        .opened
        .wait_timeout_while(open, limit, |open| !*open)
        .expect("the gate's lock");
    *open
}

fn open_gate(gate: &Gate) {
    *gate.open.lock().expect("the gate's lock") = true;
    gate.opened.notify_all();
}

/// `cores` tasks that wait for a gate which only a task submitted after them opens.
struct Starvation {
    cores: usize,
    /// `Auto`: seconds and waiters that saw the gate open (`None`: it hung).
    auto: Option<(f64, usize)>,
    auto_trace: Trace,
    /// `Thread(max_workers = cores)` with waits of [`STARVATION_FIXED`]: seconds, waiters that
    /// saw the gate open.
    fixed: Option<(f64, usize)>,
}

impl Starvation {
    fn run(cores: usize) -> Starvation {
        eprintln!("auto: starvation");
        let tracer = Tracer::start();
        let auto = guarded("starvation under Auto".into(), move || {
            Self::block(Setting::Auto, cores, STARVATION_SAFETY)
        });
        let auto_trace = tracer.finish(auto.map_or_else(Instant::now, |a| a.2), None);
        let fixed = guarded("starvation under Thread".into(), move || {
            Self::block(Setting::Fixed(cores), cores, STARVATION_FIXED)
        });
        Starvation {
            cores,
            auto: auto.map(|(seconds, opened, _)| (seconds, opened)),
            auto_trace,
            fixed: fixed.map(|(seconds, opened, _)| (seconds, opened)),
        }
    }

    /// Seconds, waiters that saw the gate open, when the block ended.
    fn block(setting: Setting, cores: usize, limit: Duration) -> (f64, usize, Instant) {
        let gate = Gate::default();
        let start = Instant::now();
        let opened = in_pool!(setting, {
            let waiters: Vec<_> = (0..cores)
                .map(|_| submit(wait_for_gate, &gate, limit))
                .collect();
            let opener = submit(open_gate, &gate);
            let opened = waiters
                .into_iter()
                .map(|f| f.result().expect("a waiter"))
                .filter(|&o| o)
                .count();
            opener.result().expect("the opener");
            opened
        });
        let end = Instant::now();
        ((end - start).as_secs_f64(), opened, end)
    }
}
