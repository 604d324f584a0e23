//! The workers' lives, as the driver sees them: watching that they run, losing them, spawning
//! them when there is no launcher, giving up when none can be had, and stopping them at exit.

use std::ffi::CString;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ranks, State, Worker};
use crate::mpi::comm::{self as transport, Comm, Keep};
use crate::mpi::pool::Block;
use crate::mpi::worker::{SPAWNED_WORKER_ARG, STOP_WITHOUT_FINALIZE};
use crate::remote::queue::{Outcome, RemoteJobRef};
use crate::task::error::{TaskError, WorkerDeath};

/// After this many failed spawns in a row, queued calls fail instead of waiting.
const SPAWN_ATTEMPTS: usize = 3;
/// How often the pids of workers running calls are checked.
const LIVENESS_EVERY: Duration = Duration::from_millis(20);
/// How long the exit waits for workers still greeting or sends still in progress.
const EXIT_GRACE: Duration = Duration::from_secs(10);

impl Ranks {
    /// Checks, every `LIVENESS_EVERY`, that the local workers with calls in flight still run.
    pub(crate) fn watch_liveness(&mut self) {
        if self.last_liveness.elapsed() < LIVENESS_EVERY {
            return;
        }
        self.last_liveness = Instant::now();
        for slot in 0..self.workers.len() {
            let worker = &self.workers[slot];
            let watched = worker.live() && worker.local && worker.pid != 0;
            if watched && is_gone(worker.pid) {
                log::warn!("executor: MPI worker {slot} (pid {}) is gone", worker.pid);
                self.lost(slot, WorkerDeath::Vanished);
            }
        }
    }
    /// Worker `slot` is gone: its running call fails, the calls queued behind it go back.
    pub(crate) fn lost(&mut self, slot: usize, death: WorkerDeath) {
        let worker = &mut self.workers[slot];
        if !worker.live() {
            return;
        }
        worker.state = State::Dead;
        let pid = worker.pid;
        worker.initializing = false;
        let mut in_flight: Vec<(u64, Option<RemoteJobRef>, Arc<Block>)> =
            worker.in_flight.drain(..).collect();
        if let Some(id) = worker.serving.take() {
            if let Some((_, _, block)) = in_flight.first() {
                debug_assert_eq!(block.backend.id, id);
                block.backend.in_use.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.failure = Some(format!("the MPI worker (pid {pid}) {death}"));
        if in_flight.is_empty() {
            return;
        }
        let (_, running, block) = in_flight.remove(0);
        let rest: Vec<RemoteJobRef> = in_flight
            .into_iter()
            .filter_map(|(_, job, _)| job)
            .collect();
        block.requeue(rest);
        // An initializer that was running has no future: its block's calls go to other workers.
        if let Some(running) = running {
            // Its retries left, it runs again, first in line (a lost rank is not replaced under a
            // launcher, but the other ranks serve it; spawned workers are spawned anew).
            let budget = block.backend.retries_of(&running.job().options());
            if running.job().try_retry(budget) {
                log::warn!("executor: MPI worker {slot} (pid {pid}) {death}: its call is retried");
                block.requeue(vec![running]);
                return;
            }
            // SAFETY: dispatched to this worker and taken out of its list: resolved once, here.
            unsafe {
                block.resolve(
                    running,
                    Outcome::Failed(TaskError::WorkerDied {
                        pid,
                        death,
                        call: None,
                    }),
                )
            };
        }
    }
    /// Without a launcher, spawns workers when a block with queued calls has fewer live workers
    /// than it may use.
    pub(crate) fn spawn_if_needed(&mut self) {
        if !self.may_spawn || self.spawn_failures >= SPAWN_ATTEMPTS {
            return;
        }
        let live = self.workers.iter().filter(|w| w.live()).count();
        let wanted = self
            .blocks
            .iter()
            .filter(|b| b.backend.queued.load(Ordering::SeqCst) > 0)
            .map(|b| {
                b.backend
                    .max_workers
                    .unwrap_or_else(default_spawned_workers)
            })
            .max()
            .unwrap_or(0);
        if live >= wanted {
            return;
        }
        let count = wanted - live;
        let program = std::env::current_exe()
            .map_err(|e| format!("cannot find the current executable: {e}"))
            .and_then(|path| {
                let path = crate::remote::executable::on_disk(path);
                CString::new(path.as_os_str().as_encoded_bytes())
                    .map_err(|_| "the executable's path holds a NUL byte".to_string())
            });
        let args = [CString::new(SPAWNED_WORKER_ARG).expect("no NUL")];
        match program.and_then(|program| transport::spawn(&program, &args, count)) {
            Ok(inter) => {
                log::debug!("executor: spawned {count} MPI workers");
                for rank in 0..count {
                    self.greet(inter, rank, true);
                }
            }
            Err(why) => {
                log::warn!("executor: could not spawn MPI workers: {why}");
                self.spawn_failures += 1;
                self.failure = Some(why);
            }
        }
    }
    /// Fails queued calls when no worker can ever run them: none is live, and none can be spawned.
    pub(crate) fn fail_if_hopeless(&mut self) {
        let can_spawn = self.may_spawn && self.spawn_failures < SPAWN_ATTEMPTS;
        if can_spawn || self.workers.iter().any(Worker::live) {
            return;
        }
        let why = self
            .failure
            .clone()
            .unwrap_or_else(|| "the MPI job has no worker ranks".to_string());
        let error = TaskError::WorkerStart(why);
        for block in &self.blocks {
            if block.backend.queued.load(Ordering::SeqCst) > 0 {
                block.fail_queued(&error);
            }
        }
    }
    /// Stops every worker, disconnects from spawned ones, and finalises MPI.
    pub(crate) fn shut_down(mut self) {
        let deadline = Instant::now() + EXIT_GRACE;
        // Answers to the hello still on their way are received first, so none is left pending.
        while self.workers.iter().any(|w| w.state == State::Greeting) && Instant::now() < deadline {
            self.receive();
            self.watch_liveness();
        }
        // `MPI_Finalize` synchronises with every rank of the job: with a launched rank dead (under
        // `mpirun --enable-recovery`, which keeps the job alive) it would wait forever, here and in
        // the workers. Everyone exits without it then; the launcher knows about the dead rank.
        let lost_a_rank = self
            .workers
            .iter()
            .any(|w| !w.spawned && w.state == State::Dead);
        let stop = match lost_a_rank {
            true => STOP_WITHOUT_FINALIZE.to_vec(),
            false => Vec::new(),
        };
        for slot in 0..self.workers.len() {
            let worker = &self.workers[slot];
            if worker.live() || worker.state == State::Refused {
                let (comm, rank) = (worker.comm, worker.rank);
                self.start_send(slot, comm, rank, Keep::Owned(stop.clone()));
            }
        }
        while !self.sends.is_empty() && Instant::now() < deadline {
            self.test_sends();
        }
        let mut disconnected: Vec<Comm> = Vec::new();
        let dead_groups: Vec<Comm> = self
            .workers
            .iter()
            .filter(|w| w.spawned && w.state == State::Dead)
            .map(|w| w.comm)
            .collect();
        for worker in self.workers.iter().filter(|w| w.spawned) {
            // A spawn whose workers died cannot take part in the (collective) disconnect.
            if !disconnected.contains(&worker.comm) && !dead_groups.contains(&worker.comm) {
                disconnected.push(worker.comm);
                transport::disconnect(worker.comm);
            }
        }
        if lost_a_rank {
            log::warn!("executor: a worker rank died; exiting without MPI_Finalize");
            return;
        }
        transport::finalize();
    }
}

fn default_spawned_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether process `pid` is gone, or a zombie (it runs no more code).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}
