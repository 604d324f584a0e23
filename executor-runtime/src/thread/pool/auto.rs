//! The Auto backend's side of the pool: what it keeps for the governor, how a surplus worker
//! parks, and the pool as the governor sees it ([`Governed`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::Shared;
use crate::thread::governor::{Governed, Policy, WorkerGauge};

/// What an `Auto` pool keeps for the governor.
pub(super) struct AutoSizing {
    pub(super) policy: Policy,
    /// By worker index.
    pub(super) gauges: Mutex<Vec<Arc<WorkerGauge>>>,
}

impl Shared {
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
        // one is within it and takes the task).
        if !self.queue.is_empty() {
            self.wake.notify_one();
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
