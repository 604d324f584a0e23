//! System calls per task (issue 16): one fresh block of 20,000 `add(i, 1)` on 2 workers, results
//! read in order, counted by the kernel's syscall tracepoints. A count, unlike a time, holds on any
//! machine: where waking a CPU is slow (most virtual machines), each `futex` or `sched_yield` per
//! task costs microseconds.
//!
//! The block runs in a child process (this binary, re-run with [`ONE_BLOCK`]), so that the count
//! covers that block alone, from a fresh start: the child does nothing else but start up. `perf
//! stat` counts; where it is missing or not allowed, `strace -f -c` (which slows the child, so its
//! counts are higher).

use std::process::Command;

use concurrent_futures::pool;

use crate::figures::{sig, Row, Table, Unit};
use crate::peers::rayon_pool;
use crate::settings::Settings;
use crate::tiny_tasks::add;
use crate::{TINY_TASKS, WORKERS};

/// The argument that makes this binary run one block and exit: `--one-block thread|rayon`.
pub(crate) const ONE_BLOCK: &str = "--one-block";

/// The rows: futex + `sched_yield` calls, then context switches, for each of the two peers.
pub(crate) const THREAD_CALLS: &str = "`pool!(Thread)`: `futex` + `sched_yield` calls";
const RAYON_CALLS: &str = "rayon: `futex` + `sched_yield` calls";
const THREAD_SWITCHES: &str = "`pool!(Thread)`: context switches";
const RAYON_SWITCHES: &str = "rayon: context switches";
/// The heavy side of the fence between the block's submits and a worker going to sleep
/// (`asymmetric_fence` in the runtime): one call each time a worker goes to sleep, and two when
/// the process starts (to register).
const THREAD_MEMBARRIER: &str = "`pool!(Thread)`: `membarrier` calls";
const THREAD_MEMBARRIER_ROW: usize = 4;

/// What one child process made.
struct Counts {
    futex: f64,
    sched_yield: f64,
    membarrier: Option<f64>,
    switches: Option<f64>,
}

pub(crate) fn syscalls(settings: &Settings) -> Table {
    let runs = settings.runs;
    let items = TINY_TASKS as f64;
    Table {
        title: format!(
            "System calls of one fresh block: {} calls of `a + b`",
            sig(items)
        ),
        about: format!(
            "Counts per task, not times: one block (or rayon scope) of {} calls of `add(i, 1)` \
             on {WORKERS} workers, results read in submission order, in a fresh child process, \
             counted with `perf stat -e syscalls:sys_enter_futex,syscalls:sys_enter_sched_yield,\
             syscalls:sys_enter_membarrier,context-switches` over the whole child (its start-up, rayon's pool and the \
             block's workers included; where perf is missing, `strace -f -c`, which slows the \
             child and counts more, and no context switches). A count depends on how the threads race, not on how \
             fast the machine is, so it holds on any machine; each call where the kernel wakes \
             a CPU costs microseconds on most virtual machines.",
            sig(items)
        ),
        unit: Unit::PerItem(1.0, "calls/task"),
        rows: [
            THREAD_CALLS,
            RAYON_CALLS,
            THREAD_SWITCHES,
            RAYON_SWITCHES,
            THREAD_MEMBARRIER,
        ]
            .map(|label| Row::new(label, runs, items))
            .into(),
        refs: vec![],
        others: 0.0,
    }
}

pub(crate) fn syscalls_run(table: &mut Table, run: usize) {
    for (peer, calls, switches) in [("thread", 0, 2), ("rayon", 1, 3)] {
        let Some(counts) = count(peer) else { continue };
        // `Row::seconds` holds the figure a row's cost is made of; here, a count.
        table.rows[calls].seconds[run] = Some(counts.futex + counts.sched_yield);
        table.rows[switches].seconds[run] = counts.switches;
        if peer == "thread" {
            table.rows[THREAD_MEMBARRIER_ROW].seconds[run] = counts.membarrier;
        }
    }
}

/// In the child: one block of the peer, results read in order.
pub(crate) fn one_block(peer: &str) {
    let n = TINY_TASKS as u64;
    let out: Vec<u64> = match peer {
        "thread" => pool!(Thread(max_workers = WORKERS) => {
            let futures: Vec<_> = (0..n).map(|i| submit(add, i, 1)).collect();
            futures.into_iter().map(|f| f.result().unwrap()).collect()
        }),
        "rayon" => {
            let rayon = rayon_pool(WORKERS);
            let mut out = vec![0u64; n as usize];
            rayon.scope(|scope| {
                for (i, slot) in out.iter_mut().enumerate() {
                    scope.spawn(move |_| *slot = add(i as u64, 1));
                }
            });
            out
        }
        other => panic!("{ONE_BLOCK}: no peer {other:?} (thread or rayon)"),
    };
    assert_eq!(out, (1..=n).collect::<Vec<_>>());
}

/// Runs one block of `peer` in a child and counts its calls, with perf or else strace. perf is
/// asked for `membarrier` too, and asked again without it where that tracepoint is missing.
fn count(peer: &str) -> Option<Counts> {
    let me = std::env::current_exe().ok()?;
    const EVENTS: &str = "syscalls:sys_enter_futex,syscalls:sys_enter_sched_yield,context-switches";
    const MEMBARRIER: &str = "syscalls:sys_enter_membarrier";
    for events in [format!("{EVENTS},{MEMBARRIER}"), EVENTS.to_string()] {
        let perf = Command::new("perf")
            .args(["stat", "-x,", "-e", &events, "--"])
            .arg(&me)
            .args([ONE_BLOCK, peer])
            .output();
        let Some(out) = perf.ok().filter(|o| o.status.success()) else {
            continue;
        };
        // CSV lines: `count,unit,event,...` (the count is `<not counted>` where it was not).
        let stderr = String::from_utf8_lossy(&out.stderr);
        let event = |name: &str| {
            stderr
                .lines()
                .map(|l| l.split(',').collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[2] == name)
                .and_then(|f| f[0].parse::<f64>().ok())
        };
        if let (Some(futex), Some(sched_yield)) = (
            event("syscalls:sys_enter_futex"),
            event("syscalls:sys_enter_sched_yield"),
        ) {
            return Some(Counts {
                futex,
                sched_yield,
                membarrier: event(MEMBARRIER),
                switches: event("context-switches"),
            });
        }
    }
    strace(&me, peer)
}

/// `strace -f -c`'s summary: the `calls` column of the `futex`, `sched_yield` and `membarrier`
/// lines.
fn strace(me: &std::path::Path, peer: &str) -> Option<Counts> {
    let out = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=futex,sched_yield,membarrier", "--"])
        .arg(me)
        .args([ONE_BLOCK, peer])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let calls = |name: &str| {
        stderr
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.last() == Some(&name))
            // `% time, seconds, usecs/call, calls, [errors,] syscall`
            .and_then(|f| f.get(3)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    eprintln!("report: perf stat is not available; counting with strace (slower, higher counts)");
    Some(Counts {
        futex: calls("futex"),
        sched_yield: calls("sched_yield"),
        membarrier: Some(calls("membarrier")),
        switches: None,
    })
}
