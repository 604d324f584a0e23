//! The one thread per process that talks to the Mpi workers, on the side that opens blocks.
//!
//! It initialises MPI (`MPI_THREAD_FUNNELED`: it alone makes MPI calls), greets the workers (the
//! other ranks of a launched job at once; spawned ones when a block first needs them), then loops:
//! it receives outcomes and resolves their futures, sends queued calls to workers with room (a
//! window of calls in flight per worker, sized from their run time as on Process, so tiny calls
//! are pipelined), and checks that the workers running calls are still alive. It busy-polls while
//! calls are in flight (spinning, then yielding, then sleeping in short steps), sleeps a quarter of
//! a call between polls while every busy worker has a long call queued behind its running one
//! ([`quiet_for`]), and sleeps on a condition variable when there is nothing to do.
//!
//! At exit (an `atexit` hook) it tells every worker to stop with an empty message, disconnects
//! from spawned workers and finalises MPI, so the launcher sees every rank end cleanly.
//!
//! A worker that dies is seen by its pid (a worker reports it, with its host, in the handshake)
//! when it runs on this host: its running call fails with `TaskError::WorkerDied`, the calls
//! queued behind it go back to their block. A worker on another host cannot be watched this way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::mpi::comm::{self as transport, Idle};
use crate::mpi::pool::Block;
use crate::mpi::ranks::Ranks;
use crate::mpi::worker::{self, Start};
use crate::task::error::TaskError;

/// The process's driver: what blocks and the exit hook share with the driver thread.
pub(crate) struct Driver {
    inbox: Mutex<Inbox>,
    wake: Condvar,
    sleeping: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The default `max_workers` of a block.
    default_workers: usize,
}

/// Requests to the driver thread.
#[derive(Default)]
struct Inbox {
    blocks: Vec<Arc<Block>>,
    /// Bumped when `blocks` changes.
    generation: u64,
    woken: bool,
    exit: bool,
}

static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();

/// The process's driver, started on first use.
pub(crate) fn driver() -> Result<&'static Driver, String> {
    if crate::block::identity::current_worker()
        .is_some_and(|w| w.backend() == crate::block::identity::Backend::Mpi)
    {
        return Err(
            "a pool!(Mpi) block cannot be opened inside a task of an Mpi worker (its \
                    MPI is the worker's own); use Thread or Process inside the task"
                .to_string(),
        );
    }
    if worker::ranks_run_main() {
        return Err(format!(
            "{} is set: every rank runs main and MPI belongs to the program, so pool!(Mpi) has no \
             workers",
            worker::RANKS_RUN_MAIN_ENV
        ));
    }
    DRIVER
        .get_or_init(|| {
            let default_workers = match worker::start() {
                Start::Launched { size, .. } if size > 1 => size - 1,
                _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            let driver = Driver {
                inbox: Mutex::new(Inbox::default()),
                wake: Condvar::new(),
                sleeping: AtomicBool::new(false),
                thread: Mutex::new(None),
                default_workers,
            };
            register_exit_hook();
            Ok(driver)
        })
        .as_ref()
        .map_err(Clone::clone)
        .inspect(|driver| driver.ensure_started())
}

impl Driver {
    fn ensure_started(&'static self) {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_none() {
            let spawned = std::thread::Builder::new()
                .name("executor-mpi".to_string())
                .spawn(move || drive(self));
            match spawned {
                Ok(handle) => *thread = Some(handle),
                Err(error) => eprintln!("executor: cannot start the MPI driver thread: {error}"),
            }
        }
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn default_workers(&self) -> usize {
        self.default_workers
    }

    /// A block opened: its calls may be sent from now on.
    pub(crate) fn open(&self, block: Arc<Block>) {
        let mut inbox = self.inbox();
        inbox.blocks.push(block);
        inbox.generation += 1;
    }

    /// A block ended (every call finished).
    pub(crate) fn close(&self, id: u64) {
        let mut inbox = self.inbox();
        inbox.blocks.retain(|block| block.backend.id != id);
        inbox.generation += 1;
    }

    /// Calls were queued: wakes the driver if it sleeps.
    pub(crate) fn wake(&self) {
        if self.sleeping.load(Ordering::SeqCst) {
            self.inbox().woken = true;
            self.wake.notify_one();
        }
    }
}

/// Registers, once, the `atexit` hook that stops the workers and finalises MPI.
fn register_exit_hook() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a function with no preconditions for libc to call at `exit`.
        unsafe { libc::atexit(stop_at_exit) };
    });
}

/// Called before `main` on rank 0 of a launched job: its workers wait for it, so it must stop
/// them at exit even if the program never opens a `pool!(Mpi)` block.
///
/// MPI is started at once, on the driver thread, so that its start-up (a few hundred
/// milliseconds) overlaps with the program's own until the first block.
pub(crate) fn start_if_launched() {
    if matches!(worker::start(), Start::Launched { rank: 0, size } if size > 1) {
        register_exit_hook();
        let _ = driver();
    }
}

extern "C" fn stop_at_exit() {
    let driver = match DRIVER.get() {
        Some(Ok(driver)) => driver,
        Some(Err(_)) => return,
        // Launched, no block ever opened: start MPI just to stop the workers cleanly.
        None => match driver() {
            Ok(driver) => driver,
            Err(_) => return,
        },
    };
    driver.inbox().exit = true;
    driver.wake.notify_one();
    let handle = driver
        .thread
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
}

fn drive(driver: &'static Driver) {
    if let Err(why) = transport::initialize() {
        return fail_forever(driver, format!("MPI could not be initialised: {why}"));
    }
    let digest = match worker::executable_digest() {
        Ok(digest) => digest,
        Err(why) => return fail_forever(driver, why),
    };
    let mut hello = Vec::new();
    for field in digest {
        hello.extend_from_slice(&field.to_le_bytes());
    }
    let start = worker::start();
    let may_spawn = !matches!(start, Start::Launched { size, .. } if size > 1);
    let mut ranks = Ranks::new(may_spawn, hello);
    if let Start::Launched { size, .. } = start {
        let world = transport::world();
        for rank in 1..size {
            ranks.greet(world, rank, false);
        }
    }
    let mut idle = Idle::default();
    loop {
        let mut previous = Vec::new();
        {
            let inbox = driver.inbox();
            if inbox.exit {
                break;
            }
            if inbox.generation != ranks.generation {
                previous = std::mem::replace(&mut ranks.blocks, inbox.blocks.clone());
                ranks.generation = inbox.generation;
            }
        }
        // Outside the inbox's lock, which the next block's `open` and another block's `close`
        // take: the last reference to a closed block frees its queue, and one free can take
        // milliseconds (after a block of 200 calls with 1 MiB arguments, glibc gave the freed
        // 200 MiB back to the kernel in the next free of rank 0's heap: 12-22 ms in `brk`, seen
        // here in `perf record`).
        drop(previous);
        let mut busy = ranks.receive();
        busy |= ranks.test_sends();
        busy |= ranks.dispatch();
        ranks.watch_liveness();
        ranks.spawn_if_needed();
        ranks.fail_if_hopeless();
        if busy {
            idle.reset();
            continue;
        }
        if ranks.expecting() {
            match quiet_for(ranks.pacing()) {
                Some(quiet) => std::thread::sleep(quiet),
                None => idle.pause(),
            }
        } else {
            ranks.sleep(driver);
            idle.reset();
        }
    }
    ranks.shut_down();
}

/// A worker as the driver's pacing sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pacing {
    pub(crate) greeting: bool,
    pub(crate) in_flight: usize,
    /// The average run time of its calls, in nanoseconds (0 before the first).
    pub(crate) average_ns: f64,
    /// Its results are large on average: each goes as a message of its own, which the worker
    /// waits for the driver to fetch.
    pub(crate) detached_results: bool,
}

/// Calls at least this long (on average, from their arrival in the worker) let the driver sleep
/// between polls while every worker has a call queued behind its running one ([`quiet_for`]).
/// Polling without pause took the driver thread 30% of the time (177 ms in 600) with 1 MiB
/// arguments, calls of about 200 µs, on 2 cores whose workers copy those arguments; now 5% (32 ms).
const QUIET_FROM_NS: f64 = 100_000.0;

/// How long the driver may sleep before it polls again, when no worker is about to run out of
/// calls: every worker with calls in flight has another queued behind the one it runs, its calls
/// are long ([`QUIET_FROM_NS`]), and its results come inside their frames (a large result is
/// fetched by the driver while the worker waits, see `worker::send_large`). A quarter of the
/// shortest such call (at most 1 ms), so that a worker is topped up long before its last call
/// ends. `None`: poll as usual.
fn quiet_for(workers: impl Iterator<Item = Pacing>) -> Option<Duration> {
    let mut shortest = f64::INFINITY;
    for worker in workers {
        if worker.greeting {
            return None;
        }
        if worker.in_flight == 0 {
            continue;
        }
        if worker.in_flight < 2 || worker.average_ns < QUIET_FROM_NS || worker.detached_results {
            return None;
        }
        shortest = shortest.min(worker.average_ns);
    }
    shortest
        .is_finite()
        .then(|| Duration::from_nanos((shortest / 4.0).min(1e6) as u64))
}

/// MPI could not start: every call of every block fails with `why`, until the exit.
fn fail_forever(driver: &'static Driver, why: String) {
    let error = TaskError::WorkerStart(why);
    loop {
        let mut inbox = driver.inbox();
        if inbox.exit {
            return;
        }
        let blocks = inbox.blocks.clone();
        drop(inbox);
        for block in &blocks {
            block.fail_queued(&error);
        }
        inbox = driver.inbox();
        if !inbox.exit && !inbox.woken {
            driver.sleeping.store(true, Ordering::SeqCst);
            inbox = driver
                .wake
                .wait_timeout(inbox, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            driver.sleeping.store(false, Ordering::SeqCst);
        }
        inbox.woken = false;
    }
}

impl Ranks {
    /// Sleeps until a block queues a call or the exit comes (or 100 ms pass, as a safety net).
    fn sleep(&mut self, driver: &Driver) {
        let mut inbox = driver.inbox();
        driver.sleeping.store(true, Ordering::SeqCst);
        let queued = inbox
            .blocks
            .iter()
            .any(|b| b.backend.queued.load(Ordering::SeqCst) > 0);
        if !queued && !inbox.woken && !inbox.exit && inbox.generation == self.generation {
            inbox = driver
                .wake
                .wait_timeout(inbox, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        inbox.woken = false;
        driver.sleeping.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_sleeps_only_while_every_busy_worker_has_a_long_call_queued() {
        let worker = |in_flight, average_ns| Pacing {
            greeting: false,
            in_flight,
            average_ns,
            detached_results: false,
        };
        let quiet = |workers: &[Pacing]| quiet_for(workers.iter().copied());
        assert_eq!(
            quiet(&[worker(3, 200e3), worker(2, 400e3), worker(0, 0.0)]),
            Some(Duration::from_micros(50)),
            "a quarter of the shortest call; an idle worker does not count"
        );
        assert_eq!(quiet(&[worker(1, 200e3)]), None, "about to run dry");
        assert_eq!(quiet(&[worker(4, 5e3)]), None, "tiny calls: poll as usual");
        let greeting = Pacing {
            greeting: true,
            ..worker(0, 0.0)
        };
        assert_eq!(
            quiet(&[greeting, worker(3, 200e3)]),
            None,
            "a hello to answer"
        );
        let fetching = Pacing {
            detached_results: true,
            ..worker(3, 200e3)
        };
        assert_eq!(
            quiet(&[fetching]),
            None,
            "large results wait for the driver"
        );
        assert_eq!(quiet(&[worker(0, 0.0)]), None, "nothing in flight");
        assert_eq!(
            quiet(&[worker(2, 60e9)]),
            Some(Duration::from_millis(1)),
            "at most 1 ms"
        );
    }
}
