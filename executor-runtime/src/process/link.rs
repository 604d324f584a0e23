//! One worker process and the two parent threads that talk to it.
//!
//! `start` executes the current binary with one end of a socket pair and a shared-memory ring for
//! large payloads (`ring`); the *writer* thread (here) sends the hello and then calls from the
//! block's queue, up to the link's window; the *reader* thread (`reader`) receives the handshake
//! answer and then outcomes, in the order the calls were sent, and resolves their futures. When the
//! channel closes or carries garbage, the reader reaps the worker, blames the call it was running,
//! puts the others back in the queue and lets the pool start a replacement. With a `timeout`, one
//! more thread per pool (`watch_timeouts`) kills the worker of a call that overran it.

use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Once};
use std::thread;
use std::time::{Duration, Instant};

mod reader;

use crate::process::memory_limit::{self, StderrPipe, StderrRelay};
use crate::process::pool::{ProcessQueue, ProcessState};
use crate::process::ring::{self, Ring, Sender, Side};
use crate::process::spawn::{self, worker_env, WorkerProcess};
use crate::process::worker::Hello;
use crate::remote::queue::{QueueState, Queued, RemoteJobRef};
use crate::remote::wire::{self, Kind, ReadError};
/// Arguments longer than this are written straight from their buffer instead of being copied
/// into a batch with other calls.
const COPY_LIMIT: usize = 1 << 16;

/// Starts a worker process in `slot` (claimed by `ProcessQueue::slot_to_start`) and its two threads.
pub(crate) fn start(shared: &Arc<ProcessQueue>, slot: usize, generation: u64) {
    let (child, channel, relay, ring) = match spawn_worker(shared, slot) {
        Ok(started) => started,
        Err(why) => return start_failed(shared, slot, generation, why),
    };
    let pid = child.id();
    let write_half = match channel.try_clone() {
        Ok(half) => half,
        Err(error) => {
            reap_quietly(child);
            let why = format!("could not duplicate the socket of worker {slot}: {error}");
            return start_failed(shared, slot, generation, why);
        }
    };
    log::debug!(
        "executor: process pool {} started worker {slot} (pid {pid})",
        shared.backend.id
    );
    // Each half watches the socket of the thread that uses it, and goes with it.
    let (ring_sender, ring_receiver) = ring
        .map(|ring| ring.split(Side::Pool, write_half.as_raw_fd(), channel.as_raw_fd()))
        .unzip();
    let writer = {
        let shared = Arc::clone(shared);
        let out = SocketWriter(write_half);
        thread::Builder::new()
            .name(format!("executor-p{}-send-{slot}", shared.backend.id))
            .spawn(move || writer_loop(&shared, slot, generation, out, ring_sender))
    };
    let writer = match writer {
        Ok(handle) => handle,
        Err(error) => {
            reap_quietly(child);
            let what = format!("the thread that sends calls to worker {slot}");
            return start_failed(shared, slot, generation, could_not_start(&what, &error));
        }
    };
    let reader = {
        let shared = Arc::clone(shared);
        thread::Builder::new()
            .name(format!("executor-p{}-recv-{slot}", shared.backend.id))
            .spawn(move || {
                let worker = (child, relay);
                reader::reader_loop(&shared, slot, generation, worker, channel, ring_receiver)
            })
    };
    let mut state = shared.lock();
    state.backend.links[slot].pid = pid;
    state.backend.threads.push(writer);
    ensure_watcher(shared, &mut state);
    match reader {
        Ok(handle) => state.backend.threads.push(handle),
        Err(error) => {
            // The child went into the closure that failed to start and was killed and reaped
            // with it. The writer stops when it sees the slot dead.
            drop(state);
            let what = format!("the thread that reads the answers of worker {slot}");
            start_failed(shared, slot, generation, could_not_start(&what, &error));
        }
    }
}

/// Starts the timeout watcher if calls are timed and it does not run yet: with the first worker
/// of a block with a `timeout`, or when the first call with a timeout of its own is sent. Called
/// with the lock held.
fn ensure_watcher(shared: &Arc<ProcessQueue>, state: &mut QueueState<ProcessState>) {
    if state.backend.watching || !shared.backend.timed() {
        return;
    }
    let watcher = {
        let shared = Arc::clone(shared);
        thread::Builder::new()
            .name(format!("executor-p{}-timeouts", shared.backend.id))
            .spawn(move || watch_timeouts(&shared))
    };
    match watcher {
        Ok(handle) => {
            state.backend.watching = true;
            state.backend.threads.push(handle);
        }
        // Tried again with the next worker's start or the next batch sent.
        Err(error) => log::warn!(
            "executor: process pool {}: {}",
            shared.backend.id,
            could_not_start("the thread that enforces the timeout", &error)
        ),
    }
}

/// Why `what` (a worker process, or one of a link's threads) could not start. `EAGAIN` from
/// `posix_spawn` or `pthread_create` ("Resource temporarily unavailable") nearly always means the
/// user's limit on processes and threads, which the message then names.
fn could_not_start(what: &str, error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::EAGAIN) => format!(
            "could not start {what}: {error} (the limit on this user's threads and processes, \
             RLIMIT_NPROC (`ulimit -u`), or the system's, was probably reached)"
        ),
        _ => format!("could not start {what}: {error}"),
    }
}

/// A worker could not be started, or did not become ready: its slot is freed, any calls it held go
/// back to the queue, and the pool tries again (up to `START_ATTEMPTS` in a row) or fails the queue.
fn start_failed(shared: &Arc<ProcessQueue>, slot: usize, generation: u64, why: String) {
    log::warn!(
        "executor: process pool {} could not start a worker: {why}",
        shared.backend.id
    );
    let mut state = shared.lock();
    if state.backend.links[slot].generation == generation {
        let link = &mut state.backend.links[slot];
        link.alive = false;
        let held: Vec<RemoteJobRef> = link.in_flight.drain(..).map(|(_, job)| job).collect();
        for job in held.into_iter().rev() {
            state.queue.push_front(Queued { job, claimed: true });
        }
    }
    shared.start_failed(&mut state, why);
    let step = shared.next_step(&mut state);
    drop(state);
    shared.carry_out(step);
}

fn reap_quietly(child: WorkerProcess) {
    // Dropping an unreaped worker kills and reaps it.
    drop(child);
}

/// What `spawn_worker` gives: the worker, the pool's end of its socket, the relay of its standard
/// error under a memory limit, and its shared-memory ring, if one could be made.
type Spawned = (WorkerProcess, UnixStream, Option<StderrRelay>, Option<Ring>);

/// Executes the current binary as a worker, with one end of a fresh socket pair and a fresh
/// shared-memory ring (see `ring`; without one, every tail crosses the socket); under a memory
/// limit, applies it and relays the worker's standard error (see `memory_limit`).
fn spawn_worker(shared: &ProcessQueue, slot: usize) -> Result<Spawned, String> {
    let (path, _) = shared.backend.executable.as_ref().map_err(Clone::clone)?;
    let (parent_end, child_end) =
        UnixStream::pair().map_err(|e| format!("cannot create a socket pair: {e}"))?;
    // Larger socket buffers let a big argument or result cross in a few large copies instead of
    // many 200 KiB ones, each a context switch between the two sides (one round of `cargo bench
    // --bench payloads`, two 64 MiB results among its cases: 696 `recvfrom` calls, 476 with the
    // worker's send buffer raised too).
    set_buffer_size(&parent_end, libc::SO_SNDBUF, SOCKET_BUFFER);
    set_buffer_size(&child_end, libc::SO_RCVBUF, SOCKET_BUFFER);
    set_buffer_size(&child_end, libc::SO_SNDBUF, SOCKET_BUFFER);
    set_buffer_size(&parent_end, libc::SO_RCVBUF, SOCKET_BUFFER);
    let stderr = match shared.backend.memory_limit {
        Some(_) => {
            Some(StderrPipe::new().map_err(|e| format!("cannot create a pipe for stderr: {e}"))?)
        }
        None => None,
    };
    let ring = match Ring::create() {
        Ok(ring) => Some(ring),
        Err(error) => {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                log::debug!(
                    "executor: no shared-memory ring for Process workers ({error}): large \
                     payloads cross their sockets"
                )
            });
            None
        }
    };
    let child = spawn::spawn(
        path,
        child_end.as_raw_fd(),
        ring.as_ref().map(|(_, fd)| fd.as_raw_fd()),
        &worker_env(ring.is_some(), shared.backend.memory_limit.is_some()),
        stderr.as_ref().map(|pipe| pipe.write.as_raw_fd()),
    )
    .map_err(|e| could_not_start(&format!("a worker process ({})", path.display()), &e))?;
    drop(child_end);
    // The worker has its copy of the ring's descriptor; the mapping is all the pool keeps.
    let ring = ring.map(|(ring, _fd)| ring);
    let relay = match (stderr, shared.backend.memory_limit) {
        (Some(StderrPipe { read, write }), Some(limit)) => {
            drop(write);
            memory_limit::apply(child.id(), limit)
                .map_err(|e| format!("cannot set the memory limit of {limit} bytes: {e}"))?;
            let name = format!("executor-p{}-stderr-{slot}", shared.backend.id);
            let what = format!("the thread that relays the standard error of worker {slot}");
            Some(StderrRelay::start(read, name).map_err(|e| could_not_start(&what, &e))?)
        }
        _ => None,
    };
    Ok((child, parent_end, relay, ring))
}

/// Socket buffer size asked for (the kernel caps it at `net.core.wmem_max`/`rmem_max`).
const SOCKET_BUFFER: libc::c_int = 4 << 20;

fn set_buffer_size(socket: &UnixStream, option: libc::c_int, size: libc::c_int) {
    // SAFETY: `setsockopt` reads `size_of::<c_int>()` bytes from the pointer we pass, which points
    // at a live `c_int`; a failure only leaves the default size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Writes without raising `SIGPIPE` when the worker is gone: the write fails with `EPIPE` instead.
struct SocketWriter(UnixStream);

impl SocketWriter {
    /// After a failed write: closes the channel both ways, so the reader sees its end, stops the
    /// worker if it still runs, and puts its calls back in the queue. (Usually the write failed
    /// because the worker is already gone.)
    fn give_up(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

impl Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `send` reads at most `buf.len()` bytes from `buf`, which is valid for that long.
        let sent = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn writer_loop(
    shared: &Arc<ProcessQueue>,
    slot: usize,
    generation: u64,
    mut out: SocketWriter,
    mut ring: Option<Sender>,
) {
    let Ok((_, identity)) = &shared.backend.executable else {
        return;
    };
    let mut frame = Vec::with_capacity(1 << 16);
    let hello = Hello::write(slot, identity, shared.backend.initializer.as_deref());
    if wire::write_frame(&mut out, Kind::Hello, &hello).is_err() {
        return out.give_up();
    }
    let mut batch = Vec::new();
    loop {
        let mut state = shared.lock();
        loop {
            let link = &state.backend.links[slot];
            if link.generation != generation || !link.alive {
                return;
            }
            let served = shared
                .backend
                .max_tasks_per_child
                .is_some_and(|most| link.sent >= most);
            if served && link.in_flight.is_empty() {
                // Its last call is answered: end its input; it exits and a replacement takes over.
                state.backend.links[slot].retiring = true;
                drop(state);
                let _ = out.0.shutdown(std::net::Shutdown::Write);
                return;
            }
            if link.ready
                && !served
                && !state.queue.is_empty()
                && link.in_flight.len() < link.window.calls()
            {
                break;
            }
            if state.backend.shutdown && state.queue.is_empty() {
                drop(state);
                // End of input: an idle worker exits cleanly; the reader reaps it.
                let _ = out.0.shutdown(std::net::Shutdown::Write);
                return;
            }
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        let link = &state.backend.links[slot];
        let ready = state.backend.links.iter().filter(|l| l.serving());
        let mut room = link
            .window
            .room(link.in_flight.len(), state.queue.len(), ready.count());
        if let Some(most) = shared.backend.max_tasks_per_child {
            room = room.min(most - state.backend.links[slot].sent);
        }
        let mut cancelled = 0;
        while batch.len() < room {
            let Some(Queued { job, claimed }) = state.queue.pop_front() else {
                break;
            };
            if !claimed && !job.job().try_dispatch() {
                cancelled += 1;
                drop(job);
                continue;
            }
            let Some(request) = job.job().request() else {
                // Resolved already (cannot happen to a call just claimed): nothing to send, and
                // counted as finished, so that its block does not wait for it.
                cancelled += 1;
                drop(job);
                continue;
            };
            let id = state.backend.next_call_id;
            state.backend.next_call_id += 1;
            batch.push((id, request));
            let link = &mut state.backend.links[slot];
            link.in_flight.push_back((id, job));
            link.sent += 1;
        }
        state.finished += cancelled;
        ensure_watcher(shared, &mut state);
        drop(state);
        if cancelled > 0 {
            shared.changed.notify_all();
        }

        frame.clear();
        let mut last = None;
        for (id, request) in batch.drain(..) {
            // Every call before this one is whole in `frame` or already sent.
            let before = last.replace(id);
            if !request.write_call_head(id, &mut frame) {
                continue;
            }
            let parts = request.arguments.parts();
            let tail_len = request.arguments.raw_tail_len();
            for (index, part) in parts.iter().enumerate() {
                let is_tail = index + 1 == parts.len() && tail_len > 0;
                let in_ring = is_tail && ring.is_some() && ring::carries(tail_len);
                if !in_ring && part.len() <= COPY_LIMIT {
                    frame.extend_from_slice(part);
                    continue;
                }
                // A large part: what precedes it goes first. The calls before this one are then
                // written whole, and may run (and be timed) while this part crosses, which can
                // take as long as the worker takes to read it.
                if out.write_all(&frame).is_err() {
                    return out.give_up();
                }
                frame.clear();
                if let (Some(before), true) = (before, shared.backend.timed()) {
                    written(shared, slot, generation, before);
                }
                let sent = match (&mut ring, in_ring) {
                    // The head is on the socket, whole: the worker reads it, then pulls the tail
                    // from the ring.
                    (Some(ring), true) => ring.send(part),
                    _ => out.write_all(part).map_err(ReadError::Io),
                };
                if let Err(error) = sent {
                    log::debug!("executor: worker {slot}: sending a call failed: {error}");
                    if let ReadError::Malformed(why) = error {
                        // The reader, which settles the worker's end, learns it was a breach.
                        let mut state = shared.lock();
                        let link = &mut state.backend.links[slot];
                        if link.generation == generation {
                            link.writer_found_breach = Some(why);
                        }
                    }
                    return out.give_up();
                }
            }
            if frame.is_empty() && shared.backend.timed() {
                // It ended with a large part, now written: it may run from now on.
                written(shared, slot, generation, id);
            }
        }
        if !frame.is_empty() && out.write_all(&frame).is_err() {
            return out.give_up();
        }
        if let (Some(id), true) = (last, shared.backend.timed()) {
            written(shared, slot, generation, id);
        }
    }
}

/// Every call up to `id` has been written whole to worker `slot`: if the oldest call in flight is
/// among them, its clock starts now (`timeout` times the call, not the moving of its arguments).
fn written(shared: &ProcessQueue, slot: usize, generation: u64, id: u64) {
    let mut state = shared.lock();
    let link = &mut state.backend.links[slot];
    if link.generation != generation {
        return;
    }
    link.written_below = link.written_below.max(id + 1);
    let head_written = link
        .in_flight
        .front()
        .is_some_and(|&(head, _)| head < link.written_below);
    if head_written && link.head_since.is_none() && !link.receiving {
        link.head_since = Some(Instant::now());
    }
}

/// Kills the worker of any call that has run longer than its timeout (its own, or the block's),
/// until the pool shuts down and its workers are gone. Its reader then fails that call with
/// `TaskError::TimedOut`, or retries it.
fn watch_timeouts(shared: &ProcessQueue) {
    /// How often to look when no call in flight has a timeout.
    const IDLE_TICK: Duration = Duration::from_millis(50);
    loop {
        let mut tick = IDLE_TICK;
        {
            let mut state = shared.lock();
            if state.backend.shutdown && !state.backend.links.iter().any(|l| l.alive) {
                return;
            }
            for link in state
                .backend
                .links
                .iter_mut()
                .filter(|l| l.alive && !l.timed_out && !l.reaping)
            {
                for (_, job) in &link.in_flight {
                    if let Some(timeout) = shared.backend.timeout_of(&job.job().options()) {
                        tick = tick.min((timeout / 4).max(Duration::from_millis(1)));
                    }
                }
                let head_timeout = link
                    .in_flight
                    .front()
                    .and_then(|(_, job)| shared.backend.timeout_of(&job.job().options()));
                let overran = match (link.head_since, head_timeout) {
                    (Some(since), Some(timeout)) => since.elapsed() > timeout,
                    _ => false,
                };
                if overran {
                    link.timed_out = true;
                    // SAFETY: `kill` only sends a signal. The pid is still our unreaped child's:
                    // its reader marks the link `reaping` under this lock, which we hold, before
                    // it reaps; an exited but unreaped child keeps its pid.
                    unsafe { libc::kill(link.pid as libc::pid_t, libc::SIGKILL) };
                }
            }
        }
        thread::sleep(tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a failed start says: what could not start, the system's words, and for `EAGAIN` (what
    /// `RLIMIT_NPROC` gives, which root ignores, so the tests cannot reach it) the likely limit.
    #[test]
    fn a_failed_start_says_what_could_not_start_and_names_the_process_limit() {
        let limit = io::Error::from_raw_os_error(libc::EAGAIN);
        assert_eq!(
            could_not_start("the thread that sends calls to worker 0", &limit),
            format!(
                "could not start the thread that sends calls to worker 0: {limit} (the limit on \
                 this user's threads and processes, RLIMIT_NPROC (`ulimit -u`), or the system's, \
                 was probably reached)"
            )
        );
        assert!(limit
            .to_string()
            .contains("Resource temporarily unavailable"));
        let missing = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            could_not_start("a worker process (/bin/app)", &missing),
            format!("could not start a worker process (/bin/app): {missing}")
        );
    }
}
