//! Messages between MPI ranks: the one module that calls MPI (through rsmpi's `mpi::ffi`).
//!
//! Everything here is a thin, checked wrapper over a C call. The Mpi backend makes MPI calls from
//! one thread per process (the driver thread on the side that opens blocks, the worker's only
//! thread on the other), so MPI is initialised with `MPI_THREAD_FUNNELED` by that thread.
//!
//! A message is a run of bytes of any length with one tag, [`TAG`]. Which rank sent it, and how
//! long it is, are learnt with a probe before it is received, so a receiver never guesses a size.
//! Every communicator used gets the `MPI_ERRORS_RETURN` handler: MPI's default handler aborts the
//! whole job on the first error, where we want a typed error for the calls concerned.

use std::ffi::{c_char, c_int, CStr, CString};

use mpi::ffi;

/// The tag of every message between a pool and its MPI workers.
const TAG: c_int = 0x4543;

/// A communicator handle. Handles are plain values that MPI owns; the one MPI thread of a process
/// is the only one that uses them.
#[derive(Clone, Copy)]
pub(crate) struct Comm(ffi::MPI_Comm);

impl PartialEq for Comm {
    fn eq(&self, other: &Comm) -> bool {
        self.0 .0 == other.0 .0
    }
}

// SAFETY: a handle is an opaque pointer that MPI owns and never frees while we use it (until
// `disconnect` or `finalize`); moving it to the thread that makes the MPI calls changes nothing.
unsafe impl Send for Comm {}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Comm({:p})", self.0 .0)
    }
}

/// Turns an MPI return code into `Err` with MPI's own description.
fn check(code: c_int, what: &str) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    let mut text = [0 as c_char; 512];
    let mut len: c_int = 0;
    // SAFETY: `MPI_Error_string` writes at most `MPI_MAX_ERROR_STRING` (256 in Open MPI, 512 in
    // MPICH) bytes into `text`, which holds 512, and their count into `len`.
    let described = unsafe { ffi::MPI_Error_string(code, text.as_mut_ptr(), &mut len) } == 0;
    let message = if described {
        let bytes: Vec<u8> = text[..len.clamp(0, 512) as usize]
            .iter()
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        format!("error code {code}")
    };
    Err(format!("{what} failed: {message}"))
}

/// Initialises MPI for this process, once, asking for `MPI_THREAD_FUNNELED`: the calling thread
/// becomes the process's MPI thread. Must not be called after [`finalize`].
pub(crate) fn initialize() -> Result<(), String> {
    let mut provided: c_int = 0;
    // SAFETY: null `argc`/`argv` are allowed since MPI-2; MPI is not initialised yet (the callers
    // initialise once per process); `provided` is a live `c_int`.
    let code = unsafe {
        ffi::MPI_Init_thread(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            ffi::RSMPI_THREAD_FUNNELED,
            &mut provided,
        )
    };
    check(code, "MPI_Init_thread")?;
    // SAFETY: reads a constant of the MPI library.
    let world = Comm(unsafe { ffi::RSMPI_COMM_WORLD });
    return_errors(world);
    // SAFETY: as above.
    return_errors(Comm(unsafe { ffi::RSMPI_COMM_SELF }));
    Ok(())
}

/// Finalises MPI; nothing MPI may be called afterwards.
pub(crate) fn finalize() {
    // SAFETY: called once, by the thread that initialised MPI, after its last other MPI call.
    unsafe { ffi::MPI_Finalize() };
}

/// `MPI_COMM_WORLD`.
pub(crate) fn world() -> Comm {
    // SAFETY: reads a constant of the MPI library.
    Comm(unsafe { ffi::RSMPI_COMM_WORLD })
}

/// The communicator to the process that spawned this one, if it was spawned.
pub(crate) fn parent() -> Option<Comm> {
    // SAFETY: reads a constant of the MPI library.
    let mut parent = unsafe { ffi::RSMPI_COMM_NULL };
    // SAFETY: `MPI_Comm_get_parent` writes one handle into `parent`; MPI is initialised.
    unsafe { ffi::MPI_Comm_get_parent(&mut parent) };
    // SAFETY: as above.
    if parent.0 == unsafe { ffi::RSMPI_COMM_NULL }.0 {
        return None;
    }
    let parent = Comm(parent);
    return_errors(parent);
    Some(parent)
}

/// This process's rank in `comm`.
pub(crate) fn rank(comm: Comm) -> usize {
    let mut rank: c_int = 0;
    // SAFETY: writes one `c_int`; `comm` is a live communicator.
    unsafe { ffi::MPI_Comm_rank(comm.0, &mut rank) };
    rank.max(0) as usize
}

/// Makes MPI calls on `comm` return their errors instead of aborting the job.
fn return_errors(comm: Comm) {
    // SAFETY: `comm` is a live communicator and `RSMPI_ERRORS_RETURN` a predefined handler.
    unsafe { ffi::MPI_Comm_set_errhandler(comm.0, ffi::RSMPI_ERRORS_RETURN) };
}

/// The name of this host, as MPI reports it.
pub(crate) fn host_name() -> String {
    let mut name = [0 as c_char; 256];
    let mut len: c_int = 0;
    // SAFETY: `MPI_Get_processor_name` writes at most `MPI_MAX_PROCESSOR_NAME` (256 in Open MPI,
    // 128 in MPICH) bytes into `name`, which holds 256, and their count into `len`.
    let code = unsafe { ffi::MPI_Get_processor_name(name.as_mut_ptr(), &mut len) };
    if code != 0 {
        return "unknown".to_string();
    }
    let bytes: Vec<u8> = name[..len.clamp(0, 256) as usize]
        .iter()
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Starts `count` processes of `program` with `args` (`MPI_Comm_spawn` from this process alone)
/// and gives the intercommunicator to them: they are its remote ranks 0 to `count - 1`. Open MPI
/// refuses to start more processes than the host has cores unless oversubscription is allowed,
/// which the spawn asks for (`map_by :OVERSUBSCRIBE`), so that a user of a laptop need not know.
pub(crate) fn spawn(program: &CStr, args: &[CString], count: usize) -> Result<Comm, String> {
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let mut errors = vec![0 as c_int; count];
    // SAFETY: reads constants of the MPI library.
    let (self_comm, mut inter) = unsafe { (ffi::RSMPI_COMM_SELF, ffi::RSMPI_COMM_NULL) };
    // SAFETY: `info` is created before use and freed once after; the key and value are
    // NUL-terminated; `argv` is a NULL-terminated array of NUL-terminated strings that outlive the
    // call (MPI only reads them); `errors` holds `count` codes, as `MPI_Comm_spawn` writes.
    let code = unsafe {
        let mut info = ffi::RSMPI_INFO_NULL;
        ffi::MPI_Info_create(&mut info);
        ffi::MPI_Info_set(info, c"map_by".as_ptr(), c":OVERSUBSCRIBE".as_ptr());
        let code = ffi::MPI_Comm_spawn(
            program.as_ptr(),
            argv.as_mut_ptr(),
            count as c_int,
            info,
            0,
            self_comm,
            &mut inter,
            errors.as_mut_ptr(),
        );
        ffi::MPI_Info_free(&mut info);
        code
    };
    check(code, "MPI_Comm_spawn")?;
    if let Some(&failed) = errors.iter().find(|&&e| e != 0) {
        check(failed, "starting a spawned worker")?;
    }
    let inter = Comm(inter);
    return_errors(inter);
    Ok(inter)
}

/// Disconnects from the processes at the other end of `comm` (a spawn's intercommunicator):
/// collective, so they must disconnect too.
pub(crate) fn disconnect(comm: Comm) {
    let mut handle = comm.0;
    // SAFETY: `comm` came from `spawn` or `parent` and is not used after this.
    unsafe { ffi::MPI_Comm_disconnect(&mut handle) };
}

/// Sends `bytes` to `dest`, waiting until the buffer may be reused (for a small message, at once).
pub(crate) fn send(comm: Comm, dest: usize, bytes: &[u8]) -> Result<(), String> {
    let len = c_int::try_from(bytes.len()).map_err(|_| "a message over 2 GiB".to_string())?;
    // SAFETY: MPI reads `len` bytes from `bytes`, which is valid for that long, before returning.
    let code = unsafe {
        ffi::MPI_Send(
            bytes.as_ptr().cast(),
            len,
            ffi::RSMPI_UINT8_T,
            dest as c_int,
            TAG,
            comm.0,
        )
    };
    check(code, "MPI_Send")
}

/// A message that has arrived and not been received yet: who sent it, and its length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrived {
    pub(crate) source: usize,
    pub(crate) len: usize,
}

/// Whether a message from `source` (any rank, if `None`) has arrived on `comm`; does not wait.
pub(crate) fn poll(comm: Comm, source: Option<usize>) -> Result<Option<Arrived>, String> {
    let mut flag: c_int = 0;
    // SAFETY: `MPI_Status` is plain data; MPI fills it in.
    let mut status: ffi::MPI_Status = unsafe { std::mem::zeroed() };
    // SAFETY: reads a constant of the MPI library.
    let source = source.map_or(unsafe { ffi::RSMPI_ANY_SOURCE }, |s| s as c_int);
    // SAFETY: `flag` and `status` are live; `comm` is a live communicator.
    let code = unsafe { ffi::MPI_Iprobe(source, TAG, comm.0, &mut flag, &mut status) };
    check(code, "MPI_Iprobe")?;
    if flag == 0 {
        return Ok(None);
    }
    let mut count: c_int = 0;
    // SAFETY: `status` was filled in by the successful probe; `count` is live.
    let code = unsafe { ffi::MPI_Get_count(&status, ffi::RSMPI_UINT8_T, &mut count) };
    check(code, "MPI_Get_count")?;
    Ok(Some(Arrived {
        source: status.MPI_SOURCE.max(0) as usize,
        len: count.max(0) as usize,
    }))
}

/// Receives the message `arrived` announced, appending its bytes to `buffer`.
pub(crate) fn receive(comm: Comm, arrived: Arrived, buffer: &mut Vec<u8>) -> Result<(), String> {
    buffer.reserve_exact(arrived.len);
    let start = buffer.len();
    // SAFETY: the spare capacity holds at least `arrived.len` bytes; MPI writes exactly the
    // message's `arrived.len` bytes there (the probe said so, and messages from one source with
    // one tag arrive in order, so the one received is the one probed: only this thread receives).
    let code = unsafe {
        ffi::MPI_Recv(
            buffer.as_mut_ptr().add(start).cast(),
            arrived.len as c_int,
            ffi::RSMPI_UINT8_T,
            arrived.source as c_int,
            TAG,
            comm.0,
            ffi::RSMPI_STATUS_IGNORE,
        )
    };
    check(code, "MPI_Recv")?;
    // SAFETY: MPI initialised these `arrived.len` bytes.
    unsafe { buffer.set_len(start + arrived.len) };
    Ok(())
}

/// Waits for the next message from `source` on `comm` without blocking inside MPI: probes, then
/// spins, yields and finally sleeps a little between probes. (A blocking `MPI_Probe` busy-polls
/// at full speed for as long as it waits, taking a core from the work on small machines.) Every
/// 20 ms it asks `alive` whether `source` still runs, and gives up when it does not.
pub(crate) fn wait_for(
    comm: Comm,
    source: usize,
    mut alive: impl FnMut() -> bool,
) -> Result<Arrived, String> {
    let mut idle = Idle::default();
    let mut checked = std::time::Instant::now();
    loop {
        if let Some(arrived) = poll(comm, Some(source))? {
            return Ok(arrived);
        }
        if checked.elapsed() > std::time::Duration::from_millis(20) {
            if !alive() {
                return Err(format!("rank {source} ended before its message came"));
            }
            checked = std::time::Instant::now();
        }
        idle.pause();
    }
}

/// A backoff for polling loops: spin first (a reply is usually microseconds away), then yield the
/// core, then sleep in growing steps up to a quarter of a millisecond (what a long call's answer
/// may wait to be seen: small next to the call).
/// Polls that spin, then polls (up to this count) that yield, before polls that sleep. Short: on
/// a small machine the workers, the driver and the block's thread share the cores, and a poller
/// that spins or yields for long takes time from the thread that would give it work.
const SPINS: u32 = 50;
const YIELDS: u32 = 100;

#[derive(Default)]
pub(crate) struct Idle {
    rounds: u32,
}

impl Idle {
    pub(crate) fn pause(&mut self) {
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds <= SPINS {
            std::hint::spin_loop();
        } else if self.rounds <= YIELDS {
            std::thread::yield_now();
        } else {
            let micros = (self.rounds - YIELDS).clamp(20, 250) as u64;
            std::thread::sleep(std::time::Duration::from_micros(micros));
        }
    }

    /// Something happened: the next wait starts with spinning again.
    pub(crate) fn reset(&mut self) {
        self.rounds = 0;
    }
}

/// A message being sent; its bytes stay alive, unmoved, until MPI is done with them.
pub(crate) struct PendingSend {
    request: ffi::MPI_Request,
    /// What the request reads from: owned here so it outlives the request.
    bytes: Keep,
    done: bool,
}

/// The bytes of a [`PendingSend`].
pub(crate) enum Keep {
    /// A buffer of its own.
    Owned(Vec<u8>),
    /// A call's raw tail, part of its request, shared with the call.
    Tail(std::sync::Arc<crate::remote::queue::Request>),
}

impl Keep {
    fn bytes(&self) -> &[u8] {
        match self {
            Keep::Owned(bytes) => bytes,
            Keep::Tail(request) => request
                .arguments
                .parts()
                .last()
                .map_or(&[][..], Vec::as_slice),
        }
    }
}

// SAFETY: the request handle is only used by the MPI thread that created it; the bytes are owned.
unsafe impl Send for PendingSend {}

impl PendingSend {
    /// Starts sending `bytes` to `dest` without waiting.
    pub(crate) fn start(comm: Comm, dest: usize, bytes: Keep) -> Result<PendingSend, String> {
        let view = bytes.bytes();
        let len = c_int::try_from(view.len()).map_err(|_| "a message over 2 GiB".to_string())?;
        // SAFETY: reads a constant of the MPI library.
        let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY: MPI reads `len` bytes from `view` until the request completes; the bytes are
        // heap memory owned by the `PendingSend` returned, which frees them only once the request
        // is complete (`Drop` leaks them otherwise), and moving a `Vec` or `Arc` does not move
        // its heap buffer.
        let code = unsafe {
            ffi::MPI_Isend(
                view.as_ptr().cast(),
                len,
                ffi::RSMPI_UINT8_T,
                dest as c_int,
                TAG,
                comm.0,
                &mut request,
            )
        };
        check(code, "MPI_Isend")?;
        Ok(PendingSend {
            request,
            bytes,
            done: false,
        })
    }

    /// Whether the send has completed (its bytes may be freed); also drives MPI's progress.
    pub(crate) fn test(&mut self) -> Result<bool, String> {
        if self.done {
            return Ok(true);
        }
        let mut flag: c_int = 0;
        // SAFETY: `request` came from `MPI_Isend` and has not completed yet (`done` is false);
        // `MPI_Test` frees it and sets it to null once it completes.
        let code = unsafe { ffi::MPI_Test(&mut self.request, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
        check(code, "MPI_Test")?;
        self.done = flag != 0;
        Ok(self.done)
    }

    /// Tests every send of `sends` not yet complete with one `MPI_Testsome`, marking those that
    /// completed. One call drives MPI's progress once for all of them, where an `MPI_Test` each
    /// drives it once per send, and on an oversubscribed node Open MPI yields the core at each
    /// drive that found nothing to do (`mpi_yield_when_idle`): with 200 calls of 1 MiB arguments
    /// in flight to 2 workers, the driver made about 168 `sched_yield` calls per call.
    pub(crate) fn test_all<'a>(
        sends: impl IntoIterator<Item = &'a mut PendingSend>,
    ) -> Result<(), String> {
        let mut pending: Vec<&'a mut PendingSend> = sends.into_iter().filter(|s| !s.done).collect();
        if pending.is_empty() {
            return Ok(());
        }
        let mut requests: Vec<ffi::MPI_Request> = pending.iter().map(|s| s.request).collect();
        let mut indices: Vec<c_int> = vec![0; requests.len()];
        let mut completed: c_int = 0;
        let count = c_int::try_from(requests.len()).map_err(|_| "too many sends".to_string())?;
        // SAFETY: `requests` holds `count` live requests, each from `MPI_Isend` and not yet
        // complete (`done` is false); `indices` has room for `count` entries. MPI frees each
        // request that completed successfully and sets its entry in `requests` to null, also when
        // it returns `MPI_ERR_IN_STATUS` for another (Open MPI 4.1 leaves only the failed ones
        // alive); every `PendingSend` whose entry is now null is marked done below, whatever the
        // return code, and never passes its handle to MPI again.
        let code = unsafe {
            ffi::MPI_Testsome(
                count,
                requests.as_mut_ptr(),
                &mut completed,
                indices.as_mut_ptr(),
                ffi::RSMPI_STATUSES_IGNORE,
            )
        };
        // SAFETY: reads a constant of the MPI library.
        let null = unsafe { ffi::RSMPI_REQUEST_NULL };
        for (send, request) in pending.iter_mut().zip(&requests) {
            if *request == null {
                send.request = null;
                send.done = true;
            }
        }
        check(code, "MPI_Testsome")
    }

    /// Whether the send has completed (marked by [`PendingSend::test`] or
    /// [`PendingSend::test_all`]).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The buffer a completed send of [`Keep::Owned`] bytes read from, for reuse; `None` for a
    /// tail, or while the send has not completed (MPI may still read the bytes).
    pub(crate) fn into_buffer(mut self) -> Option<Vec<u8>> {
        if !self.done {
            return None;
        }
        match std::mem::replace(&mut self.bytes, Keep::Owned(Vec::new())) {
            Keep::Owned(bytes) => Some(bytes),
            Keep::Tail(_) => None,
        }
    }
}

impl Drop for PendingSend {
    fn drop(&mut self) {
        if !self.done {
            // MPI may still read the bytes (the peer died, or MPI is being torn down): leak them
            // rather than free memory MPI may touch.
            let bytes = std::mem::replace(&mut self.bytes, Keep::Owned(Vec::new()));
            std::mem::forget(bytes);
        }
    }
}
