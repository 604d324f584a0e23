//! The `Auto` backend's sizing: behaviours that hold whatever the machine's speed. Each test waits
//! for a condition (with a deadline far beyond what it needs) rather than for a time.
//! The Thread contract (results, panics, cancelling, leaving the block) runs against `Auto` in the
//! contract tests' own files.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use concurrent_futures::{current_worker, pool, Backend};

mod common;
use common::within;

fn cores() -> usize {
    std::thread::available_parallelism().unwrap().get()
}

/// Counts tasks running at once, and the most seen.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Concurrency {
    fn enter(&self) -> usize {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        now
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// A task that sleeps in short naps until `enough` tasks have run at once (or 10 s pass, far more
/// than the governor needs, so that a broken one fails the test in seconds, not hours).
fn nap_until(seen: &Concurrency, enough: usize) -> usize {
    seen.enter();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.most() < enough && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    seen.leave();
    current_worker().unwrap().index()
}

#[test]
fn a_pool_of_sleeping_tasks_grows_past_the_core_count() {
    let seen = Concurrency::default();
    let enough = 4 * cores();
    let indices: Vec<usize> = pool!(Auto => {
        let futures: Vec<_> = (0..8 * cores()).map(|_| submit(|| nap_until(&seen, enough))).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    assert!(
        seen.most() >= enough,
        "sleeping tasks ran at most {} at once on {} cores",
        seen.most(),
        cores()
    );
    assert!(indices.iter().max().unwrap() + 1 > cores());
}

#[test]
fn the_worker_count_never_exceeds_the_cap() {
    let seen = Concurrency::default();
    let indices: Vec<usize> = pool!(Auto(max_workers = 3) => {
        // Waiting tasks would want 12 workers; each naps until 3 have run at once.
        let futures: Vec<_> = (0..12).map(|_| submit(|| nap_until(&seen, 3))).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    assert!(seen.most() <= 3, "{} tasks ran at once", seen.most());
    assert!(indices.iter().all(|&i| i < 3), "{indices:?}");
    assert_eq!(seen.most(), 3, "waiting tasks fill the cap");
}

/// Spins until this thread has used `cpu` of CPU time.
fn spin_for_cpu(seen: &Concurrency, cpu: Duration) -> usize {
    seen.enter();
    let start = thread_cpu_time();
    let mut x = 1u64;
    while thread_cpu_time() - start < cpu {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    seen.leave();
    current_worker().unwrap().index()
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[test]
fn a_pool_of_spinning_tasks_stays_at_or_below_twice_the_cores() {
    let seen = Concurrency::default();
    let indices: Vec<usize> = pool!(Auto => {
        let futures: Vec<_> = (0..16 * cores())
            .map(|_| submit(|| spin_for_cpu(&seen, Duration::from_millis(25))))
            .collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    let limit = 2 * cores();
    assert!(
        seen.most() <= limit,
        "{} spinning tasks ran at once on {} cores",
        seen.most(),
        cores()
    );
    assert!(indices.iter().all(|&i| i < limit), "{indices:?}");
}

/// A one-shot flag a task can wait on.
#[derive(Default)]
struct Flag {
    set: Mutex<bool>,
    changed: Condvar,
}

impl Flag {
    fn set(&self) {
        *self.set.lock().unwrap() = true;
        self.changed.notify_all();
    }

    /// Waits for the flag; `false` if `limit` passed first.
    fn wait(&self, limit: Duration) -> bool {
        let set = self.set.lock().unwrap();
        let (set, _) = self
            .changed
            .wait_timeout_while(set, limit, |set| !*set)
            .unwrap();
        *set
    }
}

#[test]
fn the_starvation_guard_adds_a_worker_for_the_task_that_releases_the_others() {
    let flag = Arc::new(Flag::default());
    // Every starting worker gets a task that blocks until a later task sets the flag: a fixed
    // pool of that many workers would wait forever (here, for the 60 s safety limit).
    let blocked = cores();
    let started = Instant::now();
    let waited: Vec<bool> = pool!(Auto => {
        let waiting: Vec<_> = (0..blocked)
            .map(|_| {
                let flag = Arc::clone(&flag);
                submit(move || flag.wait(Duration::from_secs(60)))
            })
            .collect();
        let release = {
            let flag = Arc::clone(&flag);
            submit(move || flag.set())
        };
        release.result().unwrap();
        waiting.into_iter().map(|f| f.result().unwrap()).collect()
    });
    assert!(
        waited.iter().all(|&w| w),
        "a waiting task timed out after {:?}: the releasing task never got a worker",
        started.elapsed()
    );
}

#[test]
fn the_cap_still_bounds_the_starvation_guard() {
    let flag = Arc::new(Flag::default());
    // With the cap at one worker, the releasing task queues behind the waiting one: the wait
    // runs out (after 300 ms, the deadlock a fixed pool of one has), then the release runs.
    let (waited, order) = pool!(Auto(max_workers = 1) => {
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiting = {
            let (flag, order) = (Arc::clone(&flag), Arc::clone(&order));
            submit(move || {
                let waited = flag.wait(Duration::from_millis(300));
                order.lock().unwrap().push("wait ended");
                waited
            })
        };
        let release = {
            let (flag, order) = (Arc::clone(&flag), Arc::clone(&order));
            submit(move || {
                order.lock().unwrap().push("release");
                flag.set()
            })
        };
        release.result().unwrap();
        let waited = waiting.result().unwrap();
        let order = order.lock().unwrap().clone();
        (waited, order)
    });
    assert!(!waited, "one worker cannot run both tasks at once");
    assert_eq!(order, ["wait ended", "release"]);
}

/// A task that computes until `enough` tasks have run at once (or 10 s pass).
fn spin_until(seen: &Concurrency, enough: usize) -> (usize, concurrent_futures::WorkerInfo) {
    seen.enter();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut x = 1u64;
    while seen.most() < enough && Instant::now() < deadline {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    seen.leave();
    let me = current_worker().unwrap();
    (me.index(), me)
}

#[test]
fn min_workers_starts_that_many_and_identity_says_thread() {
    // Computing tasks never make the governor grow the pool past the cores, so only
    // `min_workers` can make 6 of them run at once.
    let seen = Concurrency::default();
    let infos = pool!(Auto(min_workers = 6, max_workers = 64, thread_name_prefix = "auto") => {
        let futures: Vec<_> = (0..6).map(|_| submit(|| spin_until(&seen, 6))).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(
        seen.most(),
        6,
        "min_workers = 6 runs 6 computing tasks at once"
    );
    for (index, info) in infos {
        assert_eq!(
            info.backend(),
            Backend::Thread,
            "Auto's workers are threads"
        );
        assert_eq!(info.thread_name(), Some(format!("auto-{index}").as_str()));
        assert_eq!(info.pid(), std::process::id());
    }
}

#[test]
#[should_panic(expected = "`min_workers` (5) must not be above `max_workers` (2)")]
fn min_workers_above_the_cap_is_refused_at_block_entry() {
    let five = std::hint::black_box(5);
    pool!(Auto(min_workers = five, max_workers = 2) => {});
}

#[test]
fn a_pool_that_grew_for_waiting_work_shrinks_back_for_computing_work() {
    // First a batch that waits, which grows the pool, then a batch that computes: the computing
    // batch's tasks start on the grown pool, but as they finish, the surplus parks, so the last
    // tasks of a long computing batch run on at most one and a half times the cores.
    let waiting = Concurrency::default();
    let computing = Concurrency::default();
    let late = Concurrency::default();
    let n = 40 * cores();
    let done = AtomicUsize::new(0);
    pool!(Auto => {
        let naps: Vec<_> = (0..8 * cores()).map(|_| submit(|| nap_until(&waiting, 4 * cores()))).collect();
        for nap in naps {
            nap.result().unwrap();
        }
        let spins: Vec<_> = (0..n)
            .map(|_| {
                submit(|| {
                    let late_task = done.load(Ordering::SeqCst) >= n / 2;
                    if late_task {
                        late.enter();
                    }
                    spin_for_cpu(&computing, Duration::from_millis(10));
                    if late_task {
                        late.leave();
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for spin in spins {
            spin.result().unwrap();
        }
    });
    assert!(waiting.most() >= 4 * cores());
    assert!(
        late.most() <= 2 * cores(),
        "after half the computing batch, {} tasks still ran at once on {} cores",
        late.most(),
        cores()
    );
}

#[test]
fn map_keeps_a_window_sized_by_the_current_target_not_the_cap() {
    let produced = AtomicUsize::new(0);
    let first: Vec<u64> = pool!(Auto => {
        let items = (0u64..).inspect(|_| {
            produced.fetch_add(1, Ordering::SeqCst);
        });
        map(|x: u64| x * 2, items).take(10).map(Result::unwrap).collect()
    });
    assert_eq!(first, (0..10).map(|x| x * 2).collect::<Vec<_>>());
    // 32 tasks per worker of a target of at most two per core, not 32 × 256 = 8192.
    let produced = produced.load(Ordering::SeqCst);
    assert!(
        produced <= 32 * 2 * cores() + 10,
        "{produced} items taken ahead"
    );
}

/// The governor's decisions, as it logs them (target `concurrent_futures::auto`), for every pool.
struct Decisions(Mutex<Vec<String>>);

impl log::Log for Decisions {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target() == "concurrent_futures::auto"
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger (once per test binary) so that the governor's decisions are kept.
fn keep_decisions() -> &'static Decisions {
    static DECISIONS: std::sync::OnceLock<&'static Decisions> = std::sync::OnceLock::new();
    DECISIONS.get_or_init(|| {
        let decisions: &'static Decisions = Box::leak(Box::new(Decisions(Mutex::new(Vec::new()))));
        log::set_logger(decisions).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Debug);
        decisions
    })
}

/// The decisions logged for pool `id`.
fn decisions_of(id: u64) -> Vec<String> {
    let prefix = format!("pool {id}:");
    let all = keep_decisions().0.lock().unwrap();
    all.iter()
        .filter(|d| d.starts_with(&prefix))
        .cloned()
        .collect()
}

/// The id of the pool the calling task runs on, from its worker's default name `executor-<id>-<i>`.
fn pool_id() -> u64 {
    let name = current_worker().unwrap().thread_name().unwrap().to_string();
    name.split('-').nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_task_submitted_after_the_pool_shrank_still_runs() {
    // Regression: after a shrink, idle workers above the target that a `submit` woke parked
    // without passing the wake-up on, so the task waited for ever.
    keep_decisions();
    let (sums, id) = within("the block", || {
        let waiting = Concurrency::default();
        let computing = Concurrency::default();
        pool!(Auto => {
            // Grow the pool with waiting tasks; then compute on a few of its workers, so that it
            // shrinks while the others sleep; then submit one task at a time.
            let naps: Vec<_> = (0..8 * cores()).map(|_| submit(|| nap_until(&waiting, 8 * cores()))).collect();
            naps.into_iter().for_each(|nap| assert!(nap.result().is_ok()));
            let spins: Vec<_> = (0..2 * cores())
                .map(|_| submit(|| spin_for_cpu(&computing, Duration::from_millis(30))))
                .collect();
            spins.into_iter().for_each(|spin| assert!(spin.result().is_ok()));
            let id = submit(pool_id).result().unwrap();
            ((0..20u64).map(|i| submit(move || i * 2).result().unwrap()).sum::<u64>(), id)
        })
    });
    assert_eq!(sums, (0..20u64).map(|i| i * 2).sum());
    let decisions = decisions_of(id);
    assert!(
        decisions
            .iter()
            .any(|d| d.contains("more workers than the cores can run")),
        "the pool never shrank, so this test tested nothing: {decisions:?}"
    );
}

#[test]
fn the_block_is_left_when_its_last_task_ends_on_a_worker_that_parks() {
    // Regression: a shrink during the block's last, unread task made its worker park without
    // waking the block, which waited for ever (every other worker had told it before).
    within("the block", || {
        let waiting = Concurrency::default();
        let computing = Concurrency::default();
        pool!(Auto => {
            let naps: Vec<_> = (0..8 * cores()).map(|_| submit(|| nap_until(&waiting, 8 * cores()))).collect();
            naps.into_iter().for_each(|nap| assert!(nap.result().is_ok()));
            let _unread = submit(|| spin_for_cpu(&computing, Duration::from_millis(300)));
        });
    });
}

/// A task that waits for a task submitted right after it, submitted while one worker is idle.
macro_rules! waits_for_the_next_task {
    ($backend:ident) => {{
        let flag = Arc::new(Flag::default());
        pool!($backend => {
            submit(|| ()).result().unwrap(); // one worker, now idle
            std::thread::sleep(Duration::from_millis(20));
            let waiting = {
                let flag = Arc::clone(&flag);
                submit(move || flag.wait(Duration::from_secs(10)))
            };
            let release = {
                let flag = Arc::clone(&flag);
                submit(move || flag.set())
            };
            release.result().unwrap();
            waiting.result().unwrap()
        })
    }};
}

#[test]
fn two_submits_never_count_on_the_same_idle_worker() {
    // Regression: both submits saw the one idle worker and started none; the first task took it
    // and blocked, and the second waited behind it. (`Thread` still has this: README, "Known
    // limits".)
    for _ in 0..5 {
        assert!(waits_for_the_next_task!(Auto), "the release never ran");
    }
}
