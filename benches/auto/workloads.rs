//! The workloads: one `pool!` block of each, timed (and traced under `Auto`) on a thread of its
//! own, which is left behind if the block hangs.

use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use concurrent_futures::pool;

use crate::common::cpu_task::spin;
use crate::results::Results;
use crate::server::fetch;
use crate::settings::Settings;
use crate::trace::{self, Trace, Tracer};
use crate::{Setting, Workload, CPU_TASKS, HUNG, IO_TASKS, TINY_TASKS};

/// What every block needs.
pub(crate) struct Ctx {
    pub port: u16,
    /// `spin`'s argument for about 20 ms.
    pub spin_n: u64,
    /// What the CPU batch sums to.
    pub spins: u64,
    /// What the I/O batch's pages add up to, in bytes (the first block's answer).
    pub pages: std::sync::OnceLock<usize>,
}

#[inline(never)]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// One block's figures: its wall time (`None`: it hung), and its trace.
pub(crate) struct Timed {
    pub seconds: Option<f64>,
    pub trace: Option<Trace>,
}

/// Runs one block of `workload` under `setting`, timed; an `Auto` block is traced when `traced`.
pub(crate) fn timed_block(
    workload: Workload,
    setting: Setting,
    ctx: &'static Ctx,
    traced: bool,
) -> Timed {
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
pub(crate) fn tiny_rounds(settings: &Settings, ctx: &'static Ctx, results: &mut Results) {
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
pub(crate) fn guarded<T: Send + 'static>(
    what: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
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
