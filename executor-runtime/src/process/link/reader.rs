//! A link's reader thread: it waits for the worker's answer to the hello, then receives outcomes
//! in the order the calls were sent and resolves their futures. When the channel closes or
//! carries something that is not the protocol, it reaps the worker, blames the call it was
//! running, puts the others back in the queue and lets the pool start a replacement.

use std::io::{self, BufReader};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::memory_limit::StderrRelay;
use crate::process::pool::{LinkState, ProcessQueue};
use crate::process::ring::Receiver;
use crate::process::spawn::WorkerProcess;
use crate::remote::call::CallStatus;
use crate::remote::protocol::{
    read_outcome, OutcomeHead, TailChannel, KEEP_BUFFER, OUTCOME_FIELDS,
};
use crate::remote::queue::{Outcome, Queued};
use crate::remote::tail::Tail;
use crate::remote::wire::{self, Kind, ReadError};
use crate::task::error::{TaskError, WorkerDeath};

/// How long a new worker has to acknowledge the hello. The worker acknowledges as soon as it has
/// read the hello and checked the executable, before it runs the pool's initializer (which may
/// take as long as it needs), so this covers only a child that does not answer at all: stuck
/// before `main`, or not a worker.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Replaces [`HANDSHAKE_TIMEOUT`], in milliseconds, for the tests (`tests/initializer.rs`), which
/// cannot wait 30 s for a worker that never answers. Not a documented setting.
const HANDSHAKE_TIMEOUT_ENV: &str = "__EXECUTOR_HANDSHAKE_TIMEOUT_MS";

fn handshake_timeout() -> Duration {
    static TIMEOUT: OnceLock<Duration> = OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var(HANDSHAKE_TIMEOUT_ENV)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(HANDSHAKE_TIMEOUT, Duration::from_millis)
    })
}

/// How a link ended.
enum End {
    /// The worker closed the channel (exited, crashed, or closed it).
    Closed,
    /// The worker refused the hello.
    Refused(String),
    /// The worker sent something that is not the protocol.
    Protocol(String),
    /// The worker did not acknowledge the hello in time.
    Silent(Duration),
}

pub(super) fn reader_loop(
    shared: &Arc<ProcessQueue>,
    slot: usize,
    generation: u64,
    worker: (WorkerProcess, Option<StderrRelay>),
    input: UnixStream,
    mut ring: Option<Receiver>,
) {
    {
        let mut state = shared.lock();
        let link = &mut state.backend.links[slot];
        if link.generation == generation {
            // Open until `finish` has marked the link `reaping`: `input` lives until then.
            link.channel = input.as_raw_fd();
        }
    }
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut payload = Vec::new();
    let (ready, end) = match handshake(&mut reader, &mut payload) {
        Ok(()) => {
            {
                let mut state = shared.lock();
                state.backend.start_failures = 0;
                if state.backend.links[slot].generation == generation {
                    state.backend.links[slot].ready = true;
                }
            }
            shared.changed.notify_all();
            (
                true,
                receive_outcomes(shared, slot, &mut reader, &mut payload, ring.as_mut()),
            )
        }
        Err(end) => (false, end),
    };
    finish(shared, slot, generation, worker, ready, end);
}

/// Waits for the worker's acknowledgement of the hello (a child that never gives one, stuck before
/// `main` or not a worker at all, is given up on rather than left holding a slot), then, with no
/// time limit, for its answer: ready, or refused.
fn handshake(reader: &mut BufReader<UnixStream>, payload: &mut Vec<u8>) -> Result<(), End> {
    let limit = handshake_timeout();
    let _ = reader.get_ref().set_read_timeout(Some(limit));
    let mut acknowledged = false;
    loop {
        let read = wire::read_frame(reader, payload);
        let first = !acknowledged;
        if first && read.is_ok() {
            acknowledged = true;
            let _ = reader.get_ref().set_read_timeout(None);
        }
        return match read {
            // The initializer runs now, for as long as it takes.
            Ok(Kind::Accepted) if first && payload.is_empty() => continue,
            Ok(Kind::Ready) => Ok(()),
            Ok(Kind::Refused) => Err(End::Refused(String::from_utf8_lossy(payload).into_owned())),
            Ok(other) => Err(End::Protocol(format!("unexpected {other:?} message"))),
            Err(ReadError::Malformed(why)) => Err(End::Protocol(why)),
            Err(ReadError::Io(error))
                if !acknowledged
                    && matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                Err(End::Silent(limit))
            }
            Err(_) => Err(End::Closed),
        };
    }
}

/// Resolves calls as their outcomes arrive, until the channel ends. Large result tails come
/// through `ring` when the link has one.
fn receive_outcomes(
    shared: &ProcessQueue,
    slot: usize,
    reader: &mut BufReader<UnixStream>,
    payload: &mut Vec<u8>,
    mut ring: Option<&mut Receiver>,
) -> End {
    loop {
        let len = match wire::read_header(reader) {
            Ok((Kind::Outcome, len)) => len,
            Ok((other, _)) => return End::Protocol(format!("unexpected {other:?} message")),
            Err(ReadError::Malformed(why)) => return End::Protocol(why),
            Err(_) => return End::Closed,
        };
        if shared.backend.timed() {
            // The head call is done: the time its result takes to arrive is not its run time.
            let mut state = shared.lock();
            let link = &mut state.backend.links[slot];
            link.head_since = None;
            link.receiving = true;
        }
        let (
            OutcomeHead {
                id,
                status,
                elapsed_ns,
                ..
            },
            tail,
        ) = match read_outcome(reader, len, payload, side(&mut ring)) {
            Ok(outcome) => outcome,
            Err(ReadError::Malformed(why)) => return End::Protocol(why),
            Err(_) => return End::Closed,
        };
        let result = &payload[OUTCOME_FIELDS..];
        let job = {
            let mut state = shared.lock();
            let link = &mut state.backend.links[slot];
            match link.in_flight.front() {
                Some((expected, _)) if *expected == id => {}
                _ => return End::Protocol(format!("an answer to call {id}, which was not sent")),
            }
            let (_, job) = link.in_flight.pop_front().expect("checked above");
            let stopped = take_stop_id(link, id);
            link.receiving = false;
            // The next call runs from now on, if all of it has been written.
            link.head_since = link
                .in_flight
                .front()
                .is_some_and(|&(next, _)| next < link.written_below)
                .then(Instant::now);
            let returned =
                payload.len().saturating_sub(OUTCOME_FIELDS) + tail.as_ref().map_or(0, Tail::len);
            link.window.record(elapsed_ns, returned);
            link.kill_if_head_stopped(shared.backend.id, slot);
            let options = job.job().options();
            let retry = !stopped
                && status == CallStatus::Panicked
                && options.retry_panics
                && job.job().try_retry(shared.backend.retries_of(&options));
            if retry {
                // Its worker is fine: the call goes back to the front of the queue, to whichever
                // worker has room first.
                log::debug!("executor: worker {slot}: a call panicked and is retried");
                state.queue.push_front(Queued { job, claimed: true });
                drop(state);
                shared.changed.notify_all();
                continue;
            }
            (job, stopped)
        };
        let outcome = match job.1 {
            // Stopped while its answer was on its way: `stop` promised `Stopped`.
            true => Outcome::Failed(TaskError::Stopped),
            false => Outcome::Answered(status, result, tail),
        };
        // SAFETY: the call was dispatched to this link and is resolved once, here.
        unsafe { shared.resolve(job.0, outcome) };
        // The buffer is reused (a fresh one costs a page fault per 4 KiB), but one grown for a
        // huge result would otherwise stay allocated as long as the worker lives.
        if payload.capacity() > KEEP_BUFFER {
            *payload = Vec::new();
        }
    }
}

/// The ring, as the channel large tails come through.
fn side<'a>(ring: &'a mut Option<&mut Receiver>) -> Option<&'a mut dyn TailChannel> {
    ring.as_deref_mut().map(|ring| ring as &mut dyn TailChannel)
}

/// Whether the call `id` was stopped (`Future::stop`); forgets it.
fn take_stop_id(link: &mut LinkState, id: u64) -> bool {
    let before = link.stop_ids.len();
    link.stop_ids.retain(|&stopped| stopped != id);
    link.stop_ids.len() != before
}

/// Reaps the worker and settles its calls; starts a replacement if work is waiting.
fn finish(
    shared: &Arc<ProcessQueue>,
    slot: usize,
    generation: u64,
    (mut child, relay): (WorkerProcess, Option<StderrRelay>),
    ready: bool,
    end: End,
) {
    let pid = child.id();
    let mut end = end;
    {
        let mut state = shared.lock();
        let link = &mut state.backend.links[slot];
        if link.generation == generation {
            link.reaping = true;
            // The writer gave up on the channel because of what the worker wrote in the ring.
            if let (End::Closed, Some(why)) = (&end, link.writer_found_breach.take()) {
                end = End::Protocol(why);
            }
        }
    }
    let broke_protocol = match &end {
        End::Closed => !exited_within(&mut child, Duration::from_millis(500)),
        End::Refused(_) => false,
        End::Protocol(why) => {
            log::warn!("executor: worker {slot} (pid {pid}) broke the protocol: {why}");
            true
        }
        End::Silent(_) => {
            child.kill();
            false
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
        // Someone else took its exit status: `SIGCHLD` is ignored (the kernel reaps children
        // itself) or a handler of this program reaped it. Its channel closed: it is gone.
        Err(error) if error.raw_os_error() == Some(libc::ECHILD) => WorkerDeath::StatusUnknown,
        Err(_) => WorkerDeath::BrokeProtocol,
    };
    let over_limit = match (death, &relay, shared.backend.memory_limit) {
        (WorkerDeath::Signaled(libc::SIGABRT), Some(relay), Some(limit)) => relay
            .failed_allocation()
            .map(|requested| TaskError::MemoryLimitExceeded { limit, requested }),
        _ => None,
    };

    let mut state = shared.lock();
    let link = &mut state.backend.links[slot];
    if link.generation != generation {
        return;
    }
    link.alive = false;
    let timed_out = link.timed_out;
    let stop_killed = link.stop_killed;
    // Calls that `Future::stop` stopped resolve with `Stopped`, wherever they were in line.
    let mut stopped = Vec::new();
    let mut in_flight = Vec::new();
    for (place, (id, job)) in std::mem::take(&mut link.in_flight).into_iter().enumerate() {
        if take_stop_id(link, id) {
            stopped.push((place == 0, job));
        } else {
            in_flight.push(job);
        }
    }
    link.stop_ids.clear();
    let retiring = link.retiring;
    let overstayed = link.overstayed;
    let orderly = (ready || overstayed)
        && (state.backend.shutdown || retiring)
        && in_flight.is_empty()
        && stopped.is_empty()
        && (overstayed || matches!(death, WorkerDeath::Exited(0) | WorkerDeath::StatusUnknown));
    if orderly {
        if overstayed {
            log::warn!(
                "executor: worker {slot} (pid {pid}) {death}: it did not exit within {:?} of the \
                 end of its input",
                crate::process::pool::EXIT_GRACE
            );
        } else {
            log::debug!("executor: worker {slot} (pid {pid}) exited");
        }
        // A retired worker's replacement starts now if calls are waiting.
        let step = shared.next_step(&mut state);
        drop(state);
        shared.carry_out(step);
        return;
    }
    // A worker that never became ready ran nothing: every call it was sent goes back. Otherwise
    // it was running the oldest one. A worker killed to stop a call was running that call, unless
    // its answer was already on its way: the call after it is then innocent, and goes back too.
    let head_stopped = stopped.first().is_some_and(|&(head, _)| head);
    let mut culprit = if ready && !in_flight.is_empty() && !head_stopped && !stop_killed {
        let job = in_flight.remove(0);
        let options = job.job().options();
        let error = match (
            timed_out,
            shared.backend.timeout_of(&options),
            over_limit.clone(),
        ) {
            (true, Some(after), _) => TaskError::TimedOut { after },
            (_, _, Some(over_limit)) => over_limit,
            _ => TaskError::WorkerDied {
                pid,
                death,
                call: None,
            },
        };
        Some((job, error))
    } else {
        None
    };
    for job in in_flight.into_iter().rev() {
        state.queue.push_front(Queued { job, claimed: true });
    }
    // A call whose worker died under it, or that timed out, runs again (first in line) while its
    // retries last.
    if let Some((job, error)) = culprit.take() {
        let retryable = matches!(
            error,
            TaskError::WorkerDied { .. } | TaskError::TimedOut { .. }
        );
        let budget = shared.backend.retries_of(&job.job().options());
        if retryable && job.job().try_retry(budget) {
            log::warn!(
                "executor: worker {slot} (pid {pid}): its call failed ({error}) and is retried"
            );
            state.queue.push_front(Queued { job, claimed: true });
        } else {
            culprit = Some((job, error));
        }
    }
    match &end {
        End::Refused(why) => {
            log::warn!("executor: worker {slot} (pid {pid}) refused to serve: {why}");
            shared.start_failed(&mut state, why.clone());
        }
        End::Silent(limit) => {
            let why = format!(
                "the worker (pid {pid}) did not answer the handshake within {limit:?}, and was \
                 killed"
            );
            log::warn!("executor: {why}");
            shared.start_failed(&mut state, why);
        }
        _ if !ready => {
            let why = format!("the worker (pid {pid}) {death} before its handshake");
            log::warn!("executor: {why}");
            shared.start_failed(&mut state, why);
        }
        // A replacement starts (below) when calls are waiting, or later with the next `submit`.
        _ if stop_killed => {
            log::debug!("executor: worker {slot} (pid {pid}) was killed to stop its call")
        }
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

    for (_, job) in stopped {
        // SAFETY: dispatched to this link, and now taken out of it: resolved once, here.
        unsafe { shared.resolve(job, Outcome::Failed(TaskError::Stopped)) };
    }
    if let Some((job, error)) = culprit {
        // SAFETY: dispatched to this link, and now taken out of it: resolved once, here.
        unsafe { shared.resolve(job, Outcome::Failed(error)) };
    }
    // Started from this thread, which is about to end: nothing ties a worker to the thread that
    // started it (no `PR_SET_PDEATHSIG`; the watchdog follows the socket instead).
    shared.carry_out(step);
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
