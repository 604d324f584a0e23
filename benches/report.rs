//! The comparison report (issue 6): one command runs every comparison several times in one run,
//! Python's peers included, and rewrites the generated part of `BENCHMARKS.md` (between the
//! `<!-- report:begin -->` and `<!-- report:end -->` markers) and `benchmarks-scaling.svg`.
//!
//! ```sh
//! cargo bench --bench report                      # 5 runs: about 5 minutes on 2 cores
//! REPORT_RUNS=9 cargo bench --bench report        # more runs
//! REPORT_QUICK=1 cargo bench --bench report       # 1 run, smaller map: writes under target/report/
//! ```
//!
//! Workloads, all on 2 workers unless the table says otherwise: 20,000 tiny tasks, 200 tasks with a
//! 1 MiB argument, 8 tasks with a 64 MiB argument, 16 CPU-bound tasks of about 20 ms, pool
//! start-up with 2 workers, and `map` over 1,000,000 items; then the speedup of 32 CPU-bound tasks
//! against 1, 2, 4, 8 and 16 workers. Peers: `pool!(Thread)`, `pool!(Process)`, rayon,
//! `std::thread::scope`, the `procspawn` crate's `Pool`, and Python's `ThreadPoolExecutor` and
//! `ProcessPoolExecutor` (fork and spawn, through `benches/python/executors.py --report`), with a
//! pipe ping-pong between two processes and `memcpy` as floors.
//!
//! Each run waits for a quiet machine, then times every peer once on every workload, so the
//! ratios are taken within a run and summarised over the runs (median, min–max); a burst of other
//! work costs one run of a few tables. A [`Meter`] records how much CPU other processes took while
//! each table ran, and the report prints it.
//!
//! Under `cargo test --benches` (no `--bench` argument) it does nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use executor::pool;

#[path = "common/machine.rs"]
mod machine;
use machine::{cpu_model, first_line, load_average, machine_busy_seconds, own_cpu_seconds};
use rayon::prelude::*;

/// Workers for every comparison but the scaling one.
const WORKERS: usize = 2;
const TINY_TASKS: usize = 20_000;
const PIPE_ROUND_TRIPS: usize = 2_000;
const MIB: usize = 1 << 20;
const CPU_TASKS: usize = 16;
const CPU_TASK_SECONDS: f64 = 0.020;
const SCALING_TASKS: usize = 32;
const SCALING_WORKERS: [usize; 5] = [1, 2, 4, 8, 16];
const MAP_CHUNKSIZE: usize = 1_000;
/// procspawn fails with `EMFILE` beyond about 1,000 outstanding calls (3 descriptors each).
const PROCSPAWN_BATCH: usize = 1_000;

const BEGIN: &str = "<!-- report:begin -->";
const END: &str = "<!-- report:end -->";

fn main() {
    // procspawn needs this first thing in `main` (its workers re-run this binary); `pool!` needs
    // nothing.
    procspawn::init();
    if !std::env::args().any(|a| a == "--bench") {
        println!("report: run it with `cargo bench --bench report`");
        return;
    }
    let settings = Settings::from_env();
    let started = Instant::now();
    let load_before = load_average();
    eprintln!(
        "report: {} runs ({} start-up samples), load average before: {load_before}",
        settings.runs, settings.startup_runs
    );

    let n = calibrate(CPU_TASK_SECONDS);
    let rayon = rayon_pool(WORKERS);
    let pools: Vec<rayon::ThreadPool> = SCALING_WORKERS.iter().map(|&w| rayon_pool(w)).collect();
    let mut tiny = tiny_tasks(&settings);
    let mut one_mib = payloads(&settings, MIB, 200);
    let mut big = payloads(&settings, 64 * MIB, 8);
    let mut cpu = cpu_bound(&settings, n);
    let mut startup = startup(&settings);
    let mut map = mapping(&settings);
    let mut scaling = scaling(&settings);
    // Each run goes through every table once, so a burst of other work on the machine costs one
    // run of a few tables rather than every run of one table; the meters say how much there was.
    let mut meters = [Meter::default(); 7];
    let mut whole = Meter::default();
    for run in 0..settings.runs {
        eprintln!("report: run {}/{}", run + 1, settings.runs);
        wait_for_quiet();
        whole.measure(|| {
            meters[0].measure(|| tiny_tasks_run(&mut tiny, &rayon, run));
            meters[1].measure(|| payloads_run(&mut one_mib, &rayon, (MIB, 200), run));
            meters[2].measure(|| payloads_run(&mut big, &rayon, (64 * MIB, 8), run));
            meters[3].measure(|| cpu_bound_run(&mut cpu, &rayon, n, run));
            meters[4].measure(|| startup_run(&mut startup, run));
            meters[5].measure(|| mapping_run(&mut map, &rayon, settings.map_items, run));
            meters[6].measure(|| scaling_run(&mut scaling, &pools, n, run));
        });
    }
    for (table, meter) in [&mut tiny, &mut one_mib, &mut big, &mut startup, &mut map]
        .into_iter()
        .zip([meters[0], meters[1], meters[2], meters[4], meters[5]])
    {
        table.others = meter.cores();
    }
    cpu.others = meters[3].cores();
    scaling.others = meters[6].cores();

    let report = Report {
        tables: vec![tiny, one_mib, big, startup, map],
        cpu,
        scaling,
        load_before,
        load_after: load_average(),
        others: whole.cores(),
        minutes: started.elapsed().as_secs_f64() / 60.0,
    };
    let markdown = report.markdown(&settings);
    println!("{markdown}");
    if let Some(dir) = settings.svg.parent() {
        std::fs::create_dir_all(dir).expect("the output folder can be made");
    }
    write_scaling_svg(&report.scaling, &settings.svg).expect("the SVG is written");
    splice_into(&settings.markdown, &markdown);
    eprintln!(
        "report: wrote {} and {} in {:.1} min",
        settings.markdown.display(),
        settings.svg.display(),
        report.minutes
    );
}

struct Settings {
    runs: usize,
    startup_runs: usize,
    map_items: usize,
    quick: bool,
    markdown: PathBuf,
    svg: PathBuf,
}

impl Settings {
    fn from_env() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let quick = std::env::var_os("REPORT_QUICK").is_some_and(|v| v != "0");
        let runs = std::env::var("REPORT_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(if quick { 1 } else { 5 });
        let (markdown, svg) = if quick {
            let dir = root.join("target/report");
            std::fs::create_dir_all(&dir).expect("target/report can be made");
            let markdown = dir.join("BENCHMARKS.md");
            if !markdown.exists() {
                std::fs::write(&markdown, format!("# Quick report\n\n{BEGIN}\n{END}\n"))
                    .expect("target/report/BENCHMARKS.md can be written");
            }
            (markdown, dir.join("benchmarks-scaling.svg"))
        } else {
            (
                root.join("BENCHMARKS.md"),
                root.join("benchmarks-scaling.svg"),
            )
        };
        Settings {
            runs,
            startup_runs: runs * STARTUP_PER_RUN,
            map_items: if quick { 100_000 } else { 1_000_000 },
            quick,
            markdown,
            svg,
        }
    }

    fn command(&self) -> String {
        let mut command = String::new();
        if self.quick {
            command.push_str("REPORT_QUICK=1 ");
        }
        if self.runs != if self.quick { 1 } else { 5 } {
            let _ = write!(command, "REPORT_RUNS={} ", self.runs);
        }
        command + "cargo bench --bench report"
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

/// One peer on one workload: what it is, the wall time of the whole workload in each run (`None`
/// where it could not run), and how many units of work that time covers (tasks, bytes, ...).
struct Row {
    label: String,
    seconds: Vec<Option<f64>>,
    units: f64,
}

/// How a table shows a row's cost per unit.
#[derive(Clone, Copy)]
enum Unit {
    /// Seconds per item, shown scaled (1e6: µs) with a name.
    PerItem(f64, &'static str),
    /// Bytes per second, shown in GB/s.
    Rate,
    /// Seconds for the whole workload, shown in ms.
    Millis,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::PerItem(_, name) => name,
            Unit::Rate => "GB/s",
            Unit::Millis => "ms",
        }
    }

    /// What a cost (seconds per unit) shows as.
    fn show(self, cost: f64) -> f64 {
        match self {
            Unit::PerItem(scale, _) => cost * scale,
            Unit::Rate => 1.0 / cost / 1e9,
            Unit::Millis => cost * 1e3,
        }
    }
}

struct Table {
    title: String,
    about: String,
    unit: Unit,
    rows: Vec<Row>,
    /// The rows the others are divided by (labels), one ratio column each.
    refs: Vec<&'static str>,
    /// Cores used by other processes while it ran (see [`Meter`]).
    others: f64,
}

impl Table {
    fn row(&self, label: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.label == label)
    }
}

impl Row {
    fn new(label: &str, runs: usize, units: f64) -> Self {
        Row {
            label: label.to_string(),
            seconds: vec![None; runs],
            units,
        }
    }

    /// Seconds per unit, in each run.
    fn costs(&self) -> Vec<Option<f64>> {
        self.seconds
            .iter()
            .map(|s| s.map(|s| s / self.units))
            .collect()
    }
}

/// The median, min and max of the values that are there.
#[derive(Clone, Copy)]
struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

fn summarise(values: impl IntoIterator<Item = Option<f64>>) -> Option<Summary> {
    let mut v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// Per run, `a / b` where both ran.
fn ratios(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<Option<f64>> {
    a.iter().zip(b).map(|(a, b)| Some((*a)? / (*b)?)).collect()
}

/// A number with about three significant digits.
fn sig(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        let whole = format!("{x:.0}");
        // Thousands separators, as the rest of BENCHMARKS.md writes them.
        let (sign, digits) = whole.split_at(usize::from(whole.starts_with('-')));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{x:.3}")
    } else {
        // Two significant digits: 0.0075, 0.00078.
        let decimals = (-a.log10()).ceil() as usize + 1;
        format!("{x:.decimals$}")
    }
}

/// `median (min–max)`, in the order the unit shows them (a rate's best is its largest).
fn show_summary(s: Summary, unit: Unit) -> String {
    let (a, b, c) = (unit.show(s.median), unit.show(s.min), unit.show(s.max));
    let (lo, hi) = if b <= c { (b, c) } else { (c, b) };
    format!("{} ({}–{})", sig(a), sig(lo), sig(hi))
}

fn show_ratio(s: Summary) -> String {
    format!("{}× ({}–{})", sig(s.median), sig(s.min), sig(s.max))
}

// ---------------------------------------------------------------------------------------------
// Timing helpers

fn timed<R>(f: impl FnOnce() -> R) -> (f64, R) {
    let started = Instant::now();
    let value = f();
    (started.elapsed().as_secs_f64(), value)
}

fn rayon_pool(workers: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("rayon starts")
}

/// Runs one workload of `benches/python/executors.py` and returns each peer's seconds.
fn python(workload: &str, args: &[String]) -> BTreeMap<String, f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/executors.py");
    let output = Command::new("python3")
        .arg(script)
        .arg("--report")
        .arg(workload)
        .args(args)
        .stderr(Stdio::inherit())
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!("report: python3 {workload} failed: {}", output.status);
            return BTreeMap::new();
        }
        Err(error) => {
            eprintln!("report: python3 could not run: {error}");
            return BTreeMap::new();
        }
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, seconds) = line.split_once(' ')?;
            Some((name.to_string(), seconds.trim().parse().ok()?))
        })
        .collect()
}

const PY_THREAD: &str = "Python `ThreadPoolExecutor`";
const PY_FORK: &str = "Python `ProcessPoolExecutor` (fork)";
const PY_SPAWN: &str = "Python `ProcessPoolExecutor` (spawn)";
/// How `executors.py --report` names `PY_THREAD`, `PY_FORK` and `PY_SPAWN`, in that order.
const PY_KEYS: [&str; 3] = ["thread", "fork", "spawn"];

const THREAD: &str = "`pool!(Thread)`";
const PROCESS: &str = "`pool!(Process)`";
const RAYON: &str = "rayon";
const STD_SCOPE: &str = "`std::thread::scope`";
const PIPE: &str = "floor: 1-byte pipe round trip to `cat`";
const THREAD_WARM: &str = "`pool!(Thread)`, back to back";
const RAYON_WARM: &str = "rayon, back to back";
const PROCESS_CHUNK_1: &str = "`pool!(Process)`, chunk size 1 (the default)";
/// How many blocks (or scopes) in a row make one back-to-back figure.
const BACK_TO_BACK: usize = 20;
/// Start-up samples per run.
const STARTUP_PER_RUN: usize = 4;
const PROCSPAWN: &str = "procspawn `Pool`";

/// What other processes did to the machine while a piece of the report ran: the CPU time the
/// whole machine spent busy (`/proc/stat`) less this process's and its waited-for children's
/// (`/proc/self/stat`), both in clock ticks of 10 ms.
#[derive(Default, Clone, Copy)]
struct Meter {
    wall: f64,
    others: f64,
}

impl Meter {
    fn measure(&mut self, f: impl FnOnce()) {
        let (busy, own, started) = (machine_busy_seconds(), own_cpu_seconds(), Instant::now());
        f();
        self.wall += started.elapsed().as_secs_f64();
        self.others += ((machine_busy_seconds() - busy) - (own_cpu_seconds() - own)).max(0.0);
    }

    /// The average number of cores the rest of the machine kept busy.
    fn cores(&self) -> f64 {
        if self.wall > 0.0 {
            self.others / self.wall
        } else {
            0.0
        }
    }
}

/// Before each run: while other processes keep more than a tenth of a core busy (measured over
/// 2 s), wait, for at most 2 minutes; the meters still record whatever happens during the run.
fn wait_for_quiet() {
    let started = Instant::now();
    loop {
        let mut meter = Meter::default();
        meter.measure(|| std::thread::sleep(std::time::Duration::from_secs(2)));
        if meter.cores() <= 0.1 {
            return;
        }
        if started.elapsed().as_secs() >= 120 {
            eprintln!("report: other processes still busy; going on");
            return;
        }
        eprintln!(
            "report: other processes keep {:.2} cores busy; waiting",
            meter.cores()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tiny tasks

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn add_pair((a, b): (u64, u64)) -> u64 {
    a + b
}

fn tiny_tasks(settings: &Settings) -> Table {
    let runs = settings.runs;
    let n = TINY_TASKS;
    let items = n as f64;
    let rows = vec![
        Row::new(THREAD, runs, items),
        Row::new(PROCESS, runs, items),
        Row::new(RAYON, runs, items),
        Row::new(STD_SCOPE, runs, items),
        Row::new(PROCSPAWN, runs, items),
        Row::new(PY_THREAD, runs, items),
        Row::new(PY_FORK, runs, items),
        Row::new(PY_SPAWN, runs, items),
        Row::new(PIPE, runs, PIPE_ROUND_TRIPS as f64),
        Row::new(THREAD_WARM, runs, items),
        Row::new(RAYON_WARM, runs, items),
    ];
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
             Every peer runs once per run, and each run starts with a wait of at least 2 s \
             for a quiet machine, so both `pool!` and rayon's pool start from idle; the two \
             *back to back* rows are the median of {BACK_TO_BACK} blocks (or scopes) in a row, \
             as divan measures, in each run.",
            sig(items)
        ),
        unit: Unit::PerItem(1e6, "µs/task"),
        rows,
        refs: vec![THREAD, PROCESS],
        others: 0.0,
    }
}

fn tiny_tasks_run(table: &mut Table, rayon: &rayon::ThreadPool, run: usize) {
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
    rows[0].seconds[run] = Some(thread_once());

    let (t, out): (f64, Vec<u64>) = timed(|| {
        pool!(Process(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..n as u64).map(|i| submit(add, i, 1)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).collect()
        })
    });
    assert_eq!(out.iter().sum::<u64>(), expected);
    rows[1].seconds[run] = Some(t);

    rows[2].seconds[run] = Some(rayon_once());

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

// ---------------------------------------------------------------------------------------------
// Payloads

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn payloads(settings: &Settings, size: usize, tasks: usize) -> Table {
    let runs = settings.runs;
    let bytes = (size * tasks) as f64;
    let rows = vec![
        Row::new(THREAD, runs, bytes),
        Row::new(PROCESS, runs, bytes),
        Row::new(RAYON, runs, bytes),
        Row::new(STD_SCOPE, runs, bytes),
        Row::new(PROCSPAWN, runs, bytes),
        Row::new(PY_THREAD, runs, bytes),
        Row::new(PY_FORK, runs, bytes),
        Row::new(PY_SPAWN, runs, bytes),
        Row::new(
            &format!("floor: `memcpy` of {} MiB", size / MIB),
            runs,
            bytes,
        ),
    ];
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

fn payloads_run(
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

// ---------------------------------------------------------------------------------------------
// CPU-bound tasks

/// About `n` serially dependent multiply-adds: CPU-bound, no memory traffic.
#[inline(never)]
fn burn(n: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..n {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
    }
    x
}

fn burn_all(n: u64, tasks: usize) -> u64 {
    (0..tasks)
        .map(|_| burn(black_box(n)))
        .fold(0, u64::wrapping_add)
}

/// Iterations of `burn` that take about `seconds` here (the fastest of a few tries).
fn calibrate(seconds: f64) -> u64 {
    let probe = 1u64 << 20;
    let fastest = (0..5)
        .map(|_| timed(|| black_box(burn(black_box(probe)))).0)
        .fold(f64::INFINITY, f64::min);
    ((probe as f64) * seconds / fastest) as u64
}

/// One CPU-bound workload on `workers` workers: each peer's seconds.
fn cpu_thread(n: u64, tasks: usize, workers: usize) -> f64 {
    let (t, sum) = timed(|| {
        pool!(Thread(max_workers = workers) => {
            let futures: Vec<_> = (0..tasks).map(|_| submit(burn, n)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).fold(0, u64::wrapping_add)
        })
    });
    assert_eq!(sum, sum_check(n, tasks));
    t
}

fn cpu_process(n: u64, tasks: usize, workers: usize) -> f64 {
    let (t, sum) = timed(|| {
        pool!(Process(max_workers = workers) => {
            let futures: Vec<_> = (0..tasks).map(|_| submit(burn, n)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).fold(0, u64::wrapping_add)
        })
    });
    assert_eq!(sum, sum_check(n, tasks));
    t
}

fn cpu_rayon(pool: &rayon::ThreadPool, n: u64, tasks: usize) -> f64 {
    let (t, sum) = timed(|| {
        pool.install(|| {
            (0..tasks)
                .into_par_iter()
                .map(|_| burn(black_box(n)))
                .reduce(|| 0, u64::wrapping_add)
        })
    });
    assert_eq!(sum, sum_check(n, tasks));
    t
}

/// The expected sum, from one call (every call returns the same).
fn sum_check(n: u64, tasks: usize) -> u64 {
    use std::sync::Mutex;
    static MEMO: Mutex<Option<(u64, u64)>> = Mutex::new(None);
    let mut memo = MEMO.lock().unwrap();
    let one = match *memo {
        Some((m, one)) if m == n => one,
        _ => {
            let one = burn(n);
            *memo = Some((n, one));
            one
        }
    };
    one.wrapping_mul(tasks as u64)
}

/// CPU-bound work at one worker count: the wall times of every peer, and each language's plain
/// loop over the same calls (the speedup's baseline).
struct CpuTable {
    about: String,
    sequential: Row,
    rows: Vec<Row>,
    python_sequential: Row,
    python_rows: Vec<Row>,
    others: f64,
}

fn cpu_bound(settings: &Settings, n: u64) -> CpuTable {
    let runs = settings.runs;
    let tasks = CPU_TASKS;
    let sequential = Row::new("plain loop (Rust)", runs, 1.0);
    let rows = vec![
        Row::new(THREAD, runs, 1.0),
        Row::new(PROCESS, runs, 1.0),
        Row::new(RAYON, runs, 1.0),
        Row::new(STD_SCOPE, runs, 1.0),
        Row::new(PROCSPAWN, runs, 1.0),
    ];
    let python_sequential = Row::new("plain loop (Python)", runs, 1.0);
    let python_rows = vec![
        Row::new(PY_THREAD, runs, 1.0),
        Row::new(PY_FORK, runs, 1.0),
        Row::new(PY_SPAWN, runs, 1.0),
    ];
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

fn cpu_bound_run(table: &mut CpuTable, rayon: &rayon::ThreadPool, n: u64, run: usize) {
    let tasks = CPU_TASKS;
    let CpuTable {
        sequential,
        rows,
        python_sequential,
        python_rows,
        ..
    } = table;
    let (t, sum) = timed(|| burn_all(n, tasks));
    assert_eq!(sum, sum_check(n, tasks));
    sequential.seconds[run] = Some(t);
    rows[0].seconds[run] = Some(cpu_thread(n, tasks, WORKERS));
    rows[1].seconds[run] = Some(cpu_process(n, tasks, WORKERS));
    rows[2].seconds[run] = Some(cpu_rayon(rayon, n, tasks));
    let (t, sum) = timed(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..tasks)
                .map(|_| scope.spawn(|| burn(black_box(n))))
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
        let handles: Vec<_> = (0..tasks).map(|_| pool.spawn(n, burn)).collect();
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

// ---------------------------------------------------------------------------------------------
// Start-up

fn startup(settings: &Settings) -> Table {
    let runs = settings.startup_runs;
    let rows = vec![
        Row::new(THREAD, runs, 1.0),
        Row::new(PROCESS, runs, 1.0),
        Row::new(RAYON, runs, 1.0),
        Row::new(STD_SCOPE, runs, 1.0),
        Row::new(PROCSPAWN, runs, 1.0),
        Row::new(PY_THREAD, runs, 1.0),
        Row::new(PY_FORK, runs, 1.0),
        Row::new(PY_SPAWN, runs, 1.0),
    ];
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

fn startup_run(table: &mut Table, run: usize) {
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

// ---------------------------------------------------------------------------------------------
// map

fn square(x: u64) -> u64 {
    x * x
}

fn square_all(xs: Vec<u64>) -> Vec<u64> {
    xs.into_iter().map(square).collect()
}

fn mapping(settings: &Settings) -> Table {
    let runs = settings.runs;
    let n = settings.map_items;
    let items = n as f64;
    let chunk = MAP_CHUNKSIZE;
    let rows = vec![
        Row::new(THREAD, runs, items),
        Row::new(PROCESS, runs, items),
        Row::new(RAYON, runs, items),
        Row::new(STD_SCOPE, runs, items),
        Row::new(PROCSPAWN, runs, items),
        Row::new(PY_THREAD, runs, items),
        Row::new(PY_FORK, runs, items),
        Row::new(PY_SPAWN, runs, items),
        Row::new(PROCESS_CHUNK_1, runs, items),
    ];
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

fn mapping_run(table: &mut Table, rayon: &rayon::ThreadPool, n: usize, run: usize) {
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

// ---------------------------------------------------------------------------------------------
// Scaling

/// Speedup over a plain loop at each worker count, for each backend (in `SCALING_WORKERS` order).
struct Scaling {
    tasks: usize,
    /// The plain loop's time per call, in each measurement.
    task_ms: Vec<Option<f64>>,
    cores: usize,
    /// (backend label, per worker count: speedup in each run)
    series: Vec<(&'static str, Vec<Vec<Option<f64>>>)>,
    /// Cores used by other processes while it ran (see [`Meter`]).
    others: f64,
}

impl Scaling {
    fn task_ms(&self) -> f64 {
        summarise(self.task_ms.iter().copied()).map_or(0.0, |s| s.median)
    }
}

fn scaling(settings: &Settings) -> Scaling {
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

fn scaling_run(scaling: &mut Scaling, pools: &[rayon::ThreadPool], n: u64, run: usize) {
    let tasks = scaling.tasks;
    // A plain loop next to each worker count; the run's fastest is the baseline, so a disturbed
    // plain loop cannot inflate a speedup (a disturbed pool can only lower one).
    let mut sequential = f64::INFINITY;
    let mut times = Vec::new();
    for (i, &workers) in SCALING_WORKERS.iter().enumerate() {
        let (seq, sum) = timed(|| burn_all(n, tasks));
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

fn write_scaling_svg(scaling: &Scaling, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let cores = scaling.cores as f64;
    let top = scaling
        .series
        .iter()
        .flat_map(|(_, cols)| cols.iter().flatten().flatten())
        .fold(cores, |a, &b| a.max(b))
        * 1.6;
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let x = |workers: usize| (workers as f64).log2();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Speedup of {} CPU-bound tasks (~{:.0} ms each) over a plain loop, {} cores",
                scaling.tasks,
                scaling.task_ms(),
                scaling.cores
            ),
            ("sans-serif", 17),
        )
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(52)
        .build_cartesian_2d(-0.25f64..4.25f64, 0f64..top)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_labels(5)
        .x_label_formatter(&|v| format!("{}", 2f64.powf(*v).round()))
        .x_desc("workers")
        .y_desc("speedup (median; bars: min–max over runs)")
        .draw()?;

    let ideal: Vec<(f64, f64)> = SCALING_WORKERS
        .iter()
        .map(|&w| (x(w), (w as f64).min(cores)))
        .collect();
    chart
        .draw_series(LineSeries::new(
            ideal.clone(),
            BLACK.mix(0.5).stroke_width(1),
        ))?
        .label(format!("ideal: workers, up to {} cores", scaling.cores))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    chart
        .draw_series(LineSeries::new(
            ideal.iter().map(|&(x, y)| (x, 0.9 * y)),
            BLACK.mix(0.25).stroke_width(1),
        ))?
        .label("target: 0.9 × ideal")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.25)));

    let colours = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
    ];
    for (k, (label, cols)) in scaling.series.iter().enumerate() {
        let colour = colours[k % colours.len()];
        let offset = (k as f64 - 1.0) * 0.04;
        let points: Vec<(f64, Summary)> = SCALING_WORKERS
            .iter()
            .zip(cols)
            .filter_map(|(&w, runs)| Some((x(w) + offset, summarise(runs.iter().copied())?)))
            .collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(x, s)| (x, s.median)),
                colour.stroke_width(2),
            ))?
            .label(label.trim_matches('`'))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&(x, s)| {
            ErrorBar::new_vertical(x, s.min, s.median, s.max, colour.stroke_width(1), 6)
        }))?;
        chart.draw_series(
            points
                .iter()
                .map(|&(x, s)| Circle::new((x, s.median), 3, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The machine

fn machine() -> String {
    let (model, virtualised) = cpu_model();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kb: f64 = m
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{:.0} GiB", kb / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "? GiB".to_string());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!(
        "{cores} {} ({model}){}, {memory}, {os}, Linux {kernel}; {}; {}; {}",
        if virtualised { "vCPUs" } else { "cores" },
        if virtualised {
            ", a virtual machine"
        } else {
            ""
        },
        first_line("rustc", &["--version"]),
        first_line("python3", &["--version"]),
        first_line("ldd", &["--version"])
            .rsplit(' ')
            .next()
            .map(|v| format!("glibc {v}"))
            .unwrap_or_default(),
    )
}

// ---------------------------------------------------------------------------------------------
// The report

struct Report {
    /// Tiny tasks, 1 MiB, 64 MiB, start-up, map: in that order.
    tables: Vec<Table>,
    cpu: CpuTable,
    scaling: Scaling,
    load_before: String,
    load_after: String,
    /// Cores used by other processes during the whole run (see [`Meter`]).
    others: f64,
    minutes: f64,
}

/// One target of the issue: what, the figure, and whether it is met.
struct Target {
    what: &'static str,
    figure: String,
    met: Option<bool>,
}

impl Report {
    fn table(&self, index: usize) -> &Table {
        &self.tables[index]
    }

    fn markdown(&self, settings: &Settings) -> String {
        let mut md = String::new();
        let date = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
        let _ = writeln!(
            md,
            "*Generated by `{}` on {date}; do not edit between the markers: the next run \
             replaces it.*\n",
            settings.command()
        );
        let _ = writeln!(md, "- Machine: {}.", machine());
        let _ = writeln!(
            md,
            "- Command: `{}` ({} run{}, the whole report in {:.1} min). Every figure is the \
             median over the runs, with the fastest and slowest run in brackets; every ratio \
             is taken within each run (the two peers ran seconds apart) and then summarised \
             the same way.",
            settings.command(),
            settings.runs,
            if settings.runs == 1 { "" } else { "s" },
            self.minutes
        );
        let _ = writeln!(
            md,
            "- Load average (1, 5, 15 min) before the run: {}; after: {}. Other processes kept \
             {} of the {} cores busy on average during the run (the machine's busy time less \
             this run's own and its children's; each table gives its own figure; each run \
             waited, up to 2 minutes, for other processes to use under 0.1 cores).\n",
            self.load_before,
            self.load_after,
            sig(self.others),
            self.scaling.cores
        );
        if settings.quick {
            let _ = writeln!(
                md,
                "**Quick mode**: one run, `map` over 100,000 items. Not for the record.\n"
            );
        }

        let _ = writeln!(md, "### Targets (issue 6)\n");
        let _ = writeln!(md, "| target | figure (median over runs, min–max) | |");
        let _ = writeln!(md, "|---|---|---|");
        for t in self.targets() {
            let verdict = match t.met {
                Some(true) => "**met**",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(md, "| {} | {} | {verdict} |", t.what, t.figure);
        }
        md.push('\n');

        for table in &self.tables {
            write_table(&mut md, table);
        }
        self.write_cpu(&mut md);
        self.write_scaling(&mut md);
        wrap_markdown(&md)
    }

    fn write_cpu(&self, md: &mut String) {
        let cpu = &self.cpu;
        let _ = writeln!(
            md,
            "### CPU-bound tasks: {CPU_TASKS} calls of about {} ms on {WORKERS} workers\n",
            sig(CPU_TASK_SECONDS * 1e3)
        );
        let _ = writeln!(md, "{}\n", cpu.about);
        let _ = writeln!(md, "{}\n", others_line(cpu.others));
        let _ = writeln!(
            md,
            "| peer | wall time, ms | speedup over the plain loop | speedup ÷ workers |"
        );
        let _ = writeln!(md, "|---|---|---|---|");
        let groups = [
            (&cpu.sequential, &cpu.rows),
            (&cpu.python_sequential, &cpu.python_rows),
        ];
        for (baseline, rows) in groups {
            let base = baseline.costs();
            if let Some(s) = summarise(base.iter().copied()) {
                let _ = writeln!(
                    md,
                    "| {} | {} | 1 | |",
                    baseline.label,
                    show_summary(s, Unit::Millis)
                );
            }
            for row in rows.iter() {
                let costs = row.costs();
                let Some(time) = summarise(costs.iter().copied()) else {
                    let _ = writeln!(md, "| {} | did not run | | |", row.label);
                    continue;
                };
                let speedup = summarise(ratios(&base, &costs));
                let per_worker = speedup.map(|s| Summary {
                    median: s.median / WORKERS as f64,
                    min: s.min / WORKERS as f64,
                    max: s.max / WORKERS as f64,
                });
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    row.label,
                    show_summary(time, Unit::Millis),
                    speedup.map(show_ratio).unwrap_or_default(),
                    per_worker.map(show_ratio).unwrap_or_default()
                );
            }
        }
        md.push('\n');
    }

    fn write_scaling(&self, md: &mut String) {
        let s = &self.scaling;
        let _ = writeln!(
            md,
            "### Scaling: {} CPU-bound tasks against workers\n",
            s.tasks
        );
        let _ = writeln!(
            md,
            "{} calls of the same ~{:.0} ms function as above, through each backend with 1 to \
             16 workers; the speedup is the time of a plain loop over the same calls divided \
             by the pool's (the plain loop is timed next to each worker count, and the fastest \
             of the run is the baseline, so a disturbed plain loop cannot inflate a speedup). \
             `pool!` includes start-up; rayon's pools are built outside the timing. This \
             machine has {} cores, so the ideal speedup is the number of workers up to {}, \
             and flat beyond: more workers than cores only share them, and the speedup \
             flattens past {} workers as expected.\n",
            s.tasks,
            s.task_ms(),
            s.cores,
            s.cores,
            s.cores
        );
        let _ = writeln!(md, "{}\n", others_line(s.others));
        let _ = writeln!(md, "![speedup against workers](benchmarks-scaling.svg)\n");
        let mut header = String::from("| workers | ideal |");
        let mut rule = String::from("|---|---|");
        for (label, _) in &s.series {
            let _ = write!(header, " {label} |");
            rule.push_str("---|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for (i, &w) in SCALING_WORKERS.iter().enumerate() {
            let mut line = format!("| {w} | {} |", w.min(s.cores));
            for (_, cols) in &s.series {
                let cell = summarise(cols[i].iter().copied())
                    .map(show_ratio)
                    .unwrap_or_default();
                let _ = write!(line, " {cell} |");
            }
            let _ = writeln!(md, "{line}");
        }
        md.push('\n');
    }

    fn targets(&self) -> Vec<Target> {
        let tiny = self.table(0);
        let one_mib = self.table(1);
        let startup = self.table(3);
        let mut out = Vec::new();

        // A ratio between two rows of a table (a's cost ÷ b's cost), per run.
        let ratio = |table: &Table, a: &str, b: &str| -> Option<Summary> {
            summarise(ratios(&table.row(a)?.costs(), &table.row(b)?.costs()))
        };
        let at_least = |what, s: Option<Summary>, goal: f64, phrase: &str| Target {
            what,
            figure: s.map_or_else(
                || "not measured".to_string(),
                |s| format!("{} {phrase}", show_ratio(s)),
            ),
            met: s.map(|s| s.median >= goal),
        };

        for (what, thread, rayon) in [
            (
                "`pool!(Thread)` tiny tasks no slower than rayon: first block or scope of a run",
                THREAD,
                RAYON,
            ),
            (
                "`pool!(Thread)` tiny tasks no slower than rayon: back to back",
                THREAD_WARM,
                RAYON_WARM,
            ),
        ] {
            let s = ratio(tiny, thread, rayon);
            out.push(Target {
                what,
                figure: s.map_or_else(
                    || "not measured".to_string(),
                    |s| format!("`pool!(Thread)` takes {} rayon's time", show_ratio(s)),
                ),
                met: s.map(|s| s.median <= 1.0),
            });
        }
        out.push(at_least(
            "`pool!(Thread)` tiny tasks ≥ 20× faster than Python's `ThreadPoolExecutor`",
            ratio(tiny, PY_THREAD, THREAD),
            20.0,
            "faster",
        ));
        out.push(at_least(
            "`pool!(Process)` tiny tasks ≥ 10× Python's `ProcessPoolExecutor` (fork)",
            ratio(tiny, PY_FORK, PROCESS),
            10.0,
            "faster",
        ));
        out.push(at_least(
            "`pool!(Process)` tiny tasks ≥ 10× Python's `ProcessPoolExecutor` (spawn)",
            ratio(tiny, PY_SPAWN, PROCESS),
            10.0,
            "faster",
        ));
        out.push(at_least(
            "`pool!(Process)` tiny tasks ≥ procspawn",
            ratio(tiny, PROCSPAWN, PROCESS),
            1.0,
            "faster",
        ));
        let s = ratio(tiny, PROCESS, PIPE);
        out.push(Target {
            what: "`pool!(Process)` tiny tasks within 3× of the pipe ping-pong",
            figure: s.map_or_else(
                || "not measured".to_string(),
                |s| format!("a task costs {} of a round trip", show_ratio(s)),
            ),
            met: s.map(|s| s.median <= 3.0),
        });
        let rate = one_mib
            .row(PROCESS)
            .and_then(|r| summarise(r.costs()))
            .map(|s| Unit::Rate.show(s.median));
        out.push(Target {
            what: "`pool!(Process)` 1 MiB payloads ≥ 2.5 GB/s",
            figure: one_mib
                .row(PROCESS)
                .and_then(|r| summarise(r.costs()))
                .map_or_else(
                    || "not measured".to_string(),
                    |s| format!("{} GB/s", show_summary(s, Unit::Rate)),
                ),
            met: rate.map(|r| r >= 2.5),
        });
        for backend in [PROCESS, THREAD] {
            let s = startup.row(backend).and_then(|r| summarise(r.costs()));
            out.push(Target {
                what: if backend == PROCESS {
                    "`pool!(Process)` start-up of 2 workers ≤ 5 ms"
                } else {
                    "`pool!(Thread)` start-up of 2 workers ≤ 5 ms"
                },
                figure: s.map_or_else(
                    || "not measured".to_string(),
                    |s| format!("{} ms", show_summary(s, Unit::Millis)),
                ),
                met: s.map(|s| s.median * 1e3 <= 5.0),
            });
        }
        for (label, cols) in &self.scaling.series {
            for (i, &w) in SCALING_WORKERS.iter().enumerate() {
                if w > self.scaling.cores {
                    continue;
                }
                let s = summarise(cols[i].iter().copied());
                out.push(Target {
                    what: match (*label, w) {
                        (THREAD, 1) => {
                            "CPU-bound speedup ≥ 0.9 × workers: `pool!(Thread)`, 1 worker"
                        }
                        (THREAD, _) => {
                            "CPU-bound speedup ≥ 0.9 × workers: `pool!(Thread)`, all cores"
                        }
                        (PROCESS, 1) => {
                            "CPU-bound speedup ≥ 0.9 × workers: `pool!(Process)`, 1 worker"
                        }
                        (PROCESS, _) => {
                            "CPU-bound speedup ≥ 0.9 × workers: `pool!(Process)`, all cores"
                        }
                        (_, 1) => "CPU-bound speedup ≥ 0.9 × workers: rayon, 1 worker",
                        _ => "CPU-bound speedup ≥ 0.9 × workers: rayon, all cores",
                    },
                    figure: s.map_or_else(
                        || "not measured".to_string(),
                        |s| format!("{} with {w} (goal {})", show_ratio(s), sig(0.9 * w as f64)),
                    ),
                    met: s.map(|s| s.median >= 0.9 * w as f64),
                });
            }
        }
        out
    }
}

/// Wraps the report's prose at 106 columns, as the rest of `BENCHMARKS.md` is wrapped; table rows,
/// headings and images stay on one line.
fn wrap_markdown(md: &str) -> String {
    const WIDTH: usize = 106;
    let mut out = String::new();
    for line in md.lines() {
        if line.chars().count() <= WIDTH || line.starts_with(['|', '#', '!']) {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let indent = if line.starts_with("- ") { "  " } else { "" };
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > WIDTH {
                out.push_str(&current);
                out.push('\n');
                current = indent.to_string();
            } else if !current.is_empty() && current != indent {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push_str(&current);
        out.push('\n');
    }
    out
}

fn others_line(cores: f64) -> String {
    format!(
        "*Other processes kept {} cores busy on average while this table ran{}.*",
        sig(cores),
        if cores > 0.2 {
            ": its figures are disturbed"
        } else {
            ""
        }
    )
}

fn write_table(md: &mut String, table: &Table) {
    let _ = writeln!(md, "### {}\n", table.title);
    let _ = writeln!(md, "{}\n", table.about);
    let _ = writeln!(md, "{}\n", others_line(table.others));
    let mut header = format!("| peer | {}: median (min–max) |", table.unit.name());
    let mut rule = String::from("|---|---|");
    for r in &table.refs {
        let _ = write!(header, " cost ÷ {r}'s |");
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for row in &table.rows {
        let costs = row.costs();
        let Some(s) = summarise(costs.iter().copied()) else {
            let _ = writeln!(
                md,
                "| {} | did not run |{}",
                row.label,
                " |".repeat(table.refs.len())
            );
            continue;
        };
        let mut line = format!("| {} | {} |", row.label, show_summary(s, table.unit));
        for r in &table.refs {
            let cell = match table.row(r) {
                Some(reference) if reference.label != row.label => {
                    summarise(ratios(&costs, &reference.costs()))
                        .map(show_ratio)
                        .unwrap_or_default()
                }
                _ => "1".to_string(),
            };
            let _ = write!(line, " {cell} |");
        }
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(
        md,
        "\nA ratio above 1 means the peer took that many times the cost of the `pool!` \
         backend in its column's heading, in the same run.\n"
    );
}

/// Replaces what lies between the markers in `path` (or, with no markers, puts them with the
/// report before the first `## ` section).
fn splice_into(path: &Path, generated: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n\n{}\n{END}", generated.trim_end());
    let updated = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!("{}{block}{}", &text[..begin], &text[end + END.len()..])
        }
        _ => match text.find("\n## ") {
            Some(at) => format!("{}\n{block}\n{}", &text[..at + 1], &text[at + 1..]),
            None => format!("{text}\n{block}\n"),
        },
    };
    std::fs::write(path, updated).expect("BENCHMARKS.md is written");
}
