//! The worker side of the Process backend: how a re-executed binary becomes a worker before `main`.
//!
//! # How a process is told it is a worker
//!
//! The pool starts a worker by executing its own executable again (`/proc/self/exe`, the image it
//! runs even if the file was since replaced or deleted; no `fork`, which in a process with other
//! threads can leave the child holding a lock forever). The
//! child inherits one end of a Unix socket pair, and the environment variable
//! `__EXECUTOR_WORKER_FD` names its descriptor (`3`), and after a comma that of the shared-memory
//! ring's file (`3,4`, see `ring`), which the worker maps and closes; a worker that cannot map the
//! ring it was given refuses to serve. The crate root places a function in the executable's
//! `.init_array`, which the dynamic loader runs before `main`, in every program linked with this
//! crate; it calls [`enter_if_asked`], which does nothing unless the variable is set *and* names
//! an inherited socket. A worker
//! removes the variable (so its own children are ordinary processes), reads the parent's hello,
//! serves calls until the socket closes, and exits: the program's `main` (or the test harness,
//! under `cargo test`) never runs in a worker. So there is nothing to call in `main`, no function to
//! register and no attribute to remember, in binaries, examples, tests, doctests and nextest alike.
//!
//! # How a worker finds the function
//!
//! Each call names a function and a trampoline by their offsets from an anchor function (see
//! `remote`). The hello carries the identity of the parent's executable (device, inode, size and
//! modification time of `/proc/self/exe`); a worker whose executable differs refuses, since the
//! offsets would name other code. (Workers run `/proc/self/exe`, so a rebuilt file does not
//! differ; the check guards against a mistake in that.)
//!
//! # Lifetime
//!
//! A watchdog thread waits for the socket to hang up; when it does (the parent exited or was
//! killed, so its end closed), the worker exits at once even if a task is still running, so no
//! worker outlives its parent.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Instant;

use crate::block::identity::{self, Backend, WorkerInfo};
use crate::block::options::ProcessInitializer;
use crate::process::ring::{self, Ring, Side};
use crate::process::tunables;
use crate::remote::call::CallOutput;
use crate::remote::executable::executable_identity;
use crate::remote::protocol::{read_call, CallMessage, TailChannel, CALL_FIELDS, KEEP_BUFFER};
use crate::remote::serve::{answer_call, ready_to_serve, run_initializer};
use crate::remote::wire::{self, Fields, Kind, ReadError};

/// Names the inherited socket of a worker.
pub(crate) const WORKER_ENV: &str = "__EXECUTOR_WORKER_FD";

/// Exit code of a worker whose parent sent something it could not understand.
const EXIT_PROTOCOL: i32 = 70;
/// Exit code of a worker that refused to serve (another executable).
const EXIT_REFUSED: i32 = 71;

/// Becomes a Process worker, and exits, if started as one.
pub(crate) fn enter_if_asked() {
    let Some(value) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let Some((fd, ring_fd)) = value.to_str().and_then(parse_fds) else {
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
    tunables::restore_in_worker();
    let code = std::panic::catch_unwind(|| serve(fd, ring_fd)).unwrap_or(EXIT_PROTOCOL);
    let _ = io::stdout().flush();
    std::process::exit(code);
}

/// The descriptors the worker variable names: the socket's, and the ring's after a comma.
fn parse_fds(value: &str) -> Option<(RawFd, Option<RawFd>)> {
    match value.split_once(',') {
        None => Some((value.parse().ok()?, None)),
        // One descriptor cannot be both: each is given to an owner of its own.
        Some((socket, ring)) => match (socket.parse().ok()?, ring.parse().ok()?) {
            (socket, ring) if socket == ring => None,
            (socket, ring) => Some((socket, Some(ring))),
        },
    }
}

/// Maps the ring the pool passed at `fd` (see `ring`), closing the descriptor; says why not.
fn open_ring(fd: RawFd) -> Result<Ring, String> {
    // SAFETY: `fcntl(F_GETFD)` only reads the descriptor's flags, and fails on a closed one.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(format!("descriptor {fd} is not open"));
    }
    // SAFETY: `fd` is open (checked) and was inherited for this purpose alone: the variable that
    // named it is gone, so nothing else in this process knows it, and this is its only owner.
    Ring::open(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn is_socket(fd: RawFd) -> bool {
    // SAFETY: `fstat` writes only into the `stat` buffer we pass; an invalid `fd` makes it fail
    // with `EBADF`, which we report as "not a socket".
    unsafe {
        let mut stat = std::mem::zeroed::<libc::stat>();
        libc::fstat(fd, &mut stat) == 0 && (stat.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    }
}

/// The worker's life: handshake, then calls until the parent closes the channel. Returns the exit code.
fn serve(fd: RawFd, ring_fd: Option<RawFd>) -> i32 {
    // SAFETY: `fd` was inherited from the parent, is a socket (checked), and nothing else in this
    // process knows it (the variable naming it is gone), so this stream is its only owner.
    let channel = unsafe { UnixStream::from_raw_fd(fd) };
    set_cloexec(fd);
    // A worker given a ring it cannot use refuses to serve (in the handshake): the pool sends
    // large tails through it.
    let ring = ring_fd.map(open_ring).transpose();
    let Ok(read_half) = channel.try_clone() else {
        return EXIT_PROTOCOL;
    };
    detach_channel_in_forks([fd, read_half.as_raw_fd()]);
    start_watchdog(fd);
    let ((mut ring_sender, mut ring_receiver), refusal) = match ring {
        Ok(ring) => (
            ring.map(|ring| ring.split(Side::Worker, fd, read_half.as_raw_fd()))
                .unzip(),
            None,
        ),
        Err(why) => (
            (None, None),
            Some(format!(
                "the worker could not map its shared-memory ring: {why}"
            )),
        ),
    };
    let mut reader = BufReader::with_capacity(1 << 16, read_half);
    let mut writer = BufWriter::with_capacity(1 << 16, channel);
    let mut payload = Vec::new();

    if let Err(code) = handshake(&mut reader, &mut writer, &mut payload, refusal) {
        return code;
    }

    let mut output = CallOutput::default();
    let mut frame = Vec::new();
    ready_to_serve(&mut frame, &mut output);
    loop {
        if reader.buffer().is_empty() && writer.flush().is_err() {
            return 0;
        }
        let side = ring_receiver
            .as_mut()
            .map(|ring| ring as &mut dyn TailChannel);
        // The call's run time counts from its arrival, so a call whose arguments take long to
        // arrive counts as long in the pool's window (see `serve::answer_call`). An error here
        // comes again from `read_call`.
        let _ = reader.fill_buf();
        let started = Instant::now();
        let CallMessage { head, tail } = match read_call(&mut reader, &mut payload, side) {
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
        // SAFETY: only the parent can write to this channel (it is an inherited socket pair, not
        // a path or a port), and the handshake checked that it runs this executable.
        let answered =
            unsafe { answer_call(&head, arguments, tail, &mut frame, &mut output, started) };
        if answered.is_none() {
            // Not a call the parent could have made: refuse to jump there.
            eprintln!("executor worker: a call named code outside the executable");
            return EXIT_PROTOCOL;
        }
        if writer.write_all(&frame).is_err() || writer.write_all(&output.bytes).is_err() {
            return 0;
        }
        // A raw tail (a large byte vector or string result) is written from its own buffer, and
        // freed once sent: through the ring if it is large and there is one, after the head has
        // left (the pool reads the head, then pulls the tail).
        if let Some(tail) = output.tail.take() {
            let sent = match &mut ring_sender {
                Some(ring) if ring::carries(tail.len()) => match writer.flush() {
                    Ok(()) => ring.send(tail.as_bytes()),
                    Err(error) => Err(ReadError::Io(error)),
                },
                _ => writer.write_all(tail.as_bytes()).map_err(ReadError::Io),
            };
            match sent {
                Ok(()) => {}
                Err(ReadError::Malformed(why)) => {
                    eprintln!("executor worker: {why}");
                    return EXIT_PROTOCOL;
                }
                // The pool is gone.
                Err(_) => return 0,
            }
        }
        // Buffers are reused (a fresh one costs a page fault per 4 KiB), but a huge one would
        // otherwise stay allocated for the worker's life.
        if output.bytes.capacity() > KEEP_BUFFER {
            output.bytes = Vec::new();
        }
        if payload.capacity() > KEEP_BUFFER {
            payload = Vec::new();
        }
    }
}

/// The pool's hello, the first message on a new worker's channel.
pub(crate) struct Hello<'a> {
    /// The worker's index in its pool (see `current_worker`).
    pub(crate) index: usize,
    /// The identity of the pool's executable (see `executable_identity`).
    pub(crate) executable: [u64; 5],
    /// The pool's initializer, if it has one: its trampoline and function offsets and arguments.
    pub(crate) initializer: Option<(i64, i64, &'a [u8])>,
}

impl<'a> Hello<'a> {
    /// Writes a hello for worker `index` of a pool running `executable`.
    pub(crate) fn write(
        index: usize,
        executable: &[u64; 5],
        initializer: Option<&ProcessInitializer>,
    ) -> Vec<u8> {
        let mut hello = (index as u64).to_le_bytes().to_vec();
        for field in executable {
            hello.extend_from_slice(&field.to_le_bytes());
        }
        match initializer {
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
        hello
    }

    /// Reads a hello's payload.
    pub(crate) fn parse(payload: &'a [u8]) -> Result<Self, ReadError> {
        let mut fields = Fields::new(payload);
        let index = fields.u64("worker index")? as usize;
        let mut executable = [0u64; 5];
        for field in &mut executable {
            *field = fields.u64("executable identity")?;
        }
        let initializer = match fields.u8("initializer flag")? {
            0 => None,
            _ => {
                let trampoline = fields.i64("initializer")?;
                let function = fields.i64("initializer")?;
                Some((trampoline, function, fields.rest()))
            }
        };
        Ok(Hello {
            index,
            executable,
            initializer,
        })
    }
}

/// Reads the hello, becomes worker number `index` of the pool, acknowledges the hello if the pool
/// has an initializer, runs it, and answers; gives the exit code if it refuses or the pool hung up.
fn handshake(
    reader: &mut BufReader<UnixStream>,
    writer: &mut BufWriter<UnixStream>,
    payload: &mut Vec<u8>,
    refusal: Option<String>,
) -> Result<(), i32> {
    match wire::read_frame(reader, payload) {
        Ok(Kind::Hello) => {}
        Ok(_) | Err(_) => return Err(EXIT_PROTOCOL),
    }
    let Ok(Hello {
        index,
        executable: parent_exe,
        initializer,
    }) = Hello::parse(payload)
    else {
        return Err(EXIT_PROTOCOL);
    };
    let mut refusal = match executable_identity() {
        _ if refusal.is_some() => refusal,
        Ok(own) if own == parent_exe => None,
        Ok(_) => Some(format!(
            "the worker's executable {} is not the one the pool runs (its device, inode, size or \
             modification time differ)",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "(unknown path)".to_string())
        )),
        Err(error) => Some(format!(
            "the worker could not identify its executable: {error}"
        )),
    };
    identity::become_process_worker(WorkerInfo::new(Backend::Process, index, None));
    if let (None, Some((trampoline, function, arguments))) = (&refusal, initializer) {
        // Acknowledge the hello first: the pool's handshake timeout then covers only a worker
        // that does not answer at all, and the initializer may take as long as it needs.
        if wire::write_frame(writer, Kind::Accepted, &[]).is_err() || writer.flush().is_err() {
            return Err(EXIT_PROTOCOL);
        }
        // SAFETY: as for a call (see `serve`): both offsets come from `remote<n>` in the parent,
        // in the same executable (checked just before).
        refusal = unsafe { run_initializer(trampoline, function, arguments) };
    }
    let (kind, answer) = match &refusal {
        None => (Kind::Ready, std::process::id().to_le_bytes().to_vec()),
        Some(why) => (Kind::Refused, why.clone().into_bytes()),
    };
    if wire::write_frame(writer, kind, &answer).is_err() || writer.flush().is_err() {
        // The pool hung up before the handshake completed.
        return Err(EXIT_PROTOCOL);
    }
    match refusal {
        None => {
            HANDSHAKE_DONE.store(true, Ordering::SeqCst);
            Ok(())
        }
        Some(_) => Err(EXIT_REFUSED),
    }
}

/// The handshake completed: from then on the pool's hang-up is the end of work (exit code 0);
/// before, it is a broken handshake ([`EXIT_PROTOCOL`]), whichever of the watchdog and the
/// handshake sees it first.
static HANDSHAKE_DONE: AtomicBool = AtomicBool::new(false);

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
    // SAFETY: `getppid` has no preconditions.
    let parent = unsafe { libc::getppid() };
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
            let code = if HANDSHAKE_DONE.load(Ordering::SeqCst) {
                0
            } else {
                EXIT_PROTOCOL
            };
            if ready > 0 && poll_fd.revents & libc::POLLNVAL != 0 {
                // This process closed the descriptor: its main thread is ending, with its own
                // exit code. Exiting here raced it: a worker that refused to serve (71) now and
                // then exited with the protocol error's code (70) instead. Should the main thread
                // not get to its exit (stuck flushing its output), the parent's end still ends
                // the worker: it is seen by the worker being handed to another parent.
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    // SAFETY: `getppid` has no preconditions.
                    if unsafe { libc::getppid() } != parent {
                        // SAFETY: `_exit` ends the process at once; nothing runs after it.
                        unsafe { libc::_exit(code) };
                    }
                }
            }
            let hung_up = libc::POLLHUP | libc::POLLERR;
            if ready < 0 || poll_fd.revents & hung_up != 0 {
                // SAFETY: `_exit` ends the process at once; nothing runs after it.
                unsafe { libc::_exit(code) };
            }
        });
    if spawned.is_err() {
        // Without a watchdog a hung task could outlive the parent; the end of input still stops
        // an idle worker. Nothing better to do this early.
        eprintln!("executor worker: could not start the watchdog thread");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_fds;

    #[test]
    fn the_worker_variable_names_a_socket_and_maybe_a_ring_never_one_descriptor_twice() {
        assert_eq!(parse_fds("3"), Some((3, None)));
        assert_eq!(parse_fds("3,4"), Some((3, Some(4))));
        assert_eq!(parse_fds("3,3"), None, "two owners of one descriptor");
        assert_eq!(parse_fds("3,"), None);
        assert_eq!(parse_fds("three"), None);
    }
}
