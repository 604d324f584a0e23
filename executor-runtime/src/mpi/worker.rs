//! The worker side of the Mpi backend: how an MPI rank becomes a worker before `main`.
//!
//! # Which processes are workers
//!
//! The function that the crate root places in `.init_array` calls [`enter_if_asked`] before `main`
//! in every program built with the `mpi` feature, after the Process backend's entry. A process becomes an Mpi worker when:
//!
//! - *launched*: the launcher says it is a rank other than 0 of a job of several ranks
//!   (`OMPI_COMM_WORLD_RANK` from `mpirun`, `PMIX_RANK` from a PMIx launcher such as `srun
//!   --mpi=pmix`, or `PMI_RANK`), so `mpirun -n 3 ./app` runs `main` on rank 0 and two workers;
//! - *spawned*: its first argument is [`SPAWNED_WORKER_ARG`], which the pool passes to
//!   `MPI_Comm_spawn` when a program started without a launcher opens its first `pool!(Mpi)`
//!   block; MPI then confirms that the process has a parent.
//!
//! A worker initialises MPI, waits for the pool's hello (rank 0 of the job, or of the spawning
//! job), checks that the pool runs the same executable (a digest of the file's contents, since
//! device and inode numbers differ between hosts), serves calls until the pool sends an empty
//! message, finalises MPI and exits: `main` never runs in a worker.
//!
//! Calls and outcomes are the Process backend's frames (`wire`), several to a message; a call's
//! large byte-vector tail, or an outcome's large result, travels as a message of its own right
//! after its frame (see [`FrameReader`]), so big payloads are not copied into a frame buffer.

use std::time::Instant;

use crate::block::identity::{self, WorkerInfo};
use crate::mpi::comm::{self as transport, Comm, Idle, Keep, PendingSend};
use crate::remote::call::CallOutput;
use crate::remote::protocol::{write_frame_into, CallHead, KEEP_BUFFER};
use crate::remote::serve::{answer_call, ready_to_serve};
use crate::remote::tail::Tail;
use crate::remote::wire::{self, Fields, Kind};

/// The first argument of a worker started by `MPI_Comm_spawn`.
pub(crate) const SPAWNED_WORKER_ARG: &str = "--executor-mpi-worker";

/// The message that ends a worker's work when the job has lost a rank (under `mpirun
/// --enable-recovery`): exit without `MPI_Finalize`, which would wait for the lost rank forever.
/// An empty message ends the work normally.
pub(crate) const STOP_WITHOUT_FINALIZE: &[u8] = &[0];

/// Results longer than this are sent as a message of their own after their frame.
pub(crate) const DETACH: usize = 1 << 16;

/// Set (to anything) by a program that makes MPI calls of its own on every rank: then no rank
/// becomes a worker, MPI is left to the program, and `pool!(Mpi)` blocks have no workers.
pub(crate) const RANKS_RUN_MAIN_ENV: &str = "EXECUTOR_MPI_RANKS_RUN_MAIN";

pub(crate) fn ranks_run_main() -> bool {
    std::env::var_os(RANKS_RUN_MAIN_ENV).is_some()
}

/// How a process was started, as far as the Mpi backend is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// By a launcher, as rank `rank` of `size`.
    Launched { rank: usize, size: usize },
    /// By `MPI_Comm_spawn` from a pool.
    Spawned,
    /// Without MPI: a pool spawns its workers.
    Alone,
}

/// How this process was started: read from the launcher's environment and the arguments.
pub(crate) fn start() -> Start {
    let spawned = std::fs::read("/proc/self/cmdline").is_ok_and(|cmdline| {
        cmdline
            .split(|&b| b == 0)
            .nth(1)
            .is_some_and(|arg| arg == SPAWNED_WORKER_ARG.as_bytes())
    });
    if spawned {
        return Start::Spawned;
    }
    let number = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| std::env::var(name).ok()?.parse::<usize>().ok())
    };
    let rank = number(&["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]);
    let size = number(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"]);
    match (rank, size) {
        (Some(rank), Some(size)) if size > 1 => Start::Launched { rank, size },
        _ => Start::Alone,
    }
}

/// Runs before `main`: serves as a worker and exits if this process is one; otherwise, on rank 0
/// of a launched job, starts MPI and arranges for the workers to be stopped when the program exits.
pub(crate) fn enter_if_asked() {
    if ranks_run_main() {
        return;
    }
    let code = match start() {
        Start::Launched { rank: 0, .. } | Start::Alone => {
            crate::mpi::driver::start_if_launched();
            return;
        }
        Start::Launched { .. } => serve(false),
        Start::Spawned => serve(true),
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// The worker's life; returns the exit code.
fn serve(spawned: bool) -> i32 {
    if let Err(why) = transport::initialize() {
        eprintln!("executor mpi worker: {why}");
        return 1;
    }
    let pool = if spawned {
        match transport::parent() {
            Some(parent) => parent,
            None => {
                eprintln!(
                    "executor mpi worker: started with {SPAWNED_WORKER_ARG} but not spawned by a \
                     pool; exiting"
                );
                transport::finalize();
                return 2;
            }
        }
    } else {
        transport::world()
    };
    let (code, finalize) = match std::panic::catch_unwind(|| serve_calls(pool)) {
        Ok(Ok(finalize)) => (0, finalize),
        Ok(Err(why)) => {
            eprintln!("executor mpi worker: {why}");
            (70, true)
        }
        Err(_) => (70, true),
    };
    if !finalize {
        // The job lost a rank: `MPI_Finalize` would wait for it forever.
        return code;
    }
    if spawned {
        transport::disconnect(pool);
    }
    transport::finalize();
    code
}

/// Serves the pool at rank 0 of `pool` until it sends the message that ends the work; gives
/// whether to finalise MPI then (see [`STOP_WITHOUT_FINALIZE`]).
fn serve_calls(pool: Comm) -> Result<bool, String> {
    let mut reader = FrameReader::new(pool, 0);
    let mut output = CallOutput::default();
    let mut frame = Vec::new();
    ready_to_serve(&mut frame, &mut output);
    let mut accepted = false;
    loop {
        let Some((kind, payload, detached, started)) = reader.next()? else {
            return Ok(!reader.without_finalize);
        };
        match kind {
            Kind::Hello => {
                let (answer_kind, answer) = answer_hello(payload);
                accepted = answer_kind == Kind::Ready;
                frame.clear();
                write_frame_into(&mut frame, answer_kind, &answer);
                transport::send(pool, 0, &frame)?;
            }
            Kind::Call if accepted => {
                let (head, arguments) = CallHead::parse(payload).map_err(|e| e.to_string())?;
                let tail = match (head.tail_len as usize, detached) {
                    (0, None) => None,
                    // A string's bytes are checked when they are decoded.
                    (len, Some(tail)) if tail.len() == len => Some(Tail::Bytes(tail)),
                    _ => return Err("a call's tail did not match its length".to_string()),
                };
                // SAFETY: only the pool at rank 0 sends on this communicator (the job's members
                // run this executable, checked in the handshake just answered), and it sends
                // offsets from `remote::call::remote<n>` or `chunk_call`.
                unsafe { answer_call(&head, arguments, tail, &mut frame, &mut output, started) }
                    .ok_or("a call named code outside the executable")?;
                send_outcome(pool, &mut frame, &mut output)?;
            }
            other => return Err(format!("unexpected {other:?} message from the pool")),
        }
        if output.bytes.capacity() > DETACH * 1024 {
            output.bytes = Vec::new();
        }
    }
}

/// Sends one call's outcome, its head in `frame` and its result in `output`: one message, or for
/// a large result its frame and then the result, sent from its own buffer (a raw tail, a large
/// byte vector or string result, is sent from the vector the function returned, then freed; a
/// large encoded result from `output`'s buffer, which goes back there for the next call).
fn send_outcome(pool: Comm, frame: &mut Vec<u8>, output: &mut CallOutput) -> Result<(), String> {
    match output.tail.take() {
        Some(tail) if tail.len() > DETACH => {
            frame.extend_from_slice(&output.bytes);
            transport::send(pool, 0, frame)?;
            send_large(pool, tail.into_bytes()).map(drop)
        }
        Some(tail) => {
            frame.extend_from_slice(&output.bytes);
            frame.extend_from_slice(tail.as_bytes());
            transport::send(pool, 0, frame)
        }
        None if output.bytes.len() <= DETACH => {
            frame.extend_from_slice(&output.bytes);
            transport::send(pool, 0, frame)
        }
        None => {
            transport::send(pool, 0, frame)?;
            let mut bytes = send_large(pool, std::mem::take(&mut output.bytes))?;
            // Reused as the Process worker reuses it: up to `KEEP_BUFFER`.
            if bytes.capacity() <= KEEP_BUFFER {
                bytes.clear();
                output.bytes = bytes;
            }
            Ok(())
        }
    }
}

/// Sends a large result and waits until MPI is done with its buffer (the pool has fetched it),
/// polling with [`Idle`]'s backoff: a blocking `MPI_Send` of a large message spins on a core until
/// the receiver has copied it, and the receiver is the pool's one driver thread, which that
/// spinning (two workers on 2 cores) keeps from its core. Gives the buffer back.
fn send_large(pool: Comm, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut send = PendingSend::start(pool, 0, Keep::Owned(bytes))?;
    let mut idle = Idle::default();
    while !send.test()? {
        idle.pause();
    }
    Ok(send.into_buffer().unwrap_or_default())
}

/// Answers the hello: `Ready` with this worker's pid, rank and host, or `Refused` with why.
fn answer_hello(payload: &[u8]) -> (Kind, Vec<u8>) {
    let mut fields = Fields::new(payload);
    let index = fields.u64("worker index").unwrap_or(0) as usize;
    slow_hello_for_tests(index);
    let mut theirs = [0u64; 5];
    for field in &mut theirs {
        *field = fields.u64("executable digest").unwrap_or(0);
    }
    let own = match executable_digest() {
        Ok(own) => own,
        Err(why) => return (Kind::Refused, why.into_bytes()),
    };
    if own != theirs {
        let why = format!(
            "the MPI worker at rank {} on {} runs another executable than the pool's ({}): \
             every rank must run the same binary",
            transport::rank(transport::world()),
            transport::host_name(),
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "unknown path".to_string()),
        );
        return (Kind::Refused, why.into_bytes());
    }
    let rank = transport::rank(transport::world());
    let host = transport::host_name();
    identity::become_process_worker(WorkerInfo::mpi(index, rank, host.clone()));
    let mut answer = u64::from(std::process::id()).to_le_bytes().to_vec();
    answer.extend_from_slice(&(rank as u64).to_le_bytes());
    answer.extend_from_slice(host.as_bytes());
    (Kind::Ready, answer)
}

/// Debug builds only: `EXECUTOR_MPI_TEST_SLOW_HELLO=INDEX:MS` makes the worker with that index
/// wait `MS` milliseconds before it answers its hello, so that a test can hold a worker in the
/// pool's "greeting" state (`tests/mpi.rs`, `a_worker_that_has_not_answered_its_hello...`).
fn slow_hello_for_tests(index: usize) {
    if cfg!(debug_assertions) {
        let asked = std::env::var("EXECUTOR_MPI_TEST_SLOW_HELLO").ok();
        let parsed = asked
            .as_deref()
            .and_then(|v| v.split_once(':'))
            .and_then(|(i, ms)| Some((i.parse::<usize>().ok()?, ms.parse::<u64>().ok()?)));
        if let Some((slow, ms)) = parsed {
            if slow == index {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }
    }
}

/// Reads frames from the messages of one peer: several frames may share a message, and a frame
/// whose payload runs past the end of its message continues in the next message, which holds
/// exactly the rest (a call's raw tail, or an outcome's result), kept as a vector of its own.
pub(crate) struct FrameReader {
    comm: Comm,
    peer: usize,
    message: Vec<u8>,
    at: usize,
    /// The work ended with [`STOP_WITHOUT_FINALIZE`].
    without_finalize: bool,
}

impl FrameReader {
    pub(crate) fn new(comm: Comm, peer: usize) -> Self {
        FrameReader {
            comm,
            peer,
            message: Vec::new(),
            at: 0,
            without_finalize: false,
        }
    }

    /// The next frame: its kind, the payload present in the message, the detached rest if any,
    /// and when its message had arrived (its receiving began). `None` when the peer sent the
    /// empty message that ends the work.
    #[allow(clippy::type_complexity)]
    fn next(&mut self) -> Result<Option<(Kind, &[u8], Option<Vec<u8>>, Instant)>, String> {
        let mut started = Instant::now();
        if self.at >= self.message.len() {
            let arrived = transport::wait_for(self.comm, self.peer, || true)?;
            started = Instant::now();
            self.message.clear();
            self.at = 0;
            if self.message.capacity() > DETACH * 1024 {
                self.message = Vec::new();
            }
            transport::receive(self.comm, arrived, &mut self.message)?;
            if self.message.is_empty() || self.message == STOP_WITHOUT_FINALIZE {
                self.without_finalize = !self.message.is_empty();
                return Ok(None);
            }
        }
        let (kind, present, detached) = split_frame(&self.message[self.at..], |len| {
            let arrived = transport::wait_for(self.comm, self.peer, || true)?;
            if arrived.len != len {
                return Err(format!(
                    "a frame's rest of {len} bytes came as a message of {}",
                    arrived.len
                ));
            }
            let mut rest = Vec::new();
            transport::receive(self.comm, arrived, &mut rest)?;
            Ok(rest)
        })?;
        let start = self.at + wire::HEADER_LEN;
        self.at = start + present;
        Ok(Some((
            kind,
            &self.message[start..start + present],
            detached,
            started,
        )))
    }
}

/// Splits the frame at the start of `bytes`: its kind, how many payload bytes `bytes` holds, and
/// the rest of the payload, fetched with `rest(len)` when the frame runs past the end of `bytes`.
pub(crate) fn split_frame(
    bytes: &[u8],
    rest: impl FnOnce(usize) -> Result<Vec<u8>, String>,
) -> Result<(Kind, usize, Option<Vec<u8>>), String> {
    let header: &[u8; wire::HEADER_LEN] = bytes
        .get(..wire::HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or("a message ends inside a frame header")?;
    let (kind, len) = wire::parse_header(header).map_err(|e| e.to_string())?;
    let present = bytes.len() - wire::HEADER_LEN;
    if len <= present {
        return Ok((kind, len, None));
    }
    Ok((kind, present, Some(rest(len - present)?)))
}

/// A digest of this process's executable file: its length and two 64-bit hashes of its bytes.
/// Unlike device and inode numbers it is the same on every host that has a copy of the binary.
/// (Not a cryptographic hash: it guards against running a different build by mistake; members of
/// an MPI job trust each other, see SECURITY.md.)
pub(crate) fn executable_digest() -> Result<[u64; 5], String> {
    static DIGEST: std::sync::OnceLock<Result<[u64; 5], String>> = std::sync::OnceLock::new();
    DIGEST
        .get_or_init(|| {
            digest_file(std::path::Path::new("/proc/self/exe"))
                .map_err(|e| format!("cannot read the executable to identify it: {e}"))
        })
        .clone()
}

fn digest_file(path: &std::path::Path) -> std::io::Result<[u64; 5]> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let (mut a, mut b, mut len) = (0x243F_6A88_85A3_08D3u64, 0x1319_8A2E_0370_7344u64, 0u64);
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match file.read(&mut buffer[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        len += filled as u64;
        // Zero padding of the last word is told apart by the length.
        buffer[filled..].iter_mut().take(7).for_each(|b| *b = 0);
        for word in buffer[..filled.div_ceil(8) * 8].chunks_exact(8) {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            a = (a ^ word)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(29);
            b = (b ^ word.rotate_left(17))
                .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                .rotate_left(31);
        }
        if filled < buffer.len() {
            break;
        }
    }
    Ok([len, a, b, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_tells_files_apart_by_content_not_by_place() {
        let dir = std::env::temp_dir().join(format!("executor-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (one, two, other) = (dir.join("one"), dir.join("two"), dir.join("other"));
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&one, &content).unwrap();
        std::fs::write(&two, &content).unwrap();
        let mut changed = content.clone();
        changed[2_500_000] ^= 1;
        std::fs::write(&other, &changed).unwrap();
        let digest = |p| digest_file(p).unwrap();
        assert_eq!(digest(&one), digest(&two));
        assert_ne!(digest(&one), digest(&other));
        let mut longer = content;
        longer.push(0);
        std::fs::write(&other, &longer).unwrap();
        assert_ne!(digest(&one), digest(&other), "a trailing zero byte counts");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_frame_running_past_its_message_takes_the_next_as_its_rest() {
        let mut message = Vec::new();
        wire::write_header(&mut message, Kind::Call, 10).unwrap();
        message.extend_from_slice(&[1, 2, 3, 4]);
        let (kind, present, rest) = split_frame(&message, |len| Ok(vec![9; len])).unwrap();
        assert_eq!((kind, present), (Kind::Call, 4));
        assert_eq!(rest, Some(vec![9; 6]));
        message.extend_from_slice(&[5, 6, 7, 8, 9, 10, 0xEC]);
        let (_, present, rest) = split_frame(&message, |_| panic!("complete")).unwrap();
        assert_eq!((present, rest), (10, None));
        assert!(split_frame(&message[..5], |_| Ok(Vec::new())).is_err());
    }
}
