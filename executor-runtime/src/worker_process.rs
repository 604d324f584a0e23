//! The worker side of the Process backend: how a re-executed binary becomes a worker before `main`.
//!
//! # How a process is told it is a worker
//!
//! The pool starts a worker by executing its own executable again (`std::env::current_exe()`; no
//! `fork`, which in a process with other threads can leave the child holding a lock forever). The
//! child inherits one end of a Unix socket pair, and the environment variable
//! `__EXECUTOR_WORKER_FD` names its descriptor. This module places a function in the executable's
//! `.init_array`, which the dynamic loader runs before `main`, in every program linked with this
//! crate. It does nothing unless the variable is set *and* names an inherited socket. A worker
//! removes the variable (so its own children are ordinary processes), reads the parent's hello,
//! serves calls until the socket closes, and exits: the program's `main` (or the test harness,
//! under `cargo test`) never runs in a worker. So there is nothing to call in `main`, no function to
//! register and no attribute to remember, in binaries, examples, tests, doctests and nextest alike.
//!
//! # How a worker finds the function
//!
//! Each call names a function and a trampoline by their offsets from an anchor function (see
//! `remote`). The hello carries the identity of the parent's executable (device, inode, size and
//! modification time of `/proc/self/exe`); a worker whose executable differs (the file was rebuilt
//! while the pool ran) refuses, since the offsets would name other code.
//!
//! # Lifetime
//!
//! A watchdog thread waits for the socket to hang up; when it does (the parent exited or was
//! killed, so its end closed), the worker exits at once even if a task is still running, so no
//! worker outlives its parent.

use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use crate::remote::{address_at, in_executable, ErasedTrampoline};
use crate::wire::{self, Fields, Kind, ReadError};
use crate::worker::{self, Backend, WorkerInfo};

/// Names the inherited socket of a worker.
pub(crate) const WORKER_ENV: &str = "__EXECUTOR_WORKER_FD";

/// The largest message buffer a worker keeps between calls.
const KEEP_BUFFER: usize = 64 << 20;

/// Exit code of a worker whose parent sent something it could not understand.
const EXIT_PROTOCOL: i32 = 70;
/// Exit code of a worker that refused to serve (another executable).
const EXIT_REFUSED: i32 = 71;

#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static ENTER_WORKER_BEFORE_MAIN: extern "C" fn() = enter_worker_if_asked;

/// Runs before `main` in every process; becomes a worker only when started as one.
extern "C" fn enter_worker_if_asked() {
    enter_process_worker_if_asked();
    // Not a Process worker: perhaps an MPI rank that is to be a worker (see `mpi_worker`).
    #[cfg(feature = "mpi")]
    crate::mpi_worker::enter_if_asked();
}

/// Becomes a Process worker, and exits, if started as one.
fn enter_process_worker_if_asked() {
    let Some(value) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let Some(fd) = value.to_str().and_then(|v| v.parse::<RawFd>().ok()) else {
        return;
    };
    if !is_socket(fd) {
        // Not started by a pool: an environment variable alone does not make a worker. The
        // variable stays, so a pool opened by this run refuses to start workers rather than risk
        // starting them without end.
        return;
    }
    // Before `main` the process has one thread, so changing the environment races with nothing.
    std::env::remove_var(WORKER_ENV);
    let code = std::panic::catch_unwind(|| serve(fd)).unwrap_or(EXIT_PROTOCOL);
    let _ = io::stdout().flush();
    std::process::exit(code);
}

fn is_socket(fd: RawFd) -> bool {
    // SAFETY: `fstat` writes only into the `stat` buffer we pass; an invalid `fd` makes it fail
    // with `EBADF`, which we report as "not a socket".
    unsafe {
        let mut stat = std::mem::zeroed::<libc::stat>();
        libc::fstat(fd, &mut stat) == 0 && (stat.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    }
}

/// The identity of the running executable, compared in the handshake.
pub(crate) fn executable_identity() -> io::Result<[u64; 5]> {
    let meta = std::fs::metadata("/proc/self/exe")?;
    Ok([
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
    ])
}

/// The worker's life: handshake, then calls until the parent closes the channel. Returns the exit code.
fn serve(fd: RawFd) -> i32 {
    // SAFETY: `fd` was inherited from the parent, is a socket (checked), and nothing else in this
    // process knows it (the variable naming it is gone), so this stream is its only owner.
    let channel = unsafe { UnixStream::from_raw_fd(fd) };
    set_cloexec(fd);
    let Ok(read_half) = channel.try_clone() else {
        return EXIT_PROTOCOL;
    };
    detach_channel_in_forks([fd, read_half.as_raw_fd()]);
    start_watchdog(fd);
    let mut reader = BufReader::with_capacity(1 << 16, read_half);
    let mut writer = BufWriter::with_capacity(1 << 16, channel);
    let mut payload = Vec::new();

    if let Err(code) = handshake(&mut reader, &mut writer, &mut payload) {
        return code;
    }

    let mut output = Vec::new();
    let mut frame = Vec::new();
    loop {
        if reader.buffer().is_empty() && writer.flush().is_err() {
            return 0;
        }
        let CallMessage {
            id,
            trampoline,
            function,
            tail,
        } = match read_call(&mut reader, &mut payload) {
            Ok(call) => call,
            Err(ReadError::Closed) => return 0,
            Err(error) => {
                eprintln!("executor worker: {error}");
                return EXIT_PROTOCOL;
            }
        };
        let arguments = &payload[CALL_FIELDS..];

        // Every earlier outcome leaves before this call runs: if the call kills the worker, the
        // parent has the answers to all calls before it, so it blames exactly this one.
        if writer.flush().is_err() {
            return 0;
        }
        let started = Instant::now();
        // SAFETY: only the parent can write to this channel (it is an inherited socket pair, not
        // a path or a port), and the handshake checked that it runs this executable.
        let Some(status) =
            (unsafe { run_call(trampoline, function, arguments, tail, &mut output) })
        else {
            // Not a call the parent could have made: refuse to jump there.
            eprintln!("executor worker: a call named code outside the executable");
            return EXIT_PROTOCOL;
        };
        let elapsed = started.elapsed().as_nanos().min(u64::MAX as u128) as u64;

        frame.clear();
        outcome_header(&mut frame, id, status, elapsed, &mut output);
        if writer.write_all(&frame).is_err() || writer.write_all(&output).is_err() {
            return 0;
        }
        // Buffers are reused (a fresh one costs a page fault per 4 KiB), but a huge one would
        // otherwise stay allocated for the worker's life.
        if output.capacity() > KEEP_BUFFER {
            output = Vec::new();
        }
        if payload.capacity() > KEEP_BUFFER {
            payload = Vec::new();
        }
    }
}

/// Runs one call: the trampoline at offset `trampoline` with the function at offset `function`,
/// the encoded `arguments` and the raw `tail`; the result or message goes to `output` (cleared
/// first). `None`, without running anything, if either offset is outside the executable's code.
///
/// # Safety
/// The offsets must come from `remote::remote<n>` (or `chunk_call`) in a process running this
/// same executable: a trampoline of type `ErasedTrampoline` and the function type that trampoline
/// instance expects. The caller vouches for where the message came from (only the pool that
/// started this worker can send it) and that the executables match (the handshake).
pub(crate) unsafe fn run_call(
    trampoline: i64,
    function: i64,
    arguments: &[u8],
    tail: Option<Vec<u8>>,
    output: &mut Vec<u8>,
) -> Option<crate::remote::CallStatus> {
    output.clear();
    let (trampoline, function) = (
        address_at(trampoline as isize),
        address_at(function as isize),
    );
    if !in_executable(trampoline) || !in_executable(function) {
        return None;
    }
    // SAFETY: the caller guarantees the pairing and the executable; both addresses point into
    // the executable's code (checked above), where offsets mean the same in both processes.
    Some(unsafe {
        let trampoline = std::mem::transmute::<usize, ErasedTrampoline>(trampoline);
        trampoline(function, arguments, tail, output)
    })
}

/// Bytes of an outcome message before the result: id, status, run time.
pub(crate) const OUTCOME_FIELDS: usize = 17;

/// Appends the header and fixed fields of an outcome frame to `frame`; `output` (the result or
/// message) follows them. A result over the frame limit is replaced by a message saying so.
pub(crate) fn outcome_header(
    frame: &mut Vec<u8>,
    id: u64,
    status: crate::remote::CallStatus,
    elapsed_ns: u64,
    output: &mut Vec<u8>,
) {
    let start = frame.len();
    let mut status = status;
    if wire::write_header(frame, Kind::Outcome, OUTCOME_FIELDS + output.len()).is_err() {
        output.clear();
        output.extend_from_slice(b"the result is larger than the 4 GiB message limit");
        frame.truncate(start);
        let _ = wire::write_header(frame, Kind::Outcome, OUTCOME_FIELDS + output.len());
        status = crate::remote::CallStatus::Transport;
    }
    frame.extend_from_slice(&id.to_le_bytes());
    frame.push(status as u8);
    frame.extend_from_slice(&elapsed_ns.to_le_bytes());
}

/// Bytes of a call message before its arguments: id, trampoline, function, raw tail length.
pub(crate) const CALL_FIELDS: usize = 32;

/// Reads a call message: the fields and encoded arguments into `payload`, and the raw tail (the
/// bytes of a trailing `Vec<u8>` argument) straight into a vector of its own, which the function
/// then receives without another copy.
pub(crate) fn read_call(
    reader: &mut impl std::io::Read,
    payload: &mut Vec<u8>,
) -> Result<CallMessage, ReadError> {
    let (kind, len) = wire::read_header(reader)?;
    if kind != Kind::Call {
        return Err(ReadError::Malformed(format!(
            "unexpected {kind:?} message from the pool"
        )));
    }
    if len < CALL_FIELDS {
        return Err(ReadError::Malformed("a call message was too short".into()));
    }
    payload.clear();
    wire::read_into(reader, payload, CALL_FIELDS)?;
    let mut fields = Fields::new(payload);
    let id = fields.u64("call id")?;
    let trampoline = fields.i64("trampoline")?;
    let function = fields.i64("function")?;
    let tail_len = fields.u64("tail length")?;
    let Some(head_len) = (len - CALL_FIELDS).checked_sub(tail_len as usize) else {
        return Err(ReadError::Malformed(format!(
            "a call's tail of {tail_len} bytes is longer than the call"
        )));
    };
    wire::read_into(reader, payload, head_len)?;
    let tail = match tail_len {
        0 => None,
        len => {
            let mut tail = Vec::new();
            wire::read_into(reader, &mut tail, len as usize)?;
            Some(tail)
        }
    };
    Ok(CallMessage {
        id,
        trampoline,
        function,
        tail,
    })
}

/// The fixed fields of a call message, and its raw tail.
pub(crate) struct CallMessage {
    pub(crate) id: u64,
    pub(crate) trampoline: i64,
    pub(crate) function: i64,
    pub(crate) tail: Option<Vec<u8>>,
}

/// Runs the pool's initializer; gives the reason to refuse if it did not return.
fn run_initializer(trampoline: i64, function: i64, arguments: &[u8]) -> Option<String> {
    let mut output = Vec::new();
    // SAFETY: as for a call (see `serve`): both offsets come from `remote<n>` in the parent, in
    // the same executable (checked just before).
    let Some(status) = (unsafe { run_call(trampoline, function, arguments, None, &mut output) })
    else {
        return Some("the initializer is not in the executable's code".to_string());
    };
    let message = String::from_utf8_lossy(&output);
    match status {
        crate::remote::CallStatus::Returned => None,
        crate::remote::CallStatus::Panicked => {
            Some(format!("the pool's initializer panicked: {message}"))
        }
        crate::remote::CallStatus::Transport => {
            Some(format!("the pool's initializer failed: {message}"))
        }
    }
}

/// Reads the hello, becomes worker number `index` of the pool, runs its initializer, and answers;
/// gives the exit code if it refuses.
fn handshake(
    reader: &mut BufReader<UnixStream>,
    writer: &mut BufWriter<UnixStream>,
    payload: &mut Vec<u8>,
) -> Result<(), i32> {
    match wire::read_frame(reader, payload) {
        Ok(Kind::Hello) => {}
        Ok(_) | Err(_) => return Err(EXIT_PROTOCOL),
    }
    let mut fields = Fields::new(payload);
    let index = fields.u64("worker index").map_err(|_| EXIT_PROTOCOL)?;
    let mut parent_exe = [0u64; 5];
    for field in &mut parent_exe {
        *field = fields
            .u64("executable identity")
            .map_err(|_| EXIT_PROTOCOL)?;
    }
    let initializer = match fields.u8("initializer flag").map_err(|_| EXIT_PROTOCOL)? {
        0 => None,
        _ => {
            let trampoline = fields.i64("initializer").map_err(|_| EXIT_PROTOCOL)?;
            let function = fields.i64("initializer").map_err(|_| EXIT_PROTOCOL)?;
            Some((trampoline, function, fields.rest().to_vec()))
        }
    };
    let mut refusal = match executable_identity() {
        Ok(own) if own == parent_exe => None,
        Ok(_) => Some(format!(
            "the worker's executable {} is not the one the pool runs (it was replaced on disk, \
             probably rebuilt, after the program started)",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "(unknown path)".to_string())
        )),
        Err(error) => Some(format!(
            "the worker could not identify its executable: {error}"
        )),
    };
    worker::become_process_worker(WorkerInfo::new(Backend::Process, index as usize, None));
    if let (None, Some((trampoline, function, arguments))) = (&refusal, initializer) {
        refusal = run_initializer(trampoline, function, &arguments);
    }
    let (kind, answer) = match &refusal {
        None => (Kind::Ready, std::process::id().to_le_bytes().to_vec()),
        Some(why) => (Kind::Refused, why.clone().into_bytes()),
    };
    if wire::write_frame(writer, kind, &answer).is_err() || writer.flush().is_err() {
        return Err(0);
    }
    match refusal {
        None => Ok(()),
        Some(_) => Err(EXIT_REFUSED),
    }
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: `fcntl` with `F_SETFD` only changes the descriptor's flags; `fd` is ours.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

/// The worker's descriptors of its channel, for `detach_channel`.
static CHANNEL_FDS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// Makes every `fork` of this worker (a task that forks) replace the channel's descriptors in the
/// child with `/dev/null`. Otherwise the child would hold the channel open: the parent would not
/// see the worker's death while the child lives, and the child could write into the channel.
/// (`exec` closes them anyway: they are close-on-exec.)
fn detach_channel_in_forks(fds: [RawFd; 2]) {
    for (slot, fd) in CHANNEL_FDS.iter().zip(fds) {
        slot.store(fd, Ordering::Relaxed);
    }
    // SAFETY: registers a function for glibc to run in the child after `fork`; the function
    // only makes async-signal-safe calls (`open`, `dup3`, `close`) and reads atomics.
    let failed = unsafe { libc::pthread_atfork(None, None, Some(detach_channel)) };
    if failed != 0 {
        eprintln!("executor worker: could not register the fork handler");
    }
}

/// Runs in the child of a `fork` made by a task (see `detach_channel_in_forks`).
extern "C" fn detach_channel() {
    // SAFETY: `open`, `dup3` and `close` are async-signal-safe, as a child of a multi-threaded
    // process requires; the path is NUL-terminated; the descriptors replaced are the channel's,
    // which nothing in the child may use any more.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        for slot in &CHANNEL_FDS {
            let fd = slot.load(Ordering::Relaxed);
            if fd < 0 {
                continue;
            }
            if null < 0 || libc::dup3(null, fd, libc::O_CLOEXEC) < 0 {
                libc::close(fd);
            }
        }
        if null >= 0 {
            libc::close(null);
        }
    }
}

/// Exits the process soon after the parent's end of the channel closes, even mid-task. Only a full
/// hang-up counts: the parent's orderly end of work closes just its writing side, which the worker
/// loop sees as the end of input and answers by exiting cleanly, output flushed.
fn start_watchdog(fd: RawFd) {
    let spawned = std::thread::Builder::new()
        .name("executor-watchdog".to_string())
        .spawn(move || loop {
            // No events asked for: `poll` still reports a hang-up, an error, or a closed descriptor.
            let mut poll_fd = libc::pollfd {
                fd,
                events: 0,
                revents: 0,
            };
            // SAFETY: `poll` reads and writes the one `pollfd` we pass, for the count we pass.
            let ready = unsafe { libc::poll(&mut poll_fd, 1, -1) };
            if ready < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let hung_up = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
            if ready < 0 || poll_fd.revents & hung_up != 0 {
                // SAFETY: `_exit` ends the process at once; nothing runs after it.
                unsafe { libc::_exit(0) };
            }
        });
    if spawned.is_err() {
        // Without a watchdog a hung task could outlive the parent; the end of input still stops
        // an idle worker. Nothing better to do this early.
        eprintln!("executor worker: could not start the watchdog thread");
    }
}
