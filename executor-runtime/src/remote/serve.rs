//! Serving calls on the worker's side, the same for every remote backend: a call names its
//! function and trampoline by offsets (see `remote::call`), which are checked to lie in the
//! executable's code before anything runs; the call's result, or why it gave none, goes back as
//! an outcome (`protocol::OutcomeHead`) with its run time, which sizes the pool's window.

use std::time::Instant;

use crate::remote::call::{self, CallOutput, CallStatus, ErasedTrampoline};
use crate::remote::executable::{address_at, in_executable};
use crate::remote::protocol::{CallHead, OutcomeHead};
use crate::remote::tail::Tail;
use crate::task::panic::install_hook;

/// What a serving loop reserves, before its first call, for the outcome's head and for its encoded
/// result, each: a page, more than a small result's outcome takes, so that most workers never grow
/// either later.
const RESERVED_BEFORE_FIRST_CALL: usize = 4096;

/// Makes, before the first call, what a worker keeps for its whole life: the panic hook that
/// `catch` would install, standard output's buffer (a task's first `println!`), and `frame` and
/// `output`'s buffers. The hook's allocation, made during the first call, lay in the heap just
/// above that call's large argument, which then could not rejoin the heap's top when freed; the
/// next small allocations were carved out of it, and the second call's argument came from fresh
/// memory. 8 calls with a 64 MiB argument on 2 workers faulted in 256 MiB of fresh huge pages,
/// now 128 (`thp_fault_alloc` in `/proc/vmstat`). Fresh memory costs the kernel's zeroing and, on
/// a VM that hands freed memory back to its host (free page reporting, as on the Firecracker VMs
/// of BENCHMARKS.md's Intel sections), the host's faults too: after a long `map` had let the
/// memory go, the workers' kernel time for those calls fell from a median 363 ms to 145 (scratch
/// program). A task that itself keeps a small allocation while its argument is alive still
/// strands that argument.
pub(crate) fn ready_to_serve(frame: &mut Vec<u8>, output: &mut CallOutput) {
    install_hook();
    let _ = std::io::stdout();
    frame.reserve(RESERVED_BEFORE_FIRST_CALL);
    output.bytes.reserve(RESERVED_BEFORE_FIRST_CALL);
}

/// Runs one call: the trampoline at offset `trampoline` with the function at offset `function`,
/// the encoded `arguments` and the raw `tail`; the result or message goes to `output` (cleared
/// first), a large byte vector or string result as its raw tail. `None`, without running anything, if either offset is outside the executable's code.
///
/// # Safety
/// The offsets must come from `remote::call::remote<n>` (or `chunk_call`) in a process running this
/// same executable: a trampoline of type `ErasedTrampoline` and the function type that trampoline
/// instance expects. The caller vouches for where the message came from (only the pool that
/// started this worker can send it) and that the executables match (the handshake).
pub(crate) unsafe fn run_call(
    trampoline: i64,
    function: i64,
    arguments: &[u8],
    tail: Option<Tail>,
    output: &mut CallOutput,
) -> Option<CallStatus> {
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

/// Runs the call `head` names with its encoded `arguments` and raw `tail`, and writes its outcome:
/// the head into `frame` (cleared first), the result or message into `output`, with the time since
/// `started` as its run time: when the worker began to receive the call, so that a call whose
/// arguments take long to arrive counts as long (it sizes the pool's window: 1 MiB arguments
/// take 0.2–0.3 ms to arrive on Mpi, the function that only reads their length 0.1 µs). `None`,
/// without running anything, if the call names code outside the executable.
///
/// # Safety
/// As for [`run_call`], for the offsets in `head`.
pub(crate) unsafe fn answer_call(
    head: &CallHead,
    arguments: &[u8],
    tail: Option<Tail>,
    frame: &mut Vec<u8>,
    output: &mut CallOutput,
    started: Instant,
) -> Option<()> {
    // SAFETY: forwarded from the caller.
    let status = unsafe { run_call(head.trampoline, head.function, arguments, tail, output) }?;
    let elapsed_ns = started.elapsed().as_nanos().min(u64::MAX as u128) as u64;
    frame.clear();
    let outcome = OutcomeHead {
        id: head.id,
        status,
        elapsed_ns,
        tail_len: 0,
        text: false,
    };
    outcome.write(frame, output);
    Some(())
}

/// Runs a pool's initializer (sent as a call); gives why the worker refuses to serve if it did not
/// return.
///
/// # Safety
/// As for [`run_call`].
pub(crate) unsafe fn run_initializer(
    trampoline: i64,
    function: i64,
    arguments: &[u8],
) -> Option<String> {
    let mut output = CallOutput::default();
    // SAFETY: forwarded from the caller.
    let Some(status) = (unsafe { run_call(trampoline, function, arguments, None, &mut output) })
    else {
        return Some("the initializer is not in the executable's code".to_string());
    };
    initializer_failure(status, &output.bytes)
}

/// Why a pool's initializer that ended with `status` and `output` makes its worker refuse to
/// serve, if it did not return.
pub(crate) fn initializer_failure(status: CallStatus, output: &[u8]) -> Option<String> {
    match status {
        CallStatus::Returned => None,
        CallStatus::Panicked => Some(format!(
            "the pool's initializer panicked: {}",
            call::decode_panic(output).summary()
        )),
        CallStatus::Transport => Some(format!(
            "the pool's initializer failed: {}",
            String::from_utf8_lossy(output)
        )),
    }
}
