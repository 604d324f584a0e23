//! How an idle worker waits for work, and when a `submit` wakes one: the part of the pool that
//! decides how many system calls a task costs.
//!
//! After rayon-core's `sleep/` (its "sleepy" state and jobs event counter), in three rules:
//!
//! - An idle worker spins on the queue (spin hints, no system call), yields twice, and goes round
//!   again as long as tasks were submitted during the round (the queue's count of pushes moved,
//!   even if another worker took them): it sleeps only after a whole round with no submission. So a
//!   worker stays up while the block's thread is submitting, and a worker that sleeps is one the
//!   work does not need.
//! - A `submit` wakes a sleeper only when the tasks queued outnumber the idle workers that are
//!   awake (spinning or yielding): those take the task without a system call.
//! - A wake-up is granted to one sleeper, which the waker takes off the `sleepers` count at once
//!   (under the lock), so the submits that come while that worker gets up (tens of µs where the
//!   kernel must wake a halted virtual CPU) see no sleeper and make no system call. Before, each
//!   of them notified the condition variable again: one `futex` call per task.
//!
//! A worker counts as idle only while it holds no task: it leaves the idle count before it pops,
//! so a submitter never counts on a worker that is about to run something else.
//!
//! A submit and a worker going to sleep must not miss each other (the task would wait with every
//! worker asleep): each side fences between its store and its load. The block's own submits, one
//! per task, take the light side of an asymmetric fence and the sleeper the heavy one
//! (`asymmetric_fence`); a submit from another thread (a task submitting more) keeps a full fence.
//! A worker that moves a batch of jobs into its own deque (`job_queue`) is a submitter of those
//! jobs to the others, with a full fence, once per batch.

use std::sync::atomic::{self, Ordering};
use std::thread;
use std::time::Duration;

use super::Shared;
use crate::thread::asymmetric_fence;
use crate::thread::job_queue::Pusher;

/// How long a sleeper waits before it looks at the queue again, where the heavy side of the fence
/// failed (it never has on Linux since 4.14): no submit is then sure to see it.
const RECHECK_WITHOUT_FENCE: Duration = Duration::from_millis(1);

/// The spin steps of an idle worker's round: step `k` spins `2^min(k, 6)` hints between two looks
/// at the queue, so a round spins 8 + 16 + 32 + 4 × 64 = 312 hints: 10 µs on AMD EPYC (family
/// 25, 33 ns a hint, measured), more where `pause` is slower. Long enough to span the gap between
/// two submits of the block's thread (0.1 µs to a few), short enough that a worker with nothing
/// to do soon gives its core back. It starts at 8 hints, not 1, because each look reads the
/// cache line the submitter writes on every push (a choice by reasoning: on the shared 2-vCPU
/// machine it was tried on, the two starts timed within noise).
const SPIN_STEPS: std::ops::Range<u32> = 3..10;

/// Yields at the end of each round: they let a thread that shares the core (the block's thread,
/// with `max_workers` = cores) run. Each is a system call, so only two.
const YIELDS_PER_ROUND: u32 = 2;

impl Shared {
    /// After a `submit` pushed a task: wakes a sleeper unless an idle worker that is awake will take
    /// it (rule 2).
    pub(super) fn wake_for_queued(&self, pusher: Pusher) {
        // Pairs with the fence in `sleep` (and in `park_while_over_limit`): either this submitter
        // sees the worker counted as a sleeper, or the worker, counted, sees the task in the queue
        // and does not sleep.
        if pusher == Pusher::Owner && self.light_submits {
            asymmetric_fence::light();
        } else {
            atomic::fence(Ordering::SeqCst);
        }
        self.wake_unless_awake_idle(|| self.queue.len());
    }

    /// After a worker moved a batch of jobs into its own deque: wakes a sleeper, if there is one,
    /// to take half of it (a sleeper would otherwise stay asleep while the batch waits behind the
    /// worker's task).
    pub(super) fn wake_for_batch(&self) {
        // Pairs with the fence in `sleep`: either this worker sees the sleeper counted, or the
        // sleeper, counted, sees the batch (the queue is empty only when every batch is).
        atomic::fence(Ordering::SeqCst);
        // One idle worker that is awake looks at every batch in its spin (no system call).
        self.wake_unless_awake_idle(|| 1);
    }

    /// The rest of `wake_for_queued` and `wake_for_batch`, after the caller's fence: wakes a
    /// sleeper, if there is one, unless the idle workers that are awake number at least `wanted`.
    fn wake_unless_awake_idle(&self, wanted: impl FnOnce() -> usize) {
        let sleepers = self.sleepers.load(Ordering::SeqCst);
        if sleepers == 0 {
            return;
        }
        let awake_idle = self.idle.load(Ordering::SeqCst).saturating_sub(sleepers);
        if awake_idle >= wanted() {
            return;
        }
        let mut granted = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.grant_wake(&mut granted);
    }

    /// Wakes one sleeper, if one is still not granted a wake-up; the caller holds `sleep_lock`
    /// (`granted` is its value). Returns whether it woke one.
    pub(super) fn grant_wake(&self, granted: &mut usize) -> bool {
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return false;
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        *granted += 1;
        self.wakes.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        true
    }

    /// Waits until the queue may have work (`false`) or the pool shuts down (`true`).
    pub(super) fn wait_for_work(&self) -> bool {
        let mut seen = self.queue.pushed();
        loop {
            for step in SPIN_STEPS {
                if !self.queue.is_empty() {
                    return false;
                }
                for _ in 0..1u32 << step.min(6) {
                    std::hint::spin_loop();
                }
            }
            for _ in 0..YIELDS_PER_ROUND {
                if !self.queue.is_empty() {
                    return false;
                }
                thread::yield_now();
            }
            let now = self.queue.pushed();
            if now == seen || self.shutdown.load(Ordering::SeqCst) {
                break;
            }
            seen = now;
        }
        self.sleep()
    }

    /// The sleeper's side of the fence it shares with submits (the heavy side where they take the
    /// light one); returns `false` if a submit that did not see this worker counted may still have
    /// a task this worker does not see.
    pub(super) fn fence_against_submits(&self) -> bool {
        if !self.light_submits {
            atomic::fence(Ordering::SeqCst);
            return true;
        }
        asymmetric_fence::heavy()
    }

    /// Sleeps until granted a wake-up, or the queue has work, or the pool shuts down (`true`).
    fn sleep(&self) -> bool {
        // Everyone from here to the end of the loop below is either counted in `sleepers` or holds
        // one of the grants; one leaving takes a grant if there is one, so `sleepers` never counts
        // a worker twice. A waker may grant this worker a wake-up from the moment it is counted.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // Not under the lock: `membarrier` took 58 µs on average on the 2-vCPU AMD VM (`perf
        // trace`), and the block's thread takes the lock to wake a worker and to join.
        let fenced = self.fence_against_submits();
        self.sleeps.fetch_add(1, Ordering::Relaxed);
        let mut granted = self.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *granted > 0 {
                *granted -= 1;
                break;
            }
            if !self.queue.is_empty() || self.shutdown.load(Ordering::SeqCst) {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                break;
            }
            granted = if fenced {
                self.wake.wait(granted).unwrap_or_else(|e| e.into_inner())
            } else {
                let waited = self.wake.wait_timeout(granted, RECHECK_WITHOUT_FENCE);
                waited.unwrap_or_else(|e| e.into_inner()).0
            };
        }
        self.queue.is_empty() && self.shutdown.load(Ordering::SeqCst)
    }
}
