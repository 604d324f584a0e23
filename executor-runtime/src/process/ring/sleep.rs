//! Sleeping on a ring's word, which another process shares, and seeing that process gone.

use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps until `word` may no longer hold `expected`, or for `timeout`, or until a signal or a
/// stray wake-up: the caller looks at the word again either way.
pub(super) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `FUTEX_WAIT` reads the aligned 32-bit word (inside a live mapping, borrowed for the
    // call) and compares it with `expected` before it sleeps; it writes no memory of ours and reads
    // the live `timeout`. Not `FUTEX_PRIVATE_FLAG`: the word is shared with another process.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &timeout as *const libc::timespec,
            ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes the thread sleeping on `word`, in whichever process it is.
pub(super) fn futex_wake(word: &AtomicU32) {
    // SAFETY: `FUTEX_WAKE` only uses the word's address as a key (inside a live mapping, borrowed
    // for the call); it reads and writes no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1i32,
            ptr::null::<libc::timespec>(),
            ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Whether the other end of the socket `fd` is gone (it exited or was killed), as `poll` reports
/// it with no events asked for: a hang-up, an error, or a closed descriptor. A peer that only shut
/// its writing side (the pool ends a worker's input while results still come) gives neither.
pub(super) fn hung_up(fd: RawFd) -> bool {
    let mut poll_fd = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: `poll` reads and writes the one `pollfd` we pass; a zero timeout returns at once.
    let ready = unsafe { libc::poll(&mut poll_fd, 1, 0) };
    ready > 0 && poll_fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}
