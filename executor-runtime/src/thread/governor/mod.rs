//! The `Auto` backend's governor: the one thread per process that decides how many workers each
//! `pool!(Auto => { ... })` block runs.
//!
//! What it measures. Every tick (5 ms) it looks at a sample of the workers that are running a
//! task and reads each one's scheduler state from `/proc/self/task/<tid>/stat`: `R` (on a CPU, or
//! runnable and waiting for one) counts as *wanting a CPU*; anything else (asleep in I/O, on a
//! lock, in `sleep`) as *waiting*. If busy workers want a CPU a fraction `φ` of the time, `cores / φ`
//! workers keep every core busy: that is the target. Pure computation gives `φ = 1` and one worker
//! per core; tasks that wait on a 50 ms server give `φ ≈ 0` and the cap.
//!
//! Why states and not CPU time: a worker's CPU time (`CLOCK_THREAD_CPUTIME_ID` around a task)
//! cannot tell waiting for a CPU from waiting for I/O. Eight computing workers on two cores each
//! get a quarter of a core, which reads as "75% waiting", and a controller fed that number keeps
//! whatever oversubscription it reaches. The kernel's per-thread accounts (`schedstat`: CPU time
//! and run-queue delay) do tell them apart, but they are brought up to date only when the thread is
//! scheduled, so over a few milliseconds a runnable thread that has not run yet shows neither, and
//! reads as waiting (tried first: it let a pool of spinning tasks grow to three workers per core).
//! The state is current at every read.
//!
//! How it moves. It decides once it has 8 samples, or after 4 ticks with fewer (a small pool):
//! within 5 to 20 ms. It grows only while tasks are queued, at most four-fold per decision and
//! never past the tasks that are waiting, so a burst of I/O on 2 cores reaches 256 workers in
//! about 50 ms. It shrinks when two decisions running find half again as many workers as it
//! wants: the surplus finish their task, then park until the target rises again. The starvation
//! guard is the same rule: tasks that block on each other read as waiting, so queued work gets a
//! worker, up to the cap.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

/// How often the governor measures and decides.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// The most workers whose state is read per pool and tick (round-robin over the busy ones).
const SAMPLE_PER_TICK: usize = 32;

/// A decision waits for this many samples...
const SAMPLES_PER_DECISION: u32 = 8;

/// ... or for this many ticks, if the pool has too few busy workers to give them sooner.
const TICKS_PER_DECISION: u32 = 4;

/// A pool the governor sizes (the Thread backend's pool in `Auto` mode).
pub(crate) trait Governed: Send + Sync {
    /// The pool's id, for the log.
    fn id(&self) -> u64;
    /// Whether the pool is being joined: it is no longer governed.
    fn is_closed(&self) -> bool;
    /// Tasks queued and not started.
    fn backlog(&self) -> usize;
    /// Workers started, and workers taking tasks (started minus parked).
    fn workers(&self) -> (usize, usize);
    /// The gauges of the workers started so far, by index.
    fn gauges(&self) -> Vec<Arc<WorkerGauge>>;
    /// The number of workers allowed to take tasks.
    fn target(&self) -> usize;
    /// Sets the target: raising it wakes parked workers and starts new ones; lowering it lets the
    /// surplus park after their current task.
    fn set_target(self: Arc<Self>, target: usize);
    /// The bounds of the target.
    fn policy(&self) -> Policy;
}

/// What one worker tells the governor about itself: its thread id, and whether it is running a task.
#[derive(Debug, Default)]
pub(crate) struct WorkerGauge {
    tid: AtomicI32,
    idle: AtomicBool,
}

impl WorkerGauge {
    /// Called by the worker thread itself, once, before its first task.
    pub(crate) fn attach_current_thread(&self) {
        // SAFETY: `gettid` has no preconditions and cannot fail.
        let tid = unsafe { libc::gettid() };
        self.tid.store(tid, Ordering::Relaxed);
    }

    /// The worker has no task (waiting for one, or parked): it is not sampled.
    pub(crate) fn start_idle(&self) {
        self.idle.store(true, Ordering::Relaxed);
    }

    pub(crate) fn end_idle(&self) {
        self.idle.store(false, Ordering::Relaxed);
    }

    fn is_busy(&self) -> bool {
        !self.idle.load(Ordering::Relaxed)
    }
}

/// Whether a thread wants a CPU (its state is `R`: running or runnable), from
/// `/proc/self/task/<tid>/stat`; `None` if unreadable (the thread is gone).
fn wants_cpu(tid: i32) -> Option<bool> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    state_of(&text).map(|state| state == 'R')
}

/// The state letter of a `stat` line: the first field after the command, which is in
/// parentheses and may itself contain spaces and parentheses.
fn state_of(stat: &str) -> Option<char> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    after_command
        .split_ascii_whitespace()
        .next()?
        .chars()
        .next()
}

/// Whether this system shows thread states (Linux's `/proc`); without them `Auto` keeps its
/// starting size.
fn can_measure() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        // SAFETY: as in `attach_current_thread`.
        let tid = unsafe { libc::gettid() };
        let can = wants_cpu(tid) == Some(true);
        if !can {
            log::warn!(
                target: "concurrent_futures::auto",
                "/proc/self/task/<tid>/stat is not readable: Auto pools cannot measure their \
                 workers and keep their starting size (max(min_workers, cores))"
            );
        }
        can
    })
}

/// The bounds an `Auto` pool moves within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// CPUs this process may use.
    pub(crate) cores: usize,
    /// `min_workers`: the target never goes below it.
    pub(crate) min: usize,
    /// `max_workers`: the target never goes above it.
    pub(crate) max: usize,
}

impl Policy {
    /// The target a pool starts with: one worker per core, within the bounds.
    pub(crate) fn initial_target(&self) -> usize {
        self.cores.clamp(self.min, self.max)
    }
}

/// A measurement of a pool: what its busy workers were doing when sampled.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reading {
    /// Workers taking tasks.
    pub(crate) active: usize,
    /// Tasks queued and not started.
    pub(crate) backlog: usize,
    /// Samples of workers running a task.
    pub(crate) sampled: u32,
    /// Of those, how many found the worker wanting a CPU.
    pub(crate) wanting: u32,
}

/// What the governor does with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Keep,
    Grow(usize),
    Shrink(usize),
}

/// The rule, as a pure function of the bounds, the current target and a reading.
pub(crate) fn decide(policy: &Policy, target: usize, reading: &Reading) -> Decision {
    if reading.sampled == 0 || reading.active == 0 {
        return Decision::Keep;
    }
    let wanting =
        (reading.wanting.min(reading.sampled) as f64 / reading.sampled as f64).max(1.0 / 1024.0);
    // Workers that keep every core busy if each wants a CPU `wanting` of its busy time.
    let wanted = (policy.cores as f64 / wanting).ceil() as usize;
    if reading.backlog > 0 && wanted > reading.active {
        let step = (reading.active * 4).max(reading.active + 1);
        let grown = wanted
            .min(step)
            .min(reading.active + reading.backlog)
            .min(policy.max);
        // Also when the target allows more workers than are running: they were not started
        // (a `submit` found an idle worker, which then blocked), and queued work waits for them.
        return if grown > reading.active {
            Decision::Grow(grown.max(target))
        } else {
            Decision::Keep
        };
    }
    // Shrink only well past the target, so that noise does not make the pool breathe.
    if wanted * 3 < reading.active * 2 {
        let shrunk = wanted.max(policy.min);
        if shrunk < target {
            return Decision::Shrink(shrunk);
        }
    }
    Decision::Keep
}

/// The governor's record of one pool.
struct Governing {
    pool: Weak<dyn Governed>,
    /// Samples since the last decision.
    sampled: u32,
    wanting: u32,
    ticks: u32,
    /// Whether the last decision was to shrink: a shrink is applied only when two decisions
    /// running call for it, so that a few unlucky samples do not take a waiting pool's workers.
    shrinking: bool,
    /// Where the next round-robin sample starts.
    next: usize,
}

impl Governing {
    fn new(pool: Weak<dyn Governed>) -> Self {
        Governing {
            pool,
            sampled: 0,
            wanting: 0,
            ticks: 0,
            shrinking: false,
            next: 0,
        }
    }

    /// Samples the pool and, once it has enough samples, applies a decision; `false` once the
    /// pool is gone.
    fn tick(&mut self) -> bool {
        let Some(pool) = self.pool.upgrade() else {
            return false;
        };
        if pool.is_closed() {
            return false;
        }
        let (started, active) = pool.workers();
        let policy = pool.policy();
        let backlog = pool.backlog();
        // Only a queue (to grow into) or a surplus (to shrink) gives a decision to make; `decide`
        // shrinks nothing below one and a half times the cores.
        if backlog == 0 && active * 2 <= policy.cores * 3 {
            self.sampled = 0;
            self.wanting = 0;
            self.ticks = 0;
            self.shrinking = false;
            return true;
        }
        let gauges = pool.gauges();
        let busy: Vec<&WorkerGauge> = gauges
            .iter()
            .map(|g| &**g)
            .filter(|g| g.is_busy())
            .collect();
        let count = busy.len().min(SAMPLE_PER_TICK);
        for k in 0..count {
            let gauge = busy[(self.next + k) % busy.len()];
            let tid = gauge.tid.load(Ordering::Relaxed);
            if let Some(wants) = (tid != 0).then(|| wants_cpu(tid)).flatten() {
                self.sampled += 1;
                self.wanting += u32::from(wants);
            }
        }
        self.next = self.next.wrapping_add(count);
        self.ticks += 1;
        if self.sampled < SAMPLES_PER_DECISION && self.ticks < TICKS_PER_DECISION {
            return true;
        }
        let reading = Reading {
            active,
            backlog,
            sampled: self.sampled,
            wanting: self.wanting,
        };
        self.sampled = 0;
        self.wanting = 0;
        self.ticks = 0;
        let target = pool.target();
        let decision = decide(&policy, target, &reading);
        let confirmed = !matches!(decision, Decision::Shrink(_)) || self.shrinking;
        self.shrinking = matches!(decision, Decision::Shrink(_)) && !confirmed;
        let (new, reason) = match decision {
            _ if !confirmed => return true,
            Decision::Keep => return true,
            Decision::Grow(new) => (new, "tasks queued while workers wait"),
            Decision::Shrink(new) => (new, "more workers than the cores can run"),
        };
        log::debug!(
            target: "concurrent_futures::auto",
            "pool {}: target {new} workers, {active} active of {started} started ({reason}; \
             {} of {} samples wanted a CPU, {backlog} queued)",
            pool.id(),
            reading.wanting,
            reading.sampled,
        );
        pool.set_target(new);
        true
    }
}

/// The pools being governed, and the condition the governor sleeps on while there are none.
struct Registry {
    pools: Mutex<Vec<Governing>>,
    wake: Condvar,
}

/// Puts `pool` under the governor, starting the governor thread if none runs yet. If it cannot
/// start (no thread to be had: `RLIMIT_NPROC`, memory), the pool keeps its target, its starting
/// size, and says so in the log; the next pool tries again.
pub(crate) fn govern(pool: Weak<dyn Governed>) {
    static REGISTRY: Mutex<Option<Arc<Registry>>> = Mutex::new(None);
    if !can_measure() {
        return;
    }
    let registry = {
        let mut slot = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(registry) => Arc::clone(registry),
            None => {
                let registry = Arc::new(Registry {
                    pools: Mutex::new(Vec::new()),
                    wake: Condvar::new(),
                });
                let governor = Arc::clone(&registry);
                let started = std::thread::Builder::new()
                    .name("executor-governor".into())
                    .spawn(move || run(&governor));
                if let Err(error) = started {
                    if let Some(pool) = pool.upgrade() {
                        log::warn!(
                            target: "concurrent_futures::auto",
                            "pool {}: could not start the governor thread ({error}): the pool \
                             keeps its starting size ({} workers, or as many as can start)",
                            pool.id(),
                            pool.target(),
                        );
                    }
                    return;
                }
                *slot = Some(Arc::clone(&registry));
                registry
            }
        }
    };
    let mut pools = registry.pools.lock().unwrap_or_else(|e| e.into_inner());
    pools.push(Governing::new(pool));
    if pools.len() == 1 {
        registry.wake.notify_one();
    }
}

/// The governor thread: tick while any pool is governed, sleep otherwise.
fn run(registry: &Registry) {
    loop {
        {
            let mut pools = registry.pools.lock().unwrap_or_else(|e| e.into_inner());
            while pools.is_empty() {
                pools = registry.wake.wait(pools).unwrap_or_else(|e| e.into_inner());
            }
        }
        std::thread::sleep(TICK);
        // Tick without the lock: a tick reads `/proc` and may start many threads, and a pool it
        // drops may run user code (an initializer's captured values), which may open an Auto
        // pool and register.
        let mut ticking =
            std::mem::take(&mut *registry.pools.lock().unwrap_or_else(|e| e.into_inner()));
        ticking.retain_mut(Governing::tick);
        let mut pools = registry.pools.lock().unwrap_or_else(|e| e.into_inner());
        let registered_meanwhile = std::mem::replace(&mut *pools, ticking);
        pools.extend(registered_meanwhile);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        cores: 2,
        min: 1,
        max: 256,
    };

    fn reading(active: usize, backlog: usize, wanting: f64) -> Reading {
        Reading {
            active,
            backlog,
            sampled: 1000,
            wanting: (1000.0 * wanting) as u32,
        }
    }

    #[test]
    fn computing_workers_keep_one_per_core() {
        assert_eq!(decide(&POLICY, 2, &reading(2, 60, 1.0)), Decision::Keep);
        // Oversubscribed computing reads as wanting a CPU all the time, and shrinks to the cores.
        assert_eq!(
            decide(&POLICY, 8, &reading(8, 60, 1.0)),
            Decision::Shrink(2)
        );
    }

    #[test]
    fn waiting_workers_grow_four_fold_per_tick_up_to_the_queue_and_the_cap() {
        assert_eq!(
            decide(&POLICY, 2, &reading(2, 398, 0.001)),
            Decision::Grow(8)
        );
        assert_eq!(
            decide(&POLICY, 128, &reading(128, 270, 0.001)),
            Decision::Grow(256)
        );
        assert_eq!(
            decide(&POLICY, 8, &reading(8, 3, 0.001)),
            Decision::Grow(11)
        );
        let capped = Policy { max: 5, ..POLICY };
        assert_eq!(decide(&capped, 2, &reading(2, 100, 0.0)), Decision::Grow(5));
        assert_eq!(decide(&capped, 5, &reading(5, 100, 0.0)), Decision::Keep);
    }

    #[test]
    fn queued_work_gets_the_workers_the_target_already_allows() {
        // One worker started of a target of 2, blocked; one task queued: start the second.
        assert_eq!(decide(&POLICY, 2, &reading(1, 1, 0.0)), Decision::Grow(2));
    }

    #[test]
    fn half_waiting_work_wants_two_workers_per_core() {
        assert_eq!(decide(&POLICY, 2, &reading(2, 100, 0.5)), Decision::Grow(4));
        assert_eq!(decide(&POLICY, 4, &reading(4, 100, 0.5)), Decision::Keep);
    }

    #[test]
    fn an_empty_queue_never_grows_the_pool() {
        assert_eq!(decide(&POLICY, 2, &reading(2, 0, 0.0)), Decision::Keep);
    }

    #[test]
    fn no_samples_is_no_evidence() {
        let none = Reading {
            sampled: 0,
            wanting: 0,
            ..reading(2, 100, 0.0)
        };
        assert_eq!(decide(&POLICY, 2, &none), Decision::Keep);
    }

    #[test]
    fn shrinking_stops_at_min_workers() {
        let floor = Policy { min: 6, ..POLICY };
        assert_eq!(
            decide(&floor, 40, &reading(40, 0, 1.0)),
            Decision::Shrink(6)
        );
        assert_eq!(floor.initial_target(), 6);
        assert_eq!(POLICY.initial_target(), 2);
        assert_eq!(Policy { max: 1, ..POLICY }.initial_target(), 1);
    }

    #[test]
    fn states_parse_and_this_thread_wants_a_cpu() {
        assert_eq!(state_of("42 (executor-1-0) S 1 2 3"), Some('S'));
        assert_eq!(state_of("42 (a) b) (c) R 1 2 3"), Some('R'));
        assert_eq!(state_of("garbage"), None);
        // SAFETY: as in `attach_current_thread`.
        let tid = unsafe { libc::gettid() };
        assert_eq!(wants_cpu(tid), Some(true), "a running thread is in state R");
        assert!(can_measure());
    }

    #[test]
    fn a_sleeping_thread_does_not_want_a_cpu() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            // SAFETY: as in `attach_current_thread`.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        // It blocks in `recv` at once; wait until the kernel says so.
        let asleep = (0..1000).any(|_| {
            std::thread::sleep(Duration::from_millis(1));
            wants_cpu(tid) == Some(false)
        });
        drop(done_tx);
        sleeper.join().unwrap();
        assert!(asleep);
    }

    #[test]
    fn a_gauge_says_whether_its_worker_runs_a_task() {
        let gauge = WorkerGauge::default();
        assert!(gauge.is_busy());
        gauge.start_idle();
        assert!(!gauge.is_busy());
        gauge.end_idle();
        assert!(gauge.is_busy());
    }
}
