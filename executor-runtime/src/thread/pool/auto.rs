//! The Auto backend's side of the pool: what it keeps for the governor, how a surplus worker
//! parks, and the pool as the governor sees it ([`Governed`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::Shared;
use crate::thread::governor::{self, Governed, Policy, WorkerGauge};

/// What an `Auto` pool keeps for the governor.
pub(super) struct AutoSizing {
    pub(super) policy: Policy,
    /// By worker index.
    pub(super) gauges: Mutex<Vec<Arc<WorkerGauge>>>,
    /// Set when the first worker has started and the pool was put under the governor.
    pub(super) governed: AtomicBool,
    /// Set when a worker could not be started and the log said so (once per pool).
    pub(super) short_of_threads: AtomicBool,
}

impl AutoSizing {
    pub(super) fn new(policy: Policy) -> Self {
        AutoSizing {
            policy,
            gauges: Mutex::new(Vec::new()),
            governed: AtomicBool::new(false),
            short_of_threads: AtomicBool::new(false),
        }
    }
}

impl Shared {
    /// Auto: a worker has started. After the first, the pool is put under the governor (which
    /// starts the governor thread if none runs yet). Not before: where threads are scarce
    /// (`RLIMIT_NPROC`), the pool's first worker must have the thread the governor would take; a
    /// pool whose governor cannot start keeps its starting size, and runs.
    pub(super) fn auto_worker_started(shared: &Arc<Shared>) {
        let Some(auto) = &shared.auto else { return };
        if auto.governed.swap(true, Ordering::SeqCst) {
            return;
        }
        let pool: Arc<dyn Governed> = shared.clone();
        governor::govern(Arc::downgrade(&pool));
    }

    /// Auto: worker `index` could not be started; says so once per pool (a pool with no worker at
    /// all fails as Thread does, in `spawn_worker`).
    pub(super) fn auto_worker_failed(&self, index: usize, error: &std::io::Error) {
        let Some(auto) = &self.auto else { return };
        let started = self.spawned.load(Ordering::SeqCst);
        if started == 0 || auto.short_of_threads.swap(true, Ordering::SeqCst) {
            return;
        }
        log::warn!(
            target: "concurrent_futures::auto",
            "pool {}: could not start worker {index} ({error}); it runs on the {started} \
             worker(s) it has, and tries again when it needs more",
            self.id,
        );
    }

    /// Auto: parks the calling worker while the pool has more workers taking tasks than its
    /// target. Returns `true` if the pool shut down meanwhile.
    pub(super) fn park_while_over_limit(&self, gauge: &WorkerGauge) -> bool {
        let mut lock = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.taking() <= self.limit.load(Ordering::SeqCst) {
            // Within the limit again (the others parked, or it rose): stop checking.
            self.over_limit.store(false, Ordering::Relaxed);
            return false;
        }
        self.parked.fetch_add(1, Ordering::SeqCst);
        gauge.start_idle();
        // This worker may have been woken for a queued task: pass the wake-up on, or the task
        // waits while idle workers sleep (they too are over the limit, and park in turn, until
        // one is within it and takes the task). The fence pairs with the one in
        // `wake_for_queued`: a submitter that counted this worker as awake and idle, and so woke
        // no one, pushed its task before that count, and this look sees it. Should the fence
        // fail (see `sleep`), the look cannot be sure, and the wake-up is passed on anyway.
        let fenced = self.fence_against_submits();
        if !fenced || !self.queue.is_empty() {
            self.grant_wake(&mut lock);
        }
        // The block may be waiting for the task this worker just finished: no idle worker will
        // tell it (they told it before that task was done), so this one must.
        self.wake_joiner();
        // Unpark when there is room for one more worker taking tasks.
        while !self.shutdown.load(Ordering::SeqCst)
            && self.taking() >= self.limit.load(Ordering::SeqCst)
        {
            lock = self.unpark.wait(lock).unwrap_or_else(|e| e.into_inner());
        }
        self.parked.fetch_sub(1, Ordering::SeqCst);
        gauge.end_idle();
        self.shutdown.load(Ordering::SeqCst) && self.queue.is_empty()
    }
}

impl Governed for Shared {
    fn id(&self) -> u64 {
        self.id
    }

    fn is_closed(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn backlog(&self) -> usize {
        self.queue.len()
    }

    fn workers(&self) -> (usize, usize) {
        (self.spawned.load(Ordering::SeqCst), self.taking())
    }

    fn gauges(&self) -> Vec<Arc<WorkerGauge>> {
        self.auto.as_ref().map_or_else(Vec::new, |auto| {
            auto.gauges
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
    }

    fn target(&self) -> usize {
        self.limit.load(Ordering::SeqCst)
    }

    fn set_target(self: Arc<Self>, target: usize) {
        {
            // Under the lock, so that a worker clearing `over_limit` saw this limit.
            let _lock = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            let old = self.limit.swap(target, Ordering::SeqCst);
            if target < old {
                // The surplus parks itself after its current task.
                self.over_limit.store(true, Ordering::Relaxed);
                return;
            }
            self.unpark.notify_all();
        }
        // Parked workers fill the room first; start threads only for what they cannot (also when
        // the target did not move but fewer workers were started than it allows).
        let started = self.spawned.load(Ordering::SeqCst);
        for _ in started..target {
            if !Shared::spawn_worker(&self) {
                break;
            }
        }
    }

    fn policy(&self) -> Policy {
        self.auto.as_ref().map_or(
            Policy {
                cores: 1,
                min: self.max_workers,
                max: self.max_workers,
            },
            |auto| auto.policy,
        )
    }
}
