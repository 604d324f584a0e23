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
//! The binary run as `report --one-block thread` (or `rayon`) runs one block of the tiny tasks and
//! exits: what the system-calls table counts, and a probe for `perf stat` by hand.
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
//! The bench's parts, under `benches/report/`: `settings.rs`; `figures.rs` (a table's rows, and
//! how figures show); the peers (`peers.rs`, `python.rs`); one file per workload (`tiny_tasks.rs`,
//! `payloads.rs`, `cpu_bound.rs`, `startup.rs`, `mapping.rs`, `scaling.rs`, and `syscalls.rs`, the
//! system calls of one fresh block of tiny tasks); and the output
//! (`markdown.rs`, `targets.rs`, `svg.rs`). The statistics, the [`Meter`], the CPU-bound task,
//! the environment's switches and the splicing into `BENCHMARKS.md` are shared with the `auto`
//! bench (`benches/common/`).

use std::time::Instant;

mod common;
#[path = "report/cpu_bound.rs"]
mod cpu_bound;
#[path = "report/figures.rs"]
mod figures;
#[path = "report/huge_pages.rs"]
mod huge_pages;
#[path = "report/mapping.rs"]
mod mapping;
#[path = "report/markdown.rs"]
mod markdown;
#[path = "report/payloads.rs"]
mod payloads;
#[path = "report/peers.rs"]
mod peers;
#[path = "report/python.rs"]
mod python;
#[path = "report/scaling.rs"]
mod scaling;
#[path = "report/settings.rs"]
mod settings;
#[path = "report/startup.rs"]
mod startup;
#[path = "report/svg.rs"]
mod svg;
#[path = "report/syscalls.rs"]
mod syscalls;
#[path = "report/targets.rs"]
mod targets;
#[path = "report/tiny_tasks.rs"]
mod tiny_tasks;

use common::cpu_task::calibrate;
use common::machine::{load_average, Meter};
use common::markdown::{splice_into, Section};
use cpu_bound::{cpu_bound, cpu_bound_run};
use mapping::{mapping, mapping_run};
use markdown::Report;
use payloads::{payloads, payloads_run};
use peers::rayon_pool;
use scaling::{scaling, scaling_run};
use settings::Settings;
use startup::{startup, startup_run};
use syscalls::{one_block, syscalls, syscalls_run, ONE_BLOCK};
use tiny_tasks::{tiny_tasks, tiny_tasks_run};

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
/// How many blocks (or scopes) in a row make one back-to-back figure.
const BACK_TO_BACK: usize = 20;
/// Start-up samples per run.
const STARTUP_PER_RUN: usize = 4;

/// The report's part of `BENCHMARKS.md`.
const SECTION: Section = Section {
    begin: "<!-- report:begin -->",
    end: "<!-- report:end -->",
    blank_line_before_end: false,
    heading: None,
};

fn main() {
    // procspawn needs this first thing in `main` (its workers re-run this binary); `pool!` needs
    // nothing.
    procspawn::init();
    // The child that `syscalls` counts: one block, nothing else.
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == ONE_BLOCK) {
        one_block(args.get(at + 1).map_or("thread", String::as_str));
        return;
    }
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
    let mut calls = syscalls(&settings);
    // Each run goes through every table once, so a burst of other work on the machine costs one
    // run of a few tables rather than every run of one table; the meters say how much there was.
    let mut meters = [Meter::default(); 8];
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
            meters[7].measure(|| syscalls_run(&mut calls, run));
        });
    }
    for (table, meter) in [
        &mut tiny,
        &mut one_mib,
        &mut big,
        &mut startup,
        &mut map,
        &mut calls,
    ]
    .into_iter()
    .zip([
        meters[0], meters[1], meters[2], meters[4], meters[5], meters[7],
    ]) {
        table.others = meter.cores();
    }
    cpu.others = meters[3].cores();
    scaling.others = meters[6].cores();

    let report = Report {
        tables: vec![tiny, one_mib, big, startup, map, calls],
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
    svg::write_scaling_svg(&report.scaling, &settings.svg).expect("the SVG is written");
    splice_into(&settings.markdown, &SECTION, &markdown);
    eprintln!(
        "report: wrote {} and {} in {:.1} min",
        settings.markdown.display(),
        settings.svg.display(),
        report.minutes
    );
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
