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
/// How long after a spawned worker's loss the next spawn waits at least, and at most (see
/// `job_ending`). After a worker's `abort` here, the other worker of its job was seen gone 100–150
/// ms after it (3 runs of 8; in the other 5 it had not answered its hello yet), so 250 ms after
/// the last loss leaves room for a loaded machine.
const SPAWN_SETTLE: Duration = Duration::from_millis(250);
const SPAWN_SETTLE_MOST: Duration = Duration::from_secs(2);
/// How long a worker may take to answer its hello. It answers once MPI has started in it and it
/// has read its executable (for the digest: about 0.1 s for a 100 MB test binary here); a worker
/// that has not answered by then is given up, so that its calls go to others.
pub(crate) const HELLO_DEADLINE: Duration = Duration::from_secs(60);

impl Ranks {
    /// Checks, every `LIVENESS_EVERY`, that the local workers still run, and that none has been
    /// greeting for longer than [`HELLO_DEADLINE`].
    pub(crate) fn watch_liveness(&mut self) {
        if self.last_liveness.elapsed() < LIVENESS_EVERY {
            return;
        }
        self.last_liveness = Instant::now();
        for slot in 0..self.workers.len() {
            let worker = &self.workers[slot];
            if worker.state == State::Greeting && worker.greeted.elapsed() > HELLO_DEADLINE {
                log::warn!(
                    "executor: MPI worker {slot} did not answer its hello within {:?}; given up",
                    HELLO_DEADLINE
                );
                self.lost(slot, WorkerDeath::Vanished);
                self.failure = Some(format!(
                    "an MPI worker did not answer its hello within {HELLO_DEADLINE:?}"
                ));
            } else if worker.live() && self.gone(slot) {
                log::warn!("executor: MPI worker {slot} (pid {}) is gone", worker.pid);
                self.lost(slot, WorkerDeath::Vanished);
            }
        }
    }

    /// Whether worker `slot` is known to be gone: it runs on this host and its pid has ended.
    /// (A worker that has not answered its hello has no pid yet; one on another host cannot be
    /// watched this way.)
    pub(crate) fn gone(&self, slot: usize) -> bool {
        let worker = &self.workers[slot];
        worker.local && worker.pid != 0 && is_gone(worker.pid)
    }
    /// Worker `slot` is gone: its running call fails, the calls queued behind it go back.
    pub(crate) fn lost(&mut self, slot: usize, death: WorkerDeath) {
        let worker = &mut self.workers[slot];
        if !worker.live() {
            return;
        }
        worker.state = State::Dead;
        let (pid, spawned, comm) = (worker.pid, worker.spawned, worker.comm);
        worker.initializing = false;
        // Sends to it never complete: forget them (their bytes are leaked, see `PendingSend`).
        self.sends.retain(|(to, _)| *to != slot);
        // Open MPI ends a spawned job when one of its processes dies: its workers that have not
        // answered their hello yet are dead too, and, with no pid to watch, would otherwise count
        // as live for ever (no replacement would be spawned for them).
        if spawned {
            self.last_spawned_loss = Some(Instant::now());
            let greeting: Vec<usize> = (0..self.workers.len())
                .filter(|&s| {
                    self.workers[s].comm == comm && self.workers[s].state == State::Greeting
                })
                .collect();
            for sibling in greeting {
                log::warn!("executor: MPI worker {sibling} ends with its spawned job");
                self.lost(sibling, death);
            }
        }
        let worker = &mut self.workers[slot];
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
        if !self.may_spawn || self.spawn_failures >= SPAWN_ATTEMPTS || self.job_ending() {
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
    /// Whether a spawned job that lost a worker may still be ending. Open MPI ends the whole job
    /// then, and a spawn made while it does so can wait for ever inside `MPI_Comm_spawn` (seen
    /// here: 1 in about 30 runs of a worker's `abort`, two runs at a time on 2 cores, the driver
    /// stuck in `PMIx_Lookup`; none in 120 runs with this wait). So no spawn follows a loss until the job's other workers are gone and
    /// [`SPAWN_SETTLE`] has passed, or, if some live on (a job that survives the loss of a
    /// process), until [`SPAWN_SETTLE_MOST`] has.
    fn job_ending(&self) -> bool {
        let Some(lost) = self.last_spawned_loss else {
            return false;
        };
        let since = lost.elapsed();
        if since < SPAWN_SETTLE {
            return true;
        }
        if since >= SPAWN_SETTLE_MOST {
            return false;
        }
        let dead_jobs: Vec<Comm> = self
            .workers
            .iter()
            .filter(|w| w.spawned && w.state == State::Dead)
            .map(|w| w.comm)
            .collect();
        self.workers
            .iter()
            .enumerate()
            .any(|(slot, w)| w.live() && dead_jobs.contains(&w.comm) && !self.gone(slot))
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
