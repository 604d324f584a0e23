//! The Mpi backend against its peers and its floor, 2 workers, all in one run: 20,000 tiny tasks,
//! 200 tasks with a 1 MiB argument (prebuilt, and cloned into `submit`), 200 with a 1 MiB result
//! (made by copying a prebuilt vector, and built with `vec!`), start-up, and `map` over 20,000 items (chunks of 100), through
//! `pool!(Mpi)` launched (`mpirun -n 3`; once more with rank 0's heap on transparent huge pages,
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, and once with rank 0 keeping the memory it frees,
//! `MALLOC_TRIM_THRESHOLD_` and `MALLOC_MMAP_THRESHOLD_`) and singleton (spawned workers),
//! `pool!(Process)`, and
//! `mpi4py.futures` (`benches/python/mpi_futures.py`, launched with `mpirun -n 3 python3 -m
//! mpi4py.futures`, when mpi4py is installed); the floor is an rsmpi ping-pong between two
//! processes, over shared memory and over TCP.
//!
//! Run: `cargo bench --features mpi --bench mpi` (Open MPI and, for the Python column,
//! `pip install mpi4py`). As root, set `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`.
//! `BENCHMARKS.md` records the figures.
//!
//! The binary plays several parts, picked by its first argument: with none it is the conductor,
//! which runs the others and prints the table; `--measure NAME` measures `pool!(Mpi)` in this
//! process (launched or alone), `--measure-process` the same through `pool!(Process)`;
//! `--pingpong` and `--pingpong-child` are the floor, `--cma` times the system call under its large
//! messages alone (`mpi/cma.rs`). `MPI_BENCH_ONLY=arguments` (or `results`,
//! `tiny`, `map`) measures one row alone, and `MPI_BENCH_WORKERS=n` sets the workers (2), for
//! `perf` and for probes; `MPI_BENCH_SAMPLES=1` prints each row's samples, not only their median, and
//! `MPI_BENCH_RUNS=n` takes n samples of each (5).

#[path = "mpi/cma.rs"]
mod cma;
#[path = "mpi/floor.rs"]
mod floor;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use concurrent_futures::pool;

const TASKS: usize = 20_000;
const PAYLOADS: usize = 200;
const MAP_ITEMS: u64 = 20_000;
const CHUNK: usize = 100;
static WORKERS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("MPI_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2)
});
/// Samples per row; `MPI_BENCH_RUNS=n` sets more, for probes that need the rows to last.
static RUNS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("MPI_BENCH_RUNS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(5)
});

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn add_one(a: u64) -> u64 {
    a + 1
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// A 1 MiB result: made by copying a prebuilt vector (as the argument rows copy nothing to make
/// theirs, this costs the worker one `memcpy` more than them).
fn mebibyte(seed: u8) -> Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let mut bytes = BYTES.get_or_init(|| vec![7u8; 1 << 20]).clone();
    bytes[0] = seed;
    bytes
}

/// A 1 MiB result built in the worker without a copy (`vec![seed; n]`: one pass of writes), as
/// the report's Process results are: beside `mebibyte`, it shows what the extra copy costs.
fn built(seed: u8) -> Vec<u8> {
    vec![seed | 1; 1 << 20]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--measure") => measure_mpi(),
        Some("--measure-process") => measure_process(),
        Some("--pingpong") => floor::ping_pong(),
        Some("--pingpong-child") => floor::ping_pong_child(),
        Some("--cma") => cma::cma(),
        _ => conduct(),
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    if std::env::var_os("MPI_BENCH_SAMPLES").is_some() {
        eprintln!("samples: {samples:.2?}");
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

/// Prints one figure in the form the conductor collects.
fn report(what: &str, value: f64) {
    println!("RESULT {what} {value}");
}

macro_rules! measure_backend {
    ($backend:ident) => {{
        // Start-up: the first block of the process, one task.
        let started = Instant::now();
        let one = pool!($backend(max_workers = *WORKERS) => { submit(add, 1, 1).result().unwrap() });
        report("startup_ms", started.elapsed().as_secs_f64() * 1e3);
        assert_eq!(one, 2);

        // `MPI_BENCH_ONLY=arguments` (or `results`, `tiny`, `map`) measures one row alone, for
        // `perf` to count what that row does.
        let only = std::env::var("MPI_BENCH_ONLY").ok();
        let wanted = |row: &str| only.as_deref().is_none_or(|o| o.split(',').any(|o| o == row));
        if wanted("tiny") {
        let tiny: Vec<f64> = (0..*RUNS)
            .map(|_| {
                let started = Instant::now();
                let out: Vec<u64> = pool!($backend(max_workers = *WORKERS) => {
                    let futures: Vec<_> = (0..TASKS as u64).map(|i| submit(add, i, 1)).collect();
                    futures.into_iter().map(|f| f.result().unwrap()).collect()
                });
                assert_eq!(out.len(), TASKS);
                started.elapsed().as_secs_f64() * 1e6 / TASKS as f64
            })
            .collect();
        report("tiny_us_per_task", median(tiny));
        }
        if wanted("arguments") {

        let payload = vec![7u8; 1 << 20];
        let bytes: Vec<f64> = (0..*RUNS)
            .map(|_| {
                let payloads = vec![payload.clone(); PAYLOADS];
                let started = Instant::now();
                let total: usize = pool!($backend(max_workers = *WORKERS) => {
                    let futures: Vec<_> = payloads.into_iter().map(|p| submit(length, p)).collect();
                    futures.into_iter().map(|f| f.result().unwrap()).sum()
                });
                assert_eq!(total, PAYLOADS << 20);
                (PAYLOADS << 20) as f64 / started.elapsed().as_secs_f64() / 1e9
            })
            .collect();
        report("mib_gb_per_s", median(bytes));
        // The same, each argument cloned into `submit` inside the timing: one pass to make each
        // payload, as the built results below pay (and as the report's Process rows compare).
        let bytes: Vec<f64> = (0..*RUNS)
            .map(|_| {
                let started = Instant::now();
                let total: usize = pool!($backend(max_workers = *WORKERS) => {
                    let futures: Vec<_> =
                        (0..PAYLOADS).map(|_| submit(length, payload.clone())).collect();
                    futures.into_iter().map(|f| f.result().unwrap()).sum()
                });
                assert_eq!(total, PAYLOADS << 20);
                (PAYLOADS << 20) as f64 / started.elapsed().as_secs_f64() / 1e9
            })
            .collect();
        report("mib_cloned_gb_per_s", median(bytes));
        }
        if wanted("results") {

        let makers: [(fn(u8) -> Vec<u8>, &str); 2] = [
            (mebibyte, "mib_results_gb_per_s"),
            (built, "mib_built_results_gb_per_s"),
        ];
        for (make, key) in makers {
            let results: Vec<f64> = (0..*RUNS)
                .map(|_| {
                    let started = Instant::now();
                    let total: usize = pool!($backend(max_workers = *WORKERS) => {
                        let futures: Vec<_> = (0..PAYLOADS).map(|i| submit(make, i as u8)).collect();
                        futures.into_iter().map(|f| f.result().unwrap().len()).sum()
                    });
                    assert_eq!(total, PAYLOADS << 20);
                    (PAYLOADS << 20) as f64 / started.elapsed().as_secs_f64() / 1e9
                })
                .collect();
            report(key, median(results));
        }
        }
        if wanted("map") {

        let mapped: Vec<f64> = (0..*RUNS)
            .map(|_| {
                let started = Instant::now();
                let sum: u64 = pool!($backend(max_workers = *WORKERS) => {
                    map(add_one, 0..MAP_ITEMS, CHUNK).map(Result::unwrap).sum()
                });
                assert_eq!(sum, MAP_ITEMS * (MAP_ITEMS + 1) / 2);
                started.elapsed().as_secs_f64() * 1e6 / MAP_ITEMS as f64
            })
            .collect();
        report("map_us_per_item", median(mapped));
        }
    }};
}

/// `pool!(Mpi)` in this process: under `mpirun -n 3`, or alone (the first block spawns).
fn measure_mpi() {
    measure_backend!(Mpi);
}

fn measure_process() {
    measure_backend!(Process);
}

/// Runs a part of this benchmark (or the Python one) and collects its `RESULT` lines.
fn collect(mut command: Command, what: &str) -> BTreeMap<String, f64> {
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    let started = Instant::now();
    let output = match command.output() {
        Ok(output) => output,
        Err(error) => {
            println!("{what}: could not run: {error}");
            return BTreeMap::new();
        }
    };
    let mut figures = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut words = line.split_whitespace();
        if let (Some("RESULT"), Some(name), Some(value)) =
            (words.next(), words.next(), words.next())
        {
            if let Ok(value) = value.parse() {
                figures.insert(name.to_string(), value);
            }
        }
    }
    figures.insert("wall_s".to_string(), started.elapsed().as_secs_f64());
    if !output.status.success() {
        println!(
            "{what}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    figures
}

/// The launched run whose rank 0 allocates on huge pages, and the setting that makes it so.
const HUGE_PAGES: &str = "pool!(Mpi) launched, rank 0's heap on huge pages";
const HUGE_PAGE_HEAP: &str = "GLIBC_TUNABLES=glibc.malloc.hugetlb=1";
/// The launched run whose rank 0 keeps the memory it frees, and the settings that make it so:
/// glibc then neither gives a block's freed arguments back to the kernel at the block's end
/// (12-22 ms in `brk` for 200 MiB after the tiny-task row) nor maps 1 MiB buffers on their own.
const KEPT_HEAP: &str = "pool!(Mpi) launched, rank 0 keeps freed memory";
const KEEP_FREED: [&str; 2] = [
    "MALLOC_TRIM_THRESHOLD_=1073741824",
    "MALLOC_MMAP_THRESHOLD_=33554432",
];

fn conduct() {
    let exe = std::env::current_exe().unwrap();
    let mpirun = |args: &[&str]| {
        let mut command = Command::new("mpirun");
        command.args(["--oversubscribe"]).args(args);
        command
    };
    let mut columns: Vec<(&str, BTreeMap<String, f64>)> = Vec::new();

    let mut launched = mpirun(&["-n", "3"]);
    launched.arg(&exe).arg("--measure");
    columns.push(("pool!(Mpi) launched", collect(launched, "launched")));

    // The same, with the pool's process (rank 0) allocating on transparent huge pages: Open MPI
    // copies a large argument out of the caller's memory a page at a time (CMA), and 4 KiB pages
    // cost the workers more than the copy itself (`follow_page_pte` above `_copy_to_iter` in
    // `perf`). A setting of the user's program, not of the pool: the row shows what it buys.
    // Launched, with `settings` (variables) given to rank 0 alone.
    let rank_0_with = |settings: &[&str]| {
        let mut command = mpirun(&["-n", "1"]);
        for setting in settings {
            command.args(["-x", setting]);
        }
        command.arg(&exe).arg("--measure").args([":", "-n", "2"]);
        command.arg(&exe).arg("--measure");
        command
    };
    let huge = rank_0_with(&[HUGE_PAGE_HEAP]);
    columns.push((HUGE_PAGES, collect(huge, "launched, huge pages")));

    // The same, with rank 0 keeping what it frees: also a setting of the user's program.
    let kept = rank_0_with(&KEEP_FREED);
    columns.push((KEPT_HEAP, collect(kept, "launched, freed memory kept")));

    let mut alone = Command::new(&exe);
    alone.arg("--measure");
    columns.push(("pool!(Mpi) singleton", collect(alone, "singleton")));

    let mut tcp = mpirun(&["--mca", "btl", "tcp,self", "-n", "3"]);
    tcp.arg(&exe).arg("--measure");
    columns.push((
        "pool!(Mpi) launched, TCP",
        collect(tcp, "launched over TCP"),
    ));

    let mut process = Command::new(&exe);
    process.arg("--measure-process");
    columns.push(("pool!(Process)", collect(process, "process")));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/mpi_futures.py");
    let has_mpi4py = Command::new("python3")
        .args(["-c", "import mpi4py"])
        .status()
        .is_ok_and(|s| s.success());
    if has_mpi4py {
        let mut python = mpirun(&["-n", "3"]);
        python.args(["python3", "-m", "mpi4py.futures", script]);
        columns.push((
            "mpi4py.futures launched",
            collect(python, "mpi4py launched"),
        ));
        let mut python = Command::new("python3");
        // mpi4py does not ask for oversubscription when it spawns: the user must.
        python
            .args([script, "--startup-only"])
            .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
        columns.push((
            "mpi4py.futures singleton",
            collect(python, "mpi4py singleton"),
        ));
    } else {
        println!("mpi4py is not installed (pip install mpi4py): no Python column");
    }

    let mut floor = mpirun(&["-n", "2", "-x", "EXECUTOR_MPI_RANKS_RUN_MAIN=1"]);
    floor.arg(&exe).arg("--pingpong");
    columns.push((
        "rsmpi ping-pong, shared memory",
        collect(floor, "ping-pong"),
    ));
    let mut floor = mpirun(&[
        "--mca",
        "btl",
        "tcp,self",
        "-n",
        "2",
        "-x",
        "EXECUTOR_MPI_RANKS_RUN_MAIN=1",
    ]);
    floor.arg(&exe).arg("--pingpong");
    columns.push(("rsmpi ping-pong, TCP", collect(floor, "ping-pong over TCP")));
    let mut floor = Command::new(&exe);
    floor.arg("--pingpong");
    columns.push((
        "rsmpi ping-pong, spawned",
        collect(floor, "ping-pong, spawned"),
    ));

    let mut cma = Command::new(&exe);
    cma.arg("--cma");
    let cma = collect(cma, "CMA");

    println!();
    println!("| run | start-up (ms) | tiny task (µs) | 1 MiB arguments (GB/s) | 1 MiB arguments cloned into `submit` (GB/s) | 1 MiB results (GB/s) | 1 MiB results built without a copy (GB/s) | map, chunks of 100 (µs/item) | ping-pong round trip (µs) | ping-pong 1 MiB, one buffer (GB/s) | ping-pong 1 MiB, 200 buffers (GB/s) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, figures) in &columns {
        let cell = |key: &str, digits: usize| {
            figures
                .get(key)
                .map_or("–".to_string(), |v| format!("{v:.digits$}"))
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell("startup_ms", 0),
            cell("tiny_us_per_task", 2),
            cell("mib_gb_per_s", 2),
            cell("mib_cloned_gb_per_s", 2),
            cell("mib_results_gb_per_s", 2),
            cell("mib_built_results_gb_per_s", 2),
            cell("map_us_per_item", 2),
            cell("pingpong_us", 2),
            cell("pingpong_mib_gb_per_s", 2),
            cell("pingpong_distinct_mib_gb_per_s", 2),
        );
    }
    let ratio = |a: &str, b: &str, key: &str| -> Option<f64> {
        let get = |name: &str| columns.iter().find(|c| c.0 == name)?.1.get(key).copied();
        Some(get(a)? / get(b)?)
    };
    for (mode, floor) in [
        ("pool!(Mpi) launched", "rsmpi ping-pong, shared memory"),
        (HUGE_PAGES, "rsmpi ping-pong, shared memory"),
        (KEPT_HEAP, "rsmpi ping-pong, shared memory"),
        ("pool!(Mpi) launched, TCP", "rsmpi ping-pong, TCP"),
        ("pool!(Mpi) singleton", "rsmpi ping-pong, spawned"),
    ] {
        let get = |name: &str, key: &str| columns.iter().find(|c| c.0 == name)?.1.get(key).copied();
        if let (
            Some(arguments),
            Some(cloned),
            Some(results),
            Some(built),
            Some(one),
            Some(distinct),
        ) = (
            get(mode, "mib_gb_per_s"),
            get(mode, "mib_cloned_gb_per_s"),
            get(mode, "mib_results_gb_per_s"),
            get(mode, "mib_built_results_gb_per_s"),
            get(floor, "pingpong_mib_gb_per_s"),
            get(floor, "pingpong_distinct_mib_gb_per_s"),
        ) {
            println!(
                "{mode}: 1 MiB arguments at {:.2} of the floor ({floor}, one buffer; target: at \
                 least 0.5) and {:.2} of it from 200 buffers; results (target: at least as fast \
                 as arguments): cloned results at {:.2} of prebuilt arguments, built results at \
                 {:.2} of arguments cloned into submit (each making its payload once in the timing)",
                arguments / one,
                arguments / distinct,
                results / arguments,
                built / cloned
            );
        }
    }
    let get = |name: &str, key: &str| columns.iter().find(|c| c.0 == name)?.1.get(key).copied();
    if let (Some(small), Some(huge), Some(one)) = (
        cma.get("cma_distinct_gb_per_s"),
        cma.get("cma_distinct_huge_gb_per_s"),
        cma.get("cma_one_buffer_gb_per_s"),
    ) {
        println!(
            "\nCMA alone (process_vm_readv, the copy under large messages on one host), 200 MiB \
             pulled by 2 processes from 200 distinct 1 MiB buffers of a third: {small:.2} GB/s on \
             4 KiB pages, {huge:.2} on huge pages; by 1 process from one buffer: {one:.2}"
        );
        if let (Some(plain), Some(advised)) = (
            get("pool!(Mpi) launched", "mib_gb_per_s"),
            get(HUGE_PAGES, "mib_gb_per_s"),
        ) {
            println!(
                "1 MiB arguments at {:.2} of CMA's rate on 4 KiB pages (pool!(Mpi) launched) and \
                 {:.2} of it on huge pages ({HUGE_PAGES})",
                plain / small,
                advised / huge
            );
        }
    }
    if let Some(r) = ratio(
        "mpi4py.futures launched",
        "pool!(Mpi) launched",
        "tiny_us_per_task",
    ) {
        println!(
            "\ntiny tasks, mpi4py.futures / pool!(Mpi) launched: {r:.0}x (target: at least 20x)"
        );
    }
}
