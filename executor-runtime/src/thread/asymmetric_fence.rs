//! A fence whose cost falls on the rare side: the one that goes to sleep, not the one that submits.
//!
//! A submit and a worker going to sleep must not miss each other: the submitter pushes its task and
//! then looks for sleepers, the worker counts itself a sleeper and then looks at the queue. Each
//! side needs a full fence between its store and its load (else both loads can read the old value,
//! and the task waits with every worker asleep). The submit side runs once per task, the sleep
//! side seldom; on the 2-vCPU AMD EPYC VM the submit's full fence, with the locked add beside it,
//! took about 30% of a block of 20,000 tiny tasks (2.35 ms a block, 1.6–1.7 ms without them).
//!
//! So the frequent side only stops the compiler ([`light`]), and the rare side makes every thread
//! of the process run a full fence ([`heavy`], Linux's `membarrier`, which interrupts the CPUs
//! running the process's threads). Either the submitter's store comes before the fence forced on
//! it, and the worker's look that follows `heavy` sees the task; or its load comes after that
//! fence, and it sees the sleeper, counted before `heavy`. The technique is the asymmetric Dekker
//! of userspace RCU and folly's `asymmetricHeavyBarrier`.
//!
//! Where `membarrier` is missing (another OS, an old kernel, a sandbox that refuses it),
//! [`register`] says so and the pool keeps a full fence on both sides.
//!
//! Registering costs little in a process with one thread (about 3 µs here) and an RCU grace period
//! in one with more (13 ms on the 2-vCPU AMD EPYC VM, with 4 threads), so the crate registers
//! before `main`, from its `.init_array` entry (`lib.rs`), while the process has one thread; a pool
//! that opens later reads the answer, with no system call. Only where that entry did not run (off
//! Linux it does nothing) does the first pool pay it. A forked child inherits the answer, and the
//! registration with the address space it copies (on Linux 6.18 here, a child's `membarrier` with
//! its parent's registration succeeded; an `exec` clears it, and the new program, if linked with
//! this crate, registers before its `main`). Should a `membarrier` be refused anyway (`EPERM`),
//! [`heavy`] registers and tries again, on the sleeping worker, not on the block's thread.

/// Readies the heavy side for this process, once; returns whether [`heavy`] can be used. A pool
/// calls it when it opens, and uses [`light`] on its submit side only if it returned `true`.
pub(crate) fn register() -> bool {
    #[cfg(test)]
    if tests::REFUSED.with(std::cell::Cell::get) {
        return false;
    }
    imp::register()
}

/// [`register`], from the crate's `.init_array` entry, before `main`.
pub(crate) fn register_before_main() {
    #[cfg(test)]
    tests::REGISTERED_BEFORE_MAIN.store(register(), std::sync::atomic::Ordering::SeqCst);
    #[cfg(not(test))]
    register();
}

/// The frequent side: orders the caller's earlier memory accesses before its later ones against
/// a [`heavy`] on another thread, at no cost beyond what the compiler may not reorder.
pub(crate) fn light() {
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// The rare side: every other thread of the process has run a full fence by the time this returns
/// (so it pairs with their [`light`]), and so has the caller. Returns `false` if it could not (it
/// then ran only its own full fence, and the caller must not count on the pairing).
pub(crate) fn heavy() -> bool {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    imp::heavy()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::atomic::{AtomicU8, Ordering};

    // From `linux/membarrier.h`.
    const QUERY: libc::c_int = 0;
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    /// What registering found: not asked yet, or whether the heavy side can be used.
    pub(super) const NOT_ASKED: u8 = 0;
    pub(super) const NOT_USABLE: u8 = 1;
    pub(super) const USABLE: u8 = 2;
    pub(super) static REGISTERED: AtomicU8 = AtomicU8::new(NOT_ASKED);

    fn membarrier(command: libc::c_int) -> libc::c_long {
        // SAFETY: `membarrier(cmd, flags, cpu_id)` takes integers only and touches no user memory;
        // an unknown command or flag is refused with `EINVAL`.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                libc::c_long::from(command),
                0 as libc::c_long,
                0 as libc::c_long,
            )
        }
    }

    pub(super) fn register() -> bool {
        match REGISTERED.load(Ordering::Relaxed) {
            NOT_ASKED => register_now(),
            known => known == USABLE,
        }
    }

    fn register_now() -> bool {
        let commands = membarrier(QUERY);
        let usable = commands >= 0
            && commands & libc::c_long::from(PRIVATE_EXPEDITED) != 0
            && membarrier(REGISTER_PRIVATE_EXPEDITED) == 0;
        REGISTERED.store(if usable { USABLE } else { NOT_USABLE }, Ordering::Relaxed);
        usable
    }

    pub(super) fn heavy() -> bool {
        // `EPERM`: not registered in this address space (see the module).
        membarrier(PRIVATE_EXPEDITED) == 0 || (register_now() && membarrier(PRIVATE_EXPEDITED) == 0)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn heavy() -> bool {
        false
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Set by [`register_before_main`] when it could register.
    pub(crate) static REGISTERED_BEFORE_MAIN: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);

    thread_local! {
        /// Makes [`register`] on this thread say `membarrier` is refused, as a sandbox may: a pool
        /// opened meanwhile on this thread fences both sides fully.
        pub(crate) static REFUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Every kernel since 4.14 has it, and the pool is slower without it (both sides fence fully):
    /// on Linux, a refusal fails the suite rather than pass unnoticed.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_heavy_side_is_available_on_linux() {
        assert!(register(), "membarrier(PRIVATE_EXPEDITED) is refused here");
        assert!(heavy());
    }

    /// The crate's `.init_array` entry registered before `main`, while the test binary had one
    /// thread, for this process: the check a pool makes when it opens is then a look at a cached
    /// answer.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_registered_before_main() {
        assert!(REGISTERED_BEFORE_MAIN.load(std::sync::atomic::Ordering::SeqCst));
        let known = imp::REGISTERED.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(known, imp::USABLE);
    }

    /// The store-buffer litmus test, run `rounds` times: each side stores its flag, fences, and
    /// loads the other's; returns in how many rounds both loads missed the other's store. The two
    /// sides start each round on a spin; the side that starts it then waits a varying few
    /// nanoseconds, so that in some rounds both run their three steps at once.
    #[cfg(target_os = "linux")]
    fn store_buffer_litmus(rounds: usize, heavy_side: bool) -> usize {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

        use crossbeam_utils::CachePadded;

        // Each on a cache line of its own, as a queue's end and a sleeper count are.
        let flags = [
            CachePadded::new(AtomicBool::new(false)),
            CachePadded::new(AtomicBool::new(false)),
        ];
        let seen = [AtomicBool::new(false), AtomicBool::new(false)];
        // Round r starts when `go` is r + 1; each side adds one to `done` when it has loaded.
        let go = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let mut both_missed = 0;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for round in 0..rounds {
                    while go.load(Ordering::Acquire) != round + 1 {
                        std::hint::spin_loop();
                    }
                    flags[1].store(true, Ordering::Relaxed);
                    if heavy_side {
                        assert!(heavy());
                    } else {
                        light();
                    }
                    seen[1].store(flags[0].load(Ordering::Relaxed), Ordering::Relaxed);
                    done.fetch_add(1, Ordering::AcqRel);
                }
            });
            for round in 0..rounds {
                go.store(round + 1, Ordering::Release);
                // The other side sees `go` about 100 ns later (a cache line's trip between cores).
                for _ in 0..(round * 7919) % 256 {
                    std::hint::black_box(());
                }
                flags[0].store(true, Ordering::Relaxed);
                light();
                seen[0].store(flags[1].load(Ordering::Relaxed), Ordering::Relaxed);
                while done.load(Ordering::Acquire) != round + 1 {
                    std::hint::spin_loop();
                }
                if !seen[0].load(Ordering::Relaxed) && !seen[1].load(Ordering::Relaxed) {
                    both_missed += 1;
                }
                flags[0].store(false, Ordering::Relaxed);
                flags[1].store(false, Ordering::Relaxed);
            }
        });
        both_missed
    }

    /// Without the heavy side (`two_light_sides_do_miss_each_others_store`) both loads miss in
    /// about 5% of the rounds of an optimised build on AMD EPYC (48,945 of 1,000,000), and in
    /// about 1 in 20,000 of an unoptimised one, whose calls between the store and the load give
    /// the store time to land.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_light_and_a_heavy_side_never_both_miss_the_others_store() {
        assert!(register());
        assert_eq!(store_buffer_litmus(20_000, true), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "shows what the heavy side prevents; depends on the CPU and on both threads running"]
    fn two_light_sides_do_miss_each_others_store() {
        let missed = store_buffer_litmus(1_000_000, false);
        eprintln!("both loads missed in {missed} of 1,000,000 rounds");
        assert!(missed > 0);
    }
}
