//! One worker process and the two parent threads that talk to it.
//!
//! `start` executes the current binary with one end of a socket pair; the *writer* thread sends the
//! hello and then calls from the pool's queue, up to the link's window; the *reader* thread receives
//! the handshake answer and then outcomes, in the order the calls were sent, and resolves their
//! futures. When the channel closes or carries garbage, the reader reaps the worker, blames the call
//! it was running, puts the others back in the queue and lets the pool start a replacement.

use std::io::{self, BufReader, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{TaskError, WorkerDeath};
use crate::memory_limit::{self, StderrPipe, StderrRelay};
use crate::options::ProcessInitializer;
use crate::process_pool::{worker_env, JobRef, LinkState, Outcome, Queued, Shared};
use crate::remote::CallStatus;
use crate::spawn::{self, WorkerProcess, WORKER_FD};
use crate::wire::{self, Fields, Kind, ReadError};

/// How much work, in run time, a link tries to keep in flight to its worker.
const WORK_IN_FLIGHT_NS: f64 = 1_000_000.0;
/// The most calls a link keeps in flight.
const MAX_WINDOW: usize = 256;
/// The largest message buffer a reader keeps between outcomes (as the worker's `KEEP_BUFFER`).
const KEEP_BUFFER: usize = 64 << 20;
/// How long a new worker has to answer the hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Arguments longer than this are written straight from their buffer instead of being copied
/// into a batch with other calls.
const COPY_LIMIT: usize = 1 << 16;

/// Starts a worker process in `slot` (claimed by `Shared::slot_to_start`) and its two threads.
pub(crate) fn start(shared: &Arc<Shared>, slot: usize, generation: u64) {
    let (child, channel, relay) = match spawn_worker(shared, slot) {
        Ok(started) => started,
        Err(why) => return start_failed(shared, slot, generation, why),
    };
    let pid = child.id();
    let write_half = match channel.try_clone() {
        Ok(half) => half,
        Err(error) => {
            reap_quietly(child);
            return start_failed(shared, slot, generation, format!("socket: {error}"));
        }
    };
    log::debug!(
        "executor: process pool {} started worker {slot} (pid {pid})",
        shared.id
    );
    let writer = {
        let shared = Arc::clone(shared);
        thread::Builder::new()
            .name(format!("executor-p{}-send-{slot}", shared.id))
            .spawn(move || writer_loop(&shared, slot, generation, SocketWriter(write_half)))
    };
    let writer = match writer {
        Ok(handle) => handle,
        Err(error) => {
            reap_quietly(child);
            return start_failed(shared, slot, generation, format!("thread: {error}"));
        }
    };
    let reader = {
        let shared = Arc::clone(shared);
        thread::Builder::new()
            .name(format!("executor-p{}-recv-{slot}", shared.id))
            .spawn(move || reader_loop(&shared, slot, generation, (child, relay), channel))
    };
    let mut state = shared.lock();
    state.links[slot].pid = pid;
    state.threads.push(writer);
    if let (Some(timeout), false) = (shared.timeout, state.watching) {
        let watcher = {
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name(format!("executor-p{}-timeouts", shared.id))
                .spawn(move || watch_timeouts(&shared, timeout))
        };
        if let Ok(handle) = watcher {
            state.watching = true;
            state.threads.push(handle);
        }
    }
    match reader {
        Ok(handle) => state.threads.push(handle),
        Err(error) => {
            // The child went into the closure that failed to start and was killed and reaped
            // with it. The writer stops when it sees the slot dead.
            drop(state);
            start_failed(shared, slot, generation, format!("thread: {error}"));
        }
    }
}

/// A worker could not be started, or did not become ready: its slot is freed, any calls it held go
/// back to the queue, and the pool tries again (up to `START_ATTEMPTS` in a row) or fails the queue.
fn start_failed(shared: &Arc<Shared>, slot: usize, generation: u64, why: String) {
    log::warn!(
        "executor: process pool {} could not start a worker: {why}",
        shared.id
    );
    let mut state = shared.lock();
    if state.links[slot].generation == generation {
        let link = &mut state.links[slot];
        link.alive = false;
        let held: Vec<JobRef> = link.in_flight.drain(..).map(|(_, job)| job).collect();
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

/// Executes the current binary as a worker, with one end of a fresh socket pair; under a memory
/// limit, applies it and relays the worker's standard error (see `memory_limit`).
fn spawn_worker(
    shared: &Shared,
    slot: usize,
) -> Result<(WorkerProcess, UnixStream, Option<StderrRelay>), String> {
    let (path, _) = shared.executable.as_ref().map_err(Clone::clone)?;
    let (parent_end, child_end) =
        UnixStream::pair().map_err(|e| format!("cannot create a socket pair: {e}"))?;
    // Larger socket buffers let a big argument cross in a few large copies instead of many
    // 200 KiB ones, each a context switch between writer and worker.
    set_buffer_size(&parent_end, libc::SO_SNDBUF, SOCKET_BUFFER);
    set_buffer_size(&child_end, libc::SO_RCVBUF, SOCKET_BUFFER);
    let stderr = match shared.memory_limit {
        Some(_) => {
            Some(StderrPipe::new().map_err(|e| format!("cannot create a pipe for stderr: {e}"))?)
        }
        None => None,
    };
    let (name, value) = worker_env(WORKER_FD);
    let child = spawn::spawn(
        path,
        child_end.as_raw_fd(),
        (name, &value),
        stderr.as_ref().map(|pipe| pipe.write.as_raw_fd()),
    )
    .map_err(|e| format!("cannot execute {}: {e}", path.display()))?;
    drop(child_end);
    let relay = match (stderr, shared.memory_limit) {
        (Some(StderrPipe { read, write }), Some(limit)) => {
            drop(write);
            memory_limit::apply(child.id(), limit)
                .map_err(|e| format!("cannot set the memory limit of {limit} bytes: {e}"))?;
            let name = format!("executor-p{}-stderr-{slot}", shared.id);
            Some(StderrRelay::start(read, name).map_err(|e| format!("thread: {e}"))?)
        }
        _ => None,
    };
    Ok((child, parent_end, relay))
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

fn writer_loop(shared: &Shared, slot: usize, generation: u64, mut out: SocketWriter) {
    let Ok((_, identity)) = &shared.executable else {
        return;
    };
    let mut frame = Vec::with_capacity(1 << 16);
    let mut hello = (slot as u64).to_le_bytes().to_vec();
    for field in identity {
        hello.extend_from_slice(&field.to_le_bytes());
    }
    match shared.initializer.as_deref() {
        Some(ProcessInitializer {
            function,
            trampoline,
            arguments: Ok(arguments),
        }) => {
            hello.push(1);
            hello.extend_from_slice(&(*trampoline as i64).to_le_bytes());
            hello.extend_from_slice(&(*function as i64).to_le_bytes());
            hello.extend_from_slice(arguments);
        }
        _ => hello.push(0),
    }
    if wire::write_frame(&mut out, Kind::Hello, &hello).is_err() {
        return out.give_up();
    }
    let mut batch = Vec::new();
    loop {
        let mut state = shared.lock();
        loop {
            let link = &state.links[slot];
            if link.generation != generation || !link.alive {
                return;
            }
            let served = shared
                .max_tasks_per_child
                .is_some_and(|most| link.sent >= most);
            if served && link.in_flight.is_empty() {
                // Its last call is answered: end its input; it exits and a replacement takes over.
                state.links[slot].retiring = true;
                drop(state);
                let _ = out.0.shutdown(std::net::Shutdown::Write);
                return;
            }
            if link.ready
                && !served
                && !state.queue.is_empty()
                && link.in_flight.len() < link.window
            {
                break;
            }
            if state.shutdown && state.queue.is_empty() {
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
        let mut room = state.links[slot].window - state.links[slot].in_flight.len();
        if let Some(most) = shared.max_tasks_per_child {
            room = room.min(most - state.links[slot].sent);
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
            let id = state.next_call_id;
            state.next_call_id += 1;
            batch.push((id, job.job().request()));
            let link = &mut state.links[slot];
            if link.in_flight.is_empty() {
                link.head_since = Some(Instant::now());
            }
            link.in_flight.push_back((id, job));
            link.sent += 1;
        }
        state.finished += cancelled;
        drop(state);
        if cancelled > 0 {
            shared.changed.notify_all();
        }

        frame.clear();
        for (id, request) in batch.drain(..) {
            if !request.write_call_head(id, &mut frame) {
                continue;
            }
            for part in request.arguments.parts() {
                if part.len() <= COPY_LIMIT {
                    frame.extend_from_slice(part);
                } else {
                    if out.write_all(&frame).is_err() || out.write_all(part).is_err() {
                        return out.give_up();
                    }
                    frame.clear();
                }
            }
        }
        if !frame.is_empty() && out.write_all(&frame).is_err() {
            return out.give_up();
        }
    }
}

/// How a link ended.
enum End {
    /// The worker closed the channel (exited, crashed, or closed it).
    Closed,
    /// The worker refused the hello.
    Refused(String),
    /// The worker sent something that is not the protocol.
    Protocol(String),
}

fn reader_loop(
    shared: &Arc<Shared>,
    slot: usize,
    generation: u64,
    worker: (WorkerProcess, Option<StderrRelay>),
    input: UnixStream,
) {
    // A child that never answers the hello (stuck before `main`, or not a worker at all) is given
    // up on, rather than left holding a slot.
    let _ = input.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut payload = Vec::new();
    let (ready, end) = match wire::read_frame(&mut reader, &mut payload) {
        Ok(Kind::Ready) => {
            let _ = reader.get_ref().set_read_timeout(None);
            {
                let mut state = shared.lock();
                state.start_failures = 0;
                if state.links[slot].generation == generation {
                    state.links[slot].ready = true;
                }
            }
            shared.changed.notify_all();
            (
                true,
                receive_outcomes(shared, slot, &mut reader, &mut payload),
            )
        }
        Ok(Kind::Refused) => (
            false,
            End::Refused(String::from_utf8_lossy(&payload).into_owned()),
        ),
        Ok(other) => (
            false,
            End::Protocol(format!("unexpected {other:?} message")),
        ),
        Err(ReadError::Malformed(why)) => (false, End::Protocol(why)),
        Err(ReadError::Io(error))
            if matches!(
                error.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            (
                false,
                End::Protocol(format!(
                    "no answer to the handshake within {HANDSHAKE_TIMEOUT:?}"
                )),
            )
        }
        Err(_) => (false, End::Closed),
    };
    finish(shared, slot, generation, worker, ready, end);
}

/// Resolves calls as their outcomes arrive, until the channel ends.
fn receive_outcomes(
    shared: &Shared,
    slot: usize,
    reader: &mut BufReader<UnixStream>,
    payload: &mut Vec<u8>,
) -> End {
    loop {
        match wire::read_frame(reader, payload) {
            Ok(Kind::Outcome) => {}
            Ok(other) => return End::Protocol(format!("unexpected {other:?} message")),
            Err(ReadError::Malformed(why)) => return End::Protocol(why),
            Err(_) => return End::Closed,
        }
        let mut fields = Fields::new(payload);
        let (Ok(id), Ok(status), Ok(elapsed_ns)) = (
            fields.u64("call id"),
            fields.u8("status"),
            fields.u64("run time"),
        ) else {
            return End::Protocol("an outcome message was too short".to_string());
        };
        let Some(status) = CallStatus::from_byte(status) else {
            return End::Protocol(format!("unknown call status {status}"));
        };
        let job = {
            let mut state = shared.lock();
            let link = &mut state.links[slot];
            match link.in_flight.front() {
                Some((expected, _)) if *expected == id => {}
                _ => return End::Protocol(format!("an answer to call {id}, which was not sent")),
            }
            let (_, job) = link.in_flight.pop_front().expect("checked above");
            link.head_since = (!link.in_flight.is_empty()).then(Instant::now);
            adapt_window(link, elapsed_ns);
            job
        };
        // SAFETY: the call was dispatched to this link and is resolved once, here.
        let panicked = unsafe { job.resolve(Outcome::Answered(status, fields.rest())) };
        let mut state = shared.lock();
        state.finished += 1;
        state.panicked.extend(panicked);
        drop(state);
        shared.changed.notify_all();
        // The buffer is reused (a fresh one costs a page fault per 4 KiB), but one grown for a
        // huge result would otherwise stay allocated as long as the worker lives.
        if payload.capacity() > KEEP_BUFFER {
            *payload = Vec::new();
        }
    }
}

/// Keeps about `WORK_IN_FLIGHT_NS` of work in flight: one call at a time when calls are long (so
/// none waits behind another while a worker idles), up to `MAX_WINDOW` when they are tiny.
fn adapt_window(link: &mut LinkState, elapsed_ns: u64) {
    link.window = next_window(&mut link.average_ns, elapsed_ns);
}

/// Folds a call's run time into the moving `average_ns` of a worker's calls and gives the window
/// that keeps about `WORK_IN_FLIGHT_NS` of work in flight (shared with the Mpi backend).
pub(crate) fn next_window(average_ns: &mut f64, elapsed_ns: u64) -> usize {
    let elapsed = elapsed_ns as f64;
    *average_ns = if *average_ns == 0.0 {
        elapsed
    } else {
        0.8 * *average_ns + 0.2 * elapsed
    };
    let window = WORK_IN_FLIGHT_NS / average_ns.max(1_000.0);
    (window as usize).clamp(1, MAX_WINDOW)
}

/// Reaps the worker and settles its calls; starts a replacement if work is waiting.
fn finish(
    shared: &Arc<Shared>,
    slot: usize,
    generation: u64,
    (mut child, relay): (WorkerProcess, Option<StderrRelay>),
    ready: bool,
    end: End,
) {
    let pid = child.id();
    {
        let mut state = shared.lock();
        if state.links[slot].generation == generation {
            state.links[slot].reaping = true;
        }
    }
    let broke_protocol = match &end {
        End::Closed => !exited_within(&mut child, Duration::from_millis(500)),
        End::Refused(_) => false,
        End::Protocol(why) => {
            log::warn!("executor: worker {slot} (pid {pid}) broke the protocol: {why}");
            true
        }
    };
    if broke_protocol {
        child.kill();
    }
    let death = match child.wait() {
        _ if broke_protocol => WorkerDeath::BrokeProtocol,
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => WorkerDeath::Exited(code),
            (None, Some(signal)) => WorkerDeath::Signaled(signal),
            (None, None) => WorkerDeath::BrokeProtocol,
        },
        Err(_) => WorkerDeath::BrokeProtocol,
    };
    let over_limit = match (death, &relay, shared.memory_limit) {
        (WorkerDeath::Signaled(libc::SIGABRT), Some(relay), Some(limit)) => relay
            .failed_allocation()
            .map(|requested| TaskError::MemoryLimitExceeded { limit, requested }),
        _ => None,
    };

    let mut state = shared.lock();
    let link = &mut state.links[slot];
    if link.generation != generation {
        return;
    }
    link.alive = false;
    let timed_out = link.timed_out;
    let mut in_flight: Vec<JobRef> = link.in_flight.drain(..).map(|(_, job)| job).collect();
    let retiring = link.retiring;
    let orderly = ready
        && (state.shutdown || retiring)
        && in_flight.is_empty()
        && death == WorkerDeath::Exited(0);
    if orderly {
        log::debug!("executor: worker {slot} (pid {pid}) exited");
        // A retired worker's replacement starts now if calls are waiting.
        let step = shared.next_step(&mut state);
        drop(state);
        shared.carry_out(step);
        return;
    }
    // A worker that never became ready ran nothing: every call it was sent goes back. Otherwise
    // it was running the oldest one.
    let culprit = if ready && !in_flight.is_empty() {
        Some(in_flight.remove(0))
    } else {
        None
    };
    for job in in_flight.into_iter().rev() {
        state.queue.push_front(Queued { job, claimed: true });
    }
    match &end {
        End::Refused(why) => {
            log::warn!("executor: worker {slot} (pid {pid}) refused to serve: {why}");
            shared.start_failed(&mut state, why.clone());
        }
        _ if !ready => {
            let why = format!("the worker (pid {pid}) {death} before its handshake");
            log::warn!("executor: {why}");
            shared.start_failed(&mut state, why);
        }
        // A replacement starts (below) when calls are waiting, or later with the next `submit`.
        _ if timed_out => log::warn!(
            "executor: worker {slot} (pid {pid}) was killed: its call overran the timeout"
        ),
        _ if over_limit.is_some() => log::warn!(
            "executor: worker {slot} (pid {pid}) aborted: its call went over the memory limit"
        ),
        _ => log::warn!("executor: worker {slot} (pid {pid}) {death}"),
    }
    let step = shared.next_step(&mut state);
    drop(state);

    if let Some(job) = culprit {
        // SAFETY: dispatched to this link, and now taken out of it: resolved once, here.
        let error = match (timed_out, shared.timeout, over_limit) {
            (true, Some(after), _) => TaskError::TimedOut { after },
            (_, _, Some(over_limit)) => over_limit,
            _ => TaskError::WorkerDied { pid, death },
        };
        let panicked = unsafe { job.resolve(Outcome::Failed(error)) };
        let mut state = shared.lock();
        state.finished += 1;
        state.panicked.extend(panicked);
    }
    // Started from this thread, which is about to end: nothing ties a worker to the thread that
    // started it (no `PR_SET_PDEATHSIG`; the watchdog follows the socket instead).
    shared.carry_out(step);
}

/// Kills the worker of any call that has run longer than `timeout`, until the pool shuts down and
/// its workers are gone. Its reader then fails that call with `TaskError::TimedOut`.
fn watch_timeouts(shared: &Shared, timeout: Duration) {
    let tick = (timeout / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
    loop {
        {
            let mut state = shared.lock();
            if state.shutdown && !state.links.iter().any(|l| l.alive) {
                return;
            }
            for link in state
                .links
                .iter_mut()
                .filter(|l| l.alive && !l.timed_out && !l.reaping)
            {
                if link
                    .head_since
                    .is_some_and(|since| since.elapsed() > timeout)
                {
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

/// Whether the child exits within `limit` (a worker that closed its channel but runs on does not).
/// A worker that closed its channel by exiting is usually reaped within microseconds, so the
/// polling starts fine and backs off.
fn exited_within(child: &mut WorkerProcess, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}
