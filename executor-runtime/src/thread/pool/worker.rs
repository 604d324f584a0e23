//! A Thread pool's workers: starting one (within `max_workers` and the pool's current limit), and
//! the worker thread's loop: take a task, run it, repeat; wait (`sleep`) when there is none.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam_utils::CachePadded;

use super::Shared;
use crate::block::identity::{self, Backend, WorkerInfo};
use crate::task::error::{drop_payload, panic_message};
use crate::thread::governor::WorkerGauge;

impl Shared {
    /// Starts a worker if the pool has fewer than `limit` taking tasks and fewer than
    /// `max_workers` started; returns whether it did.
    pub(super) fn spawn_worker(shared: &Arc<Shared>) -> bool {
        let claimed = shared
            .spawned
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                let taking = n.saturating_sub(shared.parked.load(Ordering::SeqCst));
                (n < shared.max_workers && taking < shared.limit.load(Ordering::SeqCst))
                    .then_some(n + 1)
            });
        let Ok(index) = claimed else { return false };

        let counter = Arc::new(CachePadded::new(AtomicUsize::new(0)));
        shared
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(counter.clone());
        let gauge = shared.auto.as_ref().map(|auto| {
            let gauge = Arc::new(WorkerGauge::default());
            let mut gauges = auto.gauges.lock().unwrap_or_else(|e| e.into_inner());
            // Indices are claimed in order but pushed in any order: place each at its index.
            if gauges.len() <= index {
                gauges.resize_with(index + 1, Default::default);
            }
            gauges[index] = Arc::clone(&gauge);
            gauge
        });
        let name = format!("{}-{index}", shared.name_prefix);
        let worker_shared = Arc::clone(shared);
        let builder = thread::Builder::new().name(name.clone());
        // The join takes the handles (leaving `None`) under this lock, so a worker is either
        // started here and joined there, or not started at all; once the join has begun (every
        // task done), the governor starts none.
        let mut threads = shared.threads.lock().unwrap_or_else(|e| e.into_inner());
        let spawned = match threads.as_mut() {
            Some(threads) if !shared.shutdown.load(Ordering::SeqCst) => builder
                .spawn(move || worker_loop(&worker_shared, index, name, &counter, gauge))
                .map(|handle| {
                    threads.push(handle);
                    Some(())
                }),
            _ => Ok(None),
        };
        drop(threads);
        let error = match spawned {
            Ok(Some(())) => {
                Shared::auto_worker_started(shared);
                return true;
            }
            Ok(None) => None, // joined: nothing left to run
            Err(error) => Some(error),
        };
        shared.spawned.fetch_sub(1, Ordering::SeqCst);
        let mut counters = shared.finished.lock().unwrap_or_else(|e| e.into_inner());
        counters.retain(|c| Arc::strong_count(c) > 1);
        drop(counters);
        if let Some(error) = error {
            // With at least one worker the task still runs, on fewer threads; with none it
            // never would, so say so rather than hang.
            shared.auto_worker_failed(index, &error);
            assert!(
                shared.spawned.load(Ordering::SeqCst) > 0,
                "pool!: could not start a worker thread: {error}"
            );
        }
        false
    }

    /// Workers taking tasks: started and not parked.
    pub(super) fn taking(&self) -> usize {
        self.spawned
            .load(Ordering::SeqCst)
            .saturating_sub(self.parked.load(Ordering::SeqCst))
    }
}

/// The life of one worker thread: take a task, run it, repeat; sleep when there is none. On Auto,
/// it keeps its gauge, and parks while the pool has more workers than its target.
fn worker_loop(
    shared: &Shared,
    index: usize,
    name: String,
    finished: &AtomicUsize,
    gauge: Option<Arc<WorkerGauge>>,
) {
    if let Some(gauge) = &gauge {
        gauge.attach_current_thread();
    }
    identity::become_worker(
        shared.id,
        WorkerInfo::new(Backend::Thread, index, Some(name)),
    );
    if let Some(initializer) = &shared.initializer {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| (initializer.0)())) {
            let message = panic_message(&*payload);
            drop_payload(payload);
            log::error!("executor: a worker's initializer panicked: {message}; the pool is broken");
            let _ = shared.broken.set(message);
        }
    }
    let batch = shared.queue.batch_for(index);
    let mut idle = false;
    loop {
        if let Some(gauge) = &gauge {
            if shared.over_limit.load(Ordering::Relaxed) {
                if idle {
                    shared.idle.fetch_sub(1, Ordering::SeqCst);
                    idle = false;
                    gauge.end_idle();
                }
                if shared.park_while_over_limit(gauge) {
                    return;
                }
                continue;
            }
        }
        if idle {
            // Not idle from before the pop: a submitter counts idle workers to take its task
            // without a wake-up, and must not count one that pops another and runs it.
            shared.idle.fetch_sub(1, Ordering::SeqCst);
            idle = false;
            if let Some(gauge) = &gauge {
                gauge.end_idle();
            }
        }
        let job = match &batch {
            Some(batch) => {
                let (job, batched) = shared.queue.pop_for(batch);
                if batched {
                    shared.wake_for_batch();
                }
                job
            }
            None => shared.pop(),
        };
        if let Some(job) = job {
            shared.run(job);
            finished.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        shared.idle.fetch_add(1, Ordering::SeqCst);
        idle = true;
        if let Some(gauge) = &gauge {
            gauge.start_idle();
        }
        shared.wake_joiner();
        if shared.wait_for_work() {
            return;
        }
    }
}
