//! A shared-memory ring per worker, for large raw tails: the bytes of a trailing byte vector or
//! string argument, and of a byte vector or string result.
//!
//! Why: through the socket a 64 MiB payload crossed at 0.25–0.3 of a `memcpy` (two kernel copies
//! and a system call per 4 MiB), while C programs on the same VM copied through a reused,
//! pre-faulted shared mapping at about `memcpy`'s rate (BENCHMARKS.md, "Large payloads on
//! Process"). So when it starts a worker the pool creates one sealed `memfd` holding two rings,
//! pool → worker (argument tails) and worker → pool (result tails), maps it, and passes it to the
//! worker at descriptor `spawn::RING_FD`; the worker checks and maps it too, and closes the
//! descriptor.
//!
//! Each ring is a header (the chunks the sender *published* and the receiver *consumed*, each on
//! a cache line of its own, and which side *sleeps*) and [`SLOTS`] slots of [`CHUNK`] bytes. A
//! tail crosses in chunks, in order: the sender copies chunk `n` into slot `n % SLOTS` once fewer
//! than `SLOTS` chunks are unconsumed and publishes it; the receiver copies it out and consumes
//! it. Frames stay on the socket: the sender writes (and flushes) a message's head there before it
//! pushes the tail into the ring, and the receiver reads the head and then pulls the tail, so both
//! agree where each tail begins (a tail of [`RING_MIN`] bytes or more takes the ring whenever the
//! link has one) and neither waits on the other in a circle.
//!
//! Waiting is a short spin, then `FUTEX_WAIT` (not the private kind: the word is in the other
//! process's mapping too) for at most [`NAP`], after which the socket says whether the other side
//! is still there: a hang-up (it exited or was killed) ends the wait with an I/O error, which the
//! link treats as it treats the socket's own. A peer that breaks the protocol can make this side
//! copy wrong bytes, but never copy outside the mapping (slots are chosen from this side's own
//! count, lengths from its own message) nor wait for ever (the counters it writes are checked,
//! and the socket is watched).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::remote::buffer::{self, RESERVE_AHEAD};
use crate::remote::protocol::TailChannel;
use crate::remote::tail::{Tail, Utf8Check};
use crate::remote::wire::ReadError;
use sleep::{futex_wait, futex_wake, hung_up};

/// Slots per ring, and their size. Touched pages count in both processes' resident set, so the
/// rings stay small: 2 MiB a direction, 4 MiB a worker. Measured on the report's VM (2-vCPU AMD
/// EPYC; 18 runs each, alternating, of 8 calls with a 64 MiB `Vec<u8>` argument, then 8 with such a
/// result, on 2 workers, as the report's table; ratios to a `memcpy` of the same bytes in the same
/// run), with the wake-ups of [`HYSTERESIS`]: 4 × 512 KiB moved arguments at a median 0.76 and
/// results at 0.64 (lower quartile 0.48) of the `memcpy`'s rate, 2 × 1 MiB at 0.79 and 0.64 (0.35),
/// 8 × 256 KiB at 0.70 and 0.58 (0.38); identical builds differed by up to 0.05 between such sets.
/// Context switches for 2 GiB moved (`perf stat`, machine-independent): 4,080, 3,900 and 4,150
/// (without the hysteresis, 6,700 and 10,200 for 4 and 8 slots).
pub(crate) const SLOTS: u32 = 4;
pub(crate) const CHUNK: usize = 512 << 10;

/// Tails at least this long cross through the ring when the link has one; shorter ones, and every
/// message's head, stay on the socket. Measured as above, 400 calls with a 256 KiB argument ran
/// 1.4× faster through the ring than through the socket (results 1.2×), 200 with 512 KiB 1.25×
/// (1.1×), 200 with 1 MiB 1.6× (1.3×).
pub(crate) const RING_MIN: usize = 256 << 10;

/// Whether a tail of `len` bytes crosses through the ring (on a link that has one): the rule both
/// sides apply.
pub(crate) fn carries(len: usize) -> bool {
    len >= RING_MIN
}

/// A receiver fills a fresh buffer in steps of `RESERVE_AHEAD` bytes, each a whole number of chunks,
/// so that its chunks are the sender's.
const _: () = assert!(RESERVE_AHEAD % CHUNK == 0);

/// A ring's header: one page, its three words 128 bytes apart (a cache line and its prefetched
/// neighbour), so that the sender's and the receiver's writes never share a line.
const HEADER: usize = 4096;
const PUBLISHED: usize = 0;
const CONSUMED: usize = 128;
const SLEEPERS: usize = 256;
const RING_BYTES: usize = HEADER + SLOTS as usize * CHUNK;
/// The file: the pool → worker ring, then the worker → pool ring.
pub(crate) const FILE_BYTES: usize = 2 * RING_BYTES;
const TO_WORKER: usize = 0;
const TO_POOL: usize = RING_BYTES;

/// A side that sleeps is woken only once it has this many chunks to copy (or the last chunk of
/// a tail) or slots to fill: a sender faster than its receiver (which copies into fresh pages) was
/// otherwise woken for every chunk, about 1.25 context switches per chunk.
const HYSTERESIS: u32 = SLOTS / 2;

/// Bits of the `sleepers` word: the receiver waits for a chunk, the sender for a free slot.
const RECEIVER_SLEEPS: u32 = 1;
const SENDER_SLEEPS: u32 = 2;

/// Spins before sleeping. A chunk takes tens of microseconds to copy, and the machine may have
/// fewer cores than busy threads (2 cores, a writer, a reader and a worker per link), so a long
/// spin only takes the core from the side it waits for: a few microseconds at most.
const SPINS: u32 = 200;

/// The longest sleep before the other side's liveness is checked on the socket.
const NAP: Duration = Duration::from_millis(50);

/// The seals a ring's file must carry: its size can never change (so no access through the
/// mapping can fault past its end), and no seal can be added or removed.
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// Which side of the link a ring's halves belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Pool,
    Worker,
}

/// The file mapped shared, [`FILE_BYTES`] long; unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
}

// SAFETY: the mapping is plain memory that this value owns until it is dropped; every access goes
// through the atomic header words or through copies into and out of the slots the ring's protocol
// gives to one side at a time, from whichever thread holds that side's half.
unsafe impl Send for Mapping {}
// SAFETY: shared references reach the atomic header words, and raw pointers into the slots
// (`slot`); a ring's slots are written only by its `Sender` and read only by its `Receiver`, each
// held by one thread, and the counts (release stores, acquire loads) give each slot to one side at
// a time, so no two threads of this process touch a slot at once. A faulty peer process that
// writes a slot while we copy it races with us on shared memory, outside what Rust's model can
// rule out: the copy is of plain bytes, any of which is a valid `u8`, so it can only yield wrong
// bytes, which the receiver checks as it checks any bytes from the socket.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps [`FILE_BYTES`] of `fd` shared, for reading and writing. The caller has checked that the
    /// file is that long and sealed against shrinking.
    fn map(fd: RawFd) -> io::Result<Mapping> {
        // SAFETY: a new mapping at an address the kernel picks, so no existing memory is affected;
        // the file holds `FILE_BYTES` and cannot shrink (the caller's check), so every page of
        // the mapping stays backed.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                FILE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: advice about our own fresh mapping: a child `fork`ed by this process (a task that
        // forks, or the user's program) does not inherit it, so it cannot hold or write the
        // rings. A failure changes nothing else.
        unsafe { libc::madvise(base, FILE_BYTES, libc::MADV_DONTFORK) };
        let base = NonNull::new(base.cast()).ok_or_else(|| io::Error::other("mapped at 0"))?;
        Ok(Mapping { base })
    }

    /// The header word at `offset` of the ring at `ring`.
    fn word(&self, ring: usize, offset: usize) -> &AtomicU32 {
        debug_assert!(offset < HEADER && offset % 4 == 0 && ring % RING_BYTES == 0);
        // SAFETY: `ring + offset` lies in the header page of one of the two rings, inside the
        // mapping, which lives as long as `self` (the reference borrows it); it is 4-aligned (the
        // mapping is page-aligned, the offsets multiples of 128). Both processes only ever access
        // these words atomically.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(ring + offset).cast()) }
    }

    /// The start of slot `count % SLOTS` of the ring at `ring`: [`CHUNK`] bytes inside the mapping.
    fn slot(&self, ring: usize, count: u32) -> *mut u8 {
        let at = ring + HEADER + (count % SLOTS) as usize * CHUNK;
        debug_assert!(at + CHUNK <= FILE_BYTES);
        // SAFETY: `at + CHUNK <= FILE_BYTES` for both rings and every count: the pointer stays
        // inside the mapping.
        unsafe { self.base.as_ptr().add(at) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value made; no half that could use it is left
        // (each holds the `Arc` that is being dropped).
        unsafe { libc::munmap(self.base.as_ptr().cast(), FILE_BYTES) };
    }
}

/// A worker's two rings, mapped, before they are split between the threads that use them.
pub(crate) struct Ring {
    mapping: Mapping,
}

impl Ring {
    /// The pool's side: creates the file (sealed at its size) and maps it; gives the descriptor to
    /// pass to the worker (close-on-exec here: only the worker's `dup2` passes it on).
    pub(crate) fn create() -> io::Result<(Ring, OwnedFd)> {
        // SAFETY: the name is a NUL-terminated literal; `memfd_create` returns a new descriptor.
        let fd = unsafe {
            libc::memfd_create(
                c"executor-ring".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is the fresh descriptor just returned, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `ftruncate` and `fcntl` act on our own descriptor and read no memory of ours.
        let sized = unsafe {
            libc::ftruncate(fd.as_raw_fd(), FILE_BYTES as libc::off_t) == 0
                && libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) == 0
        };
        if !sized {
            return Err(io::Error::last_os_error());
        }
        let mapping = Mapping::map(fd.as_raw_fd())?;
        Ok((Ring { mapping }, fd))
    }

    /// The worker's side: checks that `fd` is a ring's file (exactly [`FILE_BYTES`] long, its size
    /// sealed) and maps it; the descriptor is closed (the mapping stays). Says why not otherwise.
    pub(crate) fn open(fd: OwnedFd) -> Result<Ring, String> {
        // SAFETY: `fstat` writes only into the `stat` we pass; `fd` is open (owned).
        let size = unsafe {
            let mut stat = std::mem::zeroed::<libc::stat>();
            (libc::fstat(fd.as_raw_fd(), &mut stat) == 0).then_some(stat.st_size)
        };
        match size {
            Some(size) if size == FILE_BYTES as libc::off_t => {}
            Some(size) => {
                return Err(format!(
                    "its file holds {size} bytes, not the {FILE_BYTES} of a ring"
                ))
            }
            None => return Err(format!("fstat failed: {}", io::Error::last_os_error())),
        }
        // SAFETY: `fcntl(F_GET_SEALS)` reads the seals of our own descriptor.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & SEALS != SEALS {
            return Err("its file's size is not sealed".to_string());
        }
        let mapping = Mapping::map(fd.as_raw_fd()).map_err(|e| format!("mmap failed: {e}"))?;
        Ok(Ring { mapping })
    }

    /// Splits the rings into the half that sends (on the thread that writes to the socket
    /// `sending_socket`) and the half that receives (on the thread that reads `receiving_socket`).
    /// While it waits, each half asks its socket (by descriptor number) whether the other side
    /// hung up, so a half must not wait once its socket is closed (a reused number would be asked
    /// instead); dropping a half waits for nothing.
    pub(crate) fn split(
        self,
        side: Side,
        sending_socket: RawFd,
        receiving_socket: RawFd,
    ) -> (Sender, Receiver) {
        let mapping = Arc::new(self.mapping);
        let (sends, receives) = match side {
            Side::Pool => (TO_WORKER, TO_POOL),
            Side::Worker => (TO_POOL, TO_WORKER),
        };
        let sender = Sender {
            half: Half {
                mapping: Arc::clone(&mapping),
                ring: sends,
                socket: sending_socket,
            },
            published: 0,
        };
        let receiver = Receiver {
            half: Half {
                mapping,
                ring: receives,
                socket: receiving_socket,
            },
            consumed: 0,
        };
        (sender, receiver)
    }
}

/// One side of one ring.
struct Half {
    mapping: Arc<Mapping>,
    /// The ring's offset in the file.
    ring: usize,
    /// The link's socket, watched for the other side's hang-up.
    socket: RawFd,
}

impl Half {
    fn published(&self) -> &AtomicU32 {
        self.mapping.word(self.ring, PUBLISHED)
    }

    fn consumed(&self) -> &AtomicU32 {
        self.mapping.word(self.ring, CONSUMED)
    }

    fn sleepers(&self) -> &AtomicU32 {
        self.mapping.word(self.ring, SLEEPERS)
    }

    /// Waits until `ready` says yes to the other side's `word` (its count), or fails: `ready`
    /// found the count impossible, or the other side hung up.
    fn wait(
        &self,
        word: &AtomicU32,
        flag: u32,
        ready: impl Fn(u32) -> Result<bool, ReadError>,
    ) -> Result<(), ReadError> {
        for _ in 0..SPINS {
            if ready(word.load(Ordering::Acquire))? {
                return Ok(());
            }
            std::hint::spin_loop();
        }
        let sleepers = self.sleepers();
        let mut checked = Instant::now();
        loop {
            // Flag first, then look again: the other side stores its count, then reads the flag
            // (both `SeqCst`), so either it sees the flag and wakes us or we see its count.
            sleepers.fetch_or(flag, Ordering::SeqCst);
            let seen = word.load(Ordering::SeqCst);
            let is_ready = ready(seen);
            if !matches!(is_ready, Ok(false)) {
                sleepers.fetch_and(!flag, Ordering::SeqCst);
                return is_ready.map(|_| ());
            }
            futex_wait(word, seen, NAP);
            sleepers.fetch_and(!flag, Ordering::SeqCst);
            // By the clock, not by how the wait ended: signals (`EINTR`) or a faulty peer's
            // stray wake-ups more often than every `NAP` would otherwise keep the socket from
            // ever being asked.
            if checked.elapsed() < NAP {
                continue;
            }
            checked = Instant::now();
            if hung_up(self.socket) {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the other side hung up while a payload crossed the shared-memory ring",
                )));
            }
        }
    }

    /// Wakes the other side if it sleeps on `word` (it set `flag`).
    fn wake(&self, word: &AtomicU32, flag: u32) {
        let sleepers = self.sleepers();
        if sleepers.load(Ordering::SeqCst) & flag != 0
            && sleepers.fetch_and(!flag, Ordering::SeqCst) & flag != 0
        {
            futex_wake(word);
        }
    }
}

/// Why the other side's count cannot be right: it claims more unconsumed chunks than slots.
fn impossible(published: u32, consumed: u32) -> ReadError {
    ReadError::Malformed(format!(
        "the shared-memory ring's counts are impossible: {published} chunks published, {consumed} \
         consumed, with {SLOTS} slots"
    ))
}

/// The sending half of a ring.
pub(crate) struct Sender {
    half: Half,
    /// Chunks published: this side's own count, which the shared word only mirrors.
    published: u32,
}

impl Sender {
    /// Pushes `bytes` through the ring, chunk by chunk; returns once the last chunk is published
    /// (the receiver may still be copying it out).
    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), ReadError> {
        let chunks = bytes.len().div_ceil(CHUNK);
        for (index, chunk) in bytes.chunks(CHUNK).enumerate() {
            let published = self.published;
            self.half
                .wait(self.half.consumed(), SENDER_SLEEPS, |consumed| {
                    let unconsumed = published.wrapping_sub(consumed);
                    match unconsumed {
                        0..SLOTS => Ok(true),
                        SLOTS => Ok(false),
                        _ => Err(impossible(published, consumed)),
                    }
                })?;
            // SAFETY: the source is `chunk`, borrowed; the destination is one slot, `CHUNK` bytes
            // inside the live mapping (`slot`), and `chunk` is at most `CHUNK` long. The slot is
            // this side's by the protocol: the receiver has consumed the chunk it held (checked
            // just above, with acquire ordering, so its reads are done). A peer that broke the
            // protocol could be reading it still: it would then copy wrong bytes, which it owns.
            unsafe {
                ptr::copy_nonoverlapping(
                    chunk.as_ptr(),
                    self.half.mapping.slot(self.half.ring, published),
                    chunk.len(),
                );
            }
            self.published = published.wrapping_add(1);
            self.half
                .published()
                .store(self.published, Ordering::SeqCst);
            // A receiver that found the ring empty sleeps until it can copy several chunks at
            // once, or the last of this tail.
            let unconsumed = self
                .published
                .wrapping_sub(self.half.consumed().load(Ordering::SeqCst));
            if unconsumed >= HYSTERESIS || index + 1 == chunks {
                self.half.wake(self.half.published(), RECEIVER_SLEEPS);
            }
        }
        Ok(())
    }
}

/// The receiving half of a ring.
pub(crate) struct Receiver {
    half: Half,
    /// Chunks consumed: this side's own count, which the shared word only mirrors.
    consumed: u32,
}

impl Receiver {
    /// Copies the next `len` bytes out of the ring to the end of `buffer`, which has room for them;
    /// `check`, if any, checks each chunk for UTF-8 once its slot is given back.
    fn pull(
        &mut self,
        buffer: &mut Vec<u8>,
        len: usize,
        mut check: Option<&mut Utf8Check>,
    ) -> Result<(), ReadError> {
        assert!(buffer.capacity() - buffer.len() >= len);
        let end = buffer.len() + len;
        while buffer.len() < end {
            let take = (end - buffer.len()).min(CHUNK);
            let consumed = self.consumed;
            self.half.wait(
                self.half.published(),
                RECEIVER_SLEEPS,
                |published| match published.wrapping_sub(consumed) {
                    0 => Ok(false),
                    1..=SLOTS => Ok(true),
                    _ => Err(impossible(published, consumed)),
                },
            )?;
            // SAFETY: the source is one slot, `CHUNK` bytes inside the live mapping, and `take`
            // is at most `CHUNK`; the destination is `buffer`'s spare capacity, which holds at least
            // `take` bytes (asserted above, and `buffer.len()` only grows towards `end`); the two
            // cannot overlap (the buffer is private memory). The slot is this side's by the
            // protocol: the sender published it (checked just above, with acquire ordering, so its
            // writes are visible). A faulty peer can only have put wrong bytes there. The bytes
            // copied are initialised, so `set_len` exposes no uninitialised memory.
            unsafe {
                ptr::copy_nonoverlapping(
                    self.half.mapping.slot(self.half.ring, consumed),
                    buffer.as_mut_ptr().add(buffer.len()),
                    take,
                );
                buffer.set_len(buffer.len() + take);
            }
            self.consumed = consumed.wrapping_add(1);
            self.half.consumed().store(self.consumed, Ordering::SeqCst);
            // A sender that found the ring full sleeps until it can refill several slots at once.
            let unconsumed = self
                .half
                .published()
                .load(Ordering::SeqCst)
                .wrapping_sub(self.consumed);
            if unconsumed <= SLOTS - HYSTERESIS {
                self.half.wake(self.half.consumed(), SENDER_SLEEPS);
            }
            // While the chunk is in the cache, and the sender refills its slot.
            if let Some(check) = check.as_deref_mut() {
                check.advance(buffer);
            }
        }
        Ok(())
    }
}

impl TailChannel for Receiver {
    fn carries(&self, len: usize) -> bool {
        carries(len)
    }

    fn receive(&mut self, len: usize, text: bool) -> Result<Tail, ReadError> {
        let mut check = text.then(Utf8Check::default);
        // In steps of whole chunks (see the assertion on `RESERVE_AHEAD`), into a buffer of its
        // own that grows as the bytes arrive, so a corrupt length costs only what arrives.
        let bytes = buffer::fill_fresh(len, |buffer, step| {
            buffer.reserve_exact(step);
            self.pull(buffer, step, check.as_mut())
        })?;
        Ok(match check {
            // SAFETY: `fill_fresh` gave `pull` one vector, which it only grows (`reserve_exact`
            // and its own growth keep the bytes), and `pull` only appends to it, giving the check
            // the whole vector after each chunk. The vector is this process's own memory: the
            // peer wrote the ring, never it. So `bytes` begins with the bytes the check checked.
            Some(check) => unsafe { check.finish(bytes) },
            None => Tail::Bytes(bytes),
        })
    }
}

mod sleep;
#[cfg(test)]
mod tests;
