//! The driver's view of its MPI workers: greeting them, sending them calls, receiving outcomes,
//! watching that they live, spawning them, and stopping them at exit. Everything here runs on the
//! driver thread (`mpi::driver`), the process's one MPI thread.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::mpi::comm::{self as transport, Comm, Keep, PendingSend};
use crate::mpi::driver::Pacing;
use crate::mpi::pool::Block;
use crate::mpi::worker::{split_frame, DETACH};
use crate::remote::call::CallStatus;
use crate::remote::protocol::{write_frame_into, CallHead, OutcomeHead};
use crate::remote::queue::{Outcome, Queued, RemoteJobRef};
use crate::remote::serve::initializer_failure;
use crate::remote::tail::Tail;
use crate::remote::window::Window;
use crate::remote::wire::{self, Fields, Kind};
use crate::task::error::WorkerDeath;

mod lifecycle;

/// A worker as the driver sees it.
struct Worker {
    comm: Comm,
    /// Its rank in `comm`.
    rank: usize,
    /// Spawned: the spawn's intercommunicator is disconnected at exit.
    spawned: bool,
    state: State,
    pid: u32,
    /// It runs on this host, so its pid can be watched.
    local: bool,
    /// Calls sent and not answered, oldest first: an initializer has no job.
    in_flight: VecDeque<(u64, Option<RemoteJobRef>, Arc<Block>)>,
    /// The blocks whose initializer this worker has been sent.
    initialized: Vec<u64>,
    /// Its initializer for the block it serves has not answered yet: nothing else is sent.
    initializing: bool,
    /// The block whose calls it has in flight.
    serving: Option<u64>,
    /// When its hello was sent: a worker still greeting after [`lifecycle::HELLO_DEADLINE`] is
    /// given up (its pid is not known yet, so it cannot be watched).
    greeted: Instant,
    window: Window,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Ready,
    Refused,
    Dead,
}

impl Worker {
    fn live(&self) -> bool {
        matches!(self.state, State::Greeting | State::Ready)
    }
}

/// The driver thread's own state.
pub(crate) struct Ranks {
    workers: Vec<Worker>,
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) generation: u64,
    /// Sends in progress, each with the slot of the worker it goes to (dropped when that worker
    /// is lost: a send to a dead rank never completes).
    sends: Vec<(usize, PendingSend)>,
    next_call_id: u64,
    next_index: usize,
    /// Whether more workers may be spawned (not launched with several ranks).
    may_spawn: bool,
    spawn_failures: usize,
    /// Why workers could not be had, for the calls that then fail.
    failure: Option<String>,
    host: String,
    hello: Vec<u8>,
    last_liveness: Instant,
    /// When a spawned worker was last lost: no spawn follows until its job has ended (see
    /// `spawn_if_needed`).
    last_spawned_loss: Option<Instant>,
    buffer: Vec<u8>,
    /// Calls resolved in this sweep, by block, and those of them that panicked.
    finished: Vec<(Arc<Block>, usize, Vec<RemoteJobRef>)>,
}

impl Ranks {
    /// The driver's state before any worker: `hello` is what every hello carries after the
    /// worker's index (the executable's digest).
    pub(crate) fn new(may_spawn: bool, hello: Vec<u8>) -> Self {
        Ranks {
            workers: Vec::new(),
            blocks: Vec::new(),
            generation: u64::MAX,
            sends: Vec::new(),
            next_call_id: 0,
            next_index: 0,
            may_spawn,
            spawn_failures: 0,
            failure: None,
            host: transport::host_name(),
            hello,
            last_liveness: Instant::now(),
            last_spawned_loss: None,
            buffer: Vec::new(),
            finished: Vec::new(),
        }
    }

    /// Sends the hello to a new worker.
    pub(crate) fn greet(&mut self, comm: Comm, rank: usize, spawned: bool) {
        let mut payload = (self.next_index as u64).to_le_bytes().to_vec();
        payload.extend_from_slice(&self.hello);
        self.next_index += 1;
        let mut frame = Vec::new();
        write_frame_into(&mut frame, Kind::Hello, &payload);
        let slot = self.workers.len();
        let state = match PendingSend::start(comm, rank, Keep::Owned(frame)) {
            Ok(send) => {
                self.sends.push((slot, send));
                State::Greeting
            }
            Err(why) => {
                self.failure = Some(why);
                State::Dead
            }
        };
        self.workers.push(Worker {
            comm,
            rank,
            spawned,
            state,
            pid: 0,
            local: false,
            in_flight: VecDeque::new(),
            initialized: Vec::new(),
            initializing: false,
            serving: None,
            greeted: Instant::now(),
            window: Window::new(),
        });
    }

    /// Whether something is on its way: an answer to a hello or a call, or a send in progress.
    pub(crate) fn expecting(&self) -> bool {
        !self.sends.is_empty()
            || self
                .workers
                .iter()
                .any(|w| !w.in_flight.is_empty() || w.state == State::Greeting)
    }

    /// Each worker as the driver's pacing sees it (see `driver::quiet_for`).
    pub(crate) fn pacing(&self) -> impl Iterator<Item = Pacing> + '_ {
        self.workers.iter().map(|w| Pacing {
            greeting: w.state == State::Greeting,
            in_flight: w.in_flight.len(),
            average_ns: w.window.average_ns(),
            detached_results: w.window.average_bytes() > DETACH as f64,
        })
    }

    /// Receives every message that has arrived; whether there was any.
    pub(crate) fn receive(&mut self) -> bool {
        let mut comms: Vec<Comm> = Vec::new();
        for worker in self.workers.iter().filter(|w| w.live()) {
            if !comms.contains(&worker.comm) {
                comms.push(worker.comm);
            }
        }
        let mut any = false;
        for comm in comms {
            while let Ok(Some(arrived)) = transport::poll(comm, None) {
                any = true;
                let Some(slot) = self
                    .workers
                    .iter()
                    .position(|w| w.comm == comm && w.rank == arrived.source)
                else {
                    // Not one of ours (cannot happen): take it off the wire.
                    let _ = transport::receive(comm, arrived, &mut Vec::new());
                    continue;
                };
                let mut message = std::mem::take(&mut self.buffer);
                message.clear();
                let result = transport::receive(comm, arrived, &mut message)
                    .and_then(|()| self.take_frames(slot, &message));
                if let Err(why) = result {
                    if self.gone(slot) {
                        log::warn!("executor: MPI worker {slot} died while sending: {why}");
                        self.lost(slot, WorkerDeath::Vanished);
                    } else {
                        log::warn!("executor: MPI worker {slot} broke the protocol: {why}");
                        self.lost(slot, WorkerDeath::BrokeProtocol);
                    }
                }
                if message.capacity() <= DETACH * 64 {
                    self.buffer = message;
                }
            }
        }
        self.count_finished();
        any
    }

    /// Tells the blocks how many of their calls the last sweep resolved.
    pub(crate) fn count_finished(&mut self) {
        for (block, count, panicked) in self.finished.drain(..) {
            block.finished(count, panicked);
        }
    }

    /// Handles the frames of one message from worker `slot`.
    pub(crate) fn take_frames(&mut self, slot: usize, message: &[u8]) -> Result<(), String> {
        let mut at = 0;
        while at < message.len() {
            let (comm, rank) = (self.workers[slot].comm, self.workers[slot].rank);
            let (kind, present, detached) = split_frame(&message[at..], |len| {
                // A worker that dies between a result's frame and its rest is seen by its pid.
                let arrived = transport::wait_for(comm, rank, || !self.gone(slot))?;
                if arrived.len != len {
                    return Err(format!("a result's {len} bytes came as {}", arrived.len));
                }
                let mut rest = Vec::new();
                transport::receive(comm, arrived, &mut rest)?;
                Ok(rest)
            })?;
            let payload = &message[at + wire::HEADER_LEN..at + wire::HEADER_LEN + present];
            at += wire::HEADER_LEN + present;
            match kind {
                Kind::Ready | Kind::Refused if self.workers[slot].state == State::Greeting => {
                    self.answered(slot, kind, payload)
                }
                Kind::Outcome if self.workers[slot].state == State::Ready => {
                    self.outcome(slot, payload, detached)?
                }
                other => return Err(format!("unexpected {other:?} message")),
            }
        }
        Ok(())
    }

    /// A worker answered the hello.
    pub(crate) fn answered(&mut self, slot: usize, kind: Kind, payload: &[u8]) {
        let worker = &mut self.workers[slot];
        if kind == Kind::Refused {
            let why = String::from_utf8_lossy(payload).into_owned();
            log::warn!("executor: MPI worker {slot} refused to serve: {why}");
            worker.state = State::Refused;
            // A spawn whose workers refuse (another executable at the path) counts as a failed
            // spawn, once however many of its workers refuse: after `SPAWN_ATTEMPTS` of them the
            // calls fail with why, rather than spawning refusers for ever.
            let comm = worker.comm;
            let counted = self
                .workers
                .iter()
                .enumerate()
                .any(|(other, w)| other != slot && w.comm == comm && w.state == State::Refused);
            if self.workers[slot].spawned && !counted {
                self.spawn_failures += 1;
            }
            self.failure = Some(why);
            return;
        }
        let mut fields = Fields::new(payload);
        let pid = fields.u64("pid").unwrap_or(0);
        let _rank = fields.u64("rank").unwrap_or(0);
        let host = String::from_utf8_lossy(fields.rest()).into_owned();
        worker.pid = (pid & 0xffff_ffff) as u32;
        worker.local = host == self.host;
        worker.state = State::Ready;
        self.spawn_failures = 0;
        log::debug!(
            "executor: MPI worker {slot} ready (pid {}, on {host})",
            worker.pid
        );
    }

    /// A call's outcome arrived.
    pub(crate) fn outcome(
        &mut self,
        slot: usize,
        payload: &[u8],
        detached: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let (
            OutcomeHead {
                id,
                status,
                elapsed_ns,
                tail_len,
                ..
            },
            inline,
        ) = OutcomeHead::parse(payload).map_err(|e| e.to_string())?;
        let worker = &mut self.workers[slot];
        match worker.in_flight.front() {
            Some((expected, _, _)) if *expected == id => {}
            _ => return Err(format!("an answer to call {id}, which was not sent")),
        }
        let (_, job, block) = worker.in_flight.pop_front().expect("checked above");
        let Some(job) = job else {
            // The block's initializer answered.
            worker.initializing = false;
            if worker.in_flight.is_empty() {
                worker.serving = None;
                block.backend.in_use.fetch_sub(1, Ordering::SeqCst);
            }
            if let Some(why) = initializer_failure(status, inline) {
                block.break_with(why);
            }
            return Ok(());
        };
        let returned = inline.len() + detached.as_ref().map_or(0, Vec::len);
        worker.window.record(elapsed_ns, returned);
        if worker.in_flight.is_empty() {
            worker.serving = None;
            block.backend.in_use.fetch_sub(1, Ordering::SeqCst);
        }
        // A large byte vector or string result comes detached, as its raw tail: the future gets
        // that vector itself. (A raw tail that came inline is decoded from the message.)
        let mut detached = detached;
        let tail = match &detached {
            // A string's bytes are checked when they are decoded.
            Some(rest) if tail_len > 0 && rest.len() as u64 == tail_len => {
                detached.take().map(Tail::Bytes)
            }
            _ => None,
        };
        let bytes = match &detached {
            Some(rest) if inline.is_empty() => rest.as_slice(),
            Some(_) => return Err("a detached result after inline bytes".to_string()),
            None => inline,
        };
        if status == CallStatus::Panicked {
            // A panic runs again only when the call asked (`.retry_panics()`), within its retries.
            let options = job.job().options();
            if options.retry_panics && job.job().try_retry(block.backend.retries_of(&options)) {
                log::debug!("executor: MPI worker {slot}: a call panicked and is retried");
                block.requeue(vec![job]);
                return Ok(());
            }
        }
        // SAFETY: the call was claimed when it was sent, and is resolved once, here.
        let panicked = unsafe { job.resolve(Outcome::Answered(status, bytes, tail)) };
        // Counted in the block once per sweep (`count_finished`): one lock and one wake-up for
        // many tiny calls.
        match self
            .finished
            .iter_mut()
            .find(|(b, _, _)| b.backend.id == block.backend.id)
        {
            Some((_, count, jobs)) => {
                *count += 1;
                jobs.extend(panicked);
            }
            None => self
                .finished
                .push((block, 1, panicked.into_iter().collect())),
        }
        Ok(())
    }

    /// Forgets sends that completed; whether any did.
    pub(crate) fn test_sends(&mut self) -> bool {
        let before = self.sends.len();
        // A send that failed (its worker died) stays, not done, until its worker is found gone;
        // the others that completed in the same call are marked all the same.
        let _ = PendingSend::test_all(self.sends.iter_mut().map(|(_, send)| send));
        self.sends.retain(|(_, send)| !send.is_done());
        self.sends.len() != before
    }

    /// Sends queued calls to workers with room; whether any were sent.
    pub(crate) fn dispatch(&mut self) -> bool {
        if !self
            .blocks
            .iter()
            .any(|b| b.backend.queued.load(Ordering::SeqCst) > 0)
        {
            return false;
        }
        let mut sent = false;
        for slot in 0..self.workers.len() {
            let worker = &self.workers[slot];
            if worker.state != State::Ready
                || worker.initializing
                || worker.in_flight.len() >= worker.window.calls()
            {
                continue;
            }
            let block = match worker.serving {
                Some(id) => self.blocks.iter().find(|b| b.backend.id == id).cloned(),
                None => self.blocks.iter().find(|b| wants_a_worker(b)).cloned(),
            };
            let Some(block) = block else {
                continue;
            };
            self.workers[slot].window.serve(block.backend.id);
            // Rotate, so that blocks take turns at free workers.
            if let Some(at) = self
                .blocks
                .iter()
                .position(|b| b.backend.id == block.backend.id)
            {
                let taken = self.blocks.remove(at);
                self.blocks.push(taken);
            }
            sent |= self.send_calls(slot, &block);
        }
        sent
    }

    /// Sends calls of `block` to worker `slot`, up to its window; or first, alone, the block's
    /// initializer, if the worker has not run it.
    pub(crate) fn send_calls(&mut self, slot: usize, block: &Arc<Block>) -> bool {
        if let Some(initializer) = &block.backend.initializer {
            if !self.workers[slot].initialized.contains(&block.backend.id) {
                return self.send_initializer(slot, block, initializer);
            }
        }
        let room = self.workers[slot].window.room(
            self.workers[slot].in_flight.len(),
            block.backend.queued.load(Ordering::SeqCst),
            self.workers_for(block),
        );
        let mut message = Vec::new();
        let mut cancelled = 0;
        let mut count = 0;
        for Queued { job, claimed } in block.pop(room) {
            if !claimed && !job.job().try_dispatch() {
                cancelled += 1;
                continue;
            }
            let Some(request) = job.job().request() else {
                // Resolved already (cannot happen to a call just claimed): nothing to send, and
                // counted as finished, so that its block does not wait for it.
                cancelled += 1;
                continue;
            };
            count += 1;
            let id = self.next_call_id;
            self.next_call_id += 1;
            let worker = &mut self.workers[slot];
            if worker.in_flight.is_empty() && worker.serving.is_none() {
                worker.serving = Some(block.backend.id);
                block.backend.in_use.fetch_add(1, Ordering::SeqCst);
            }
            worker
                .in_flight
                .push_back((id, Some(job), Arc::clone(block)));
            if !request.write_call_head(id, &mut message) {
                continue;
            }
            let detach = request.arguments.raw_tail_len() >= DETACH;
            let parts = request.arguments.parts();
            let inline = if detach {
                &parts[..parts.len() - 1]
            } else {
                parts
            };
            for part in inline {
                message.extend_from_slice(part);
            }
            if detach {
                // The frame runs past its message: its raw tail follows as a message of its own,
                // sent from the call's own buffer.
                let (comm, rank) = (self.workers[slot].comm, self.workers[slot].rank);
                let head = std::mem::take(&mut message);
                self.start_send(slot, comm, rank, Keep::Owned(head));
                self.start_send(slot, comm, rank, Keep::Tail(Arc::clone(&request)));
            }
        }
        if !message.is_empty() {
            let (comm, rank) = (self.workers[slot].comm, self.workers[slot].rank);
            self.start_send(slot, comm, rank, Keep::Owned(message));
        }
        if cancelled > 0 {
            block.finished(cancelled, None);
        }
        count > 0 || cancelled > 0
    }

    /// How many workers could take `block`'s calls now: ready ones that serve it or no block,
    /// within its `max_workers`.
    fn workers_for(&self, block: &Block) -> usize {
        let id = block.backend.id;
        let ready = self
            .workers
            .iter()
            .filter(|w| w.state == State::Ready && w.serving.is_none_or(|s| s == id))
            .count();
        block
            .backend
            .max_workers
            .map_or(ready, |most| ready.min(most))
    }

    /// Sends `block`'s initializer to worker `slot`; its calls follow once it has answered.
    fn send_initializer(
        &mut self,
        slot: usize,
        block: &Arc<Block>,
        initializer: &crate::block::options::ProcessInitializer,
    ) -> bool {
        let Ok(arguments) = &initializer.arguments else {
            return false; // the block is broken from the start (`MpiBackend::open`)
        };
        let id = self.next_call_id;
        self.next_call_id += 1;
        let worker = &mut self.workers[slot];
        worker.initialized.push(block.backend.id);
        worker.initializing = true;
        if worker.in_flight.is_empty() && worker.serving.is_none() {
            worker.serving = Some(block.backend.id);
            block.backend.in_use.fetch_add(1, Ordering::SeqCst);
        }
        worker.in_flight.push_back((id, None, Arc::clone(block)));
        let mut message = Vec::new();
        let head = CallHead {
            id,
            trampoline: initializer.trampoline as i64,
            function: initializer.function as i64,
            tail_len: 0,
            text: false,
        };
        // An initializer's arguments over the frame limit are refused where they are encoded
        // (the block is then broken from the start); were they not, they would go as none, and
        // the initializer would fail, and with it the block.
        if head.write(arguments.len(), &mut message) {
            message.extend_from_slice(arguments);
        } else {
            head.write(0, &mut message);
        }
        let (comm, rank) = (worker.comm, worker.rank);
        self.start_send(slot, comm, rank, Keep::Owned(message));
        true
    }

    pub(crate) fn start_send(&mut self, slot: usize, comm: Comm, rank: usize, bytes: Keep) {
        match PendingSend::start(comm, rank, bytes) {
            Ok(send) => self.sends.push((slot, send)),
            Err(why) => {
                log::warn!("executor: sending to MPI worker {slot} failed: {why}");
                self.lost(slot, WorkerDeath::BrokeProtocol);
            }
        }
    }
}

/// Whether a block has calls queued and may use another worker.
fn wants_a_worker(block: &Block) -> bool {
    block.backend.queued.load(Ordering::SeqCst) > 0
        && !block.backend.broken.load(Ordering::SeqCst)
        && block
            .backend
            .max_workers
            .is_none_or(|most| block.backend.in_use.load(Ordering::SeqCst) < most)
}
