//! The copy under the Mpi backend's large messages on one host, timed alone. Open MPI's
//! shared-memory transport moves a message over its eager limit with cross-memory attach (CMA): the
//! receiver calls `process_vm_readv` on the sender's pages, which pins each page of the source
//! before it copies it. This part times that system call as the rows use it: two readers (the
//! workers) pulling 200 distinct 1 MiB buffers of one process (rank 0, the arguments row), on
//! 4 KiB pages and on transparent huge pages, and one reader pulling one buffer 200 times (the
//! ping-pong floor's one buffer). Linux only; elsewhere it reports nothing.

#[cfg(target_os = "linux")]
pub(crate) fn cma() {
    use crate::report;
    report(
        "cma_distinct_gb_per_s",
        linux::pull(2, false, linux::Source::Distinct),
    );
    report(
        "cma_distinct_huge_gb_per_s",
        linux::pull(2, true, linux::Source::Distinct),
    );
    report(
        "cma_one_buffer_gb_per_s",
        linux::pull(1, false, linux::Source::One),
    );
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn cma() {}

#[cfg(target_os = "linux")]
mod linux {
    use std::time::Instant;

    use crate::{median, PAYLOADS};

    const MIB: usize = 1 << 20;
    const HUGE_PAGE: usize = 2 << 20;
    const ROUNDS: usize = 5;

    pub(super) enum Source {
        /// Each of the 200 buffers once, as 200 calls' arguments are.
        Distinct,
        /// The first buffer 200 times, as the ping-pong floor sends one buffer.
        One,
    }

    /// `readers` child processes pull 200 MiB from this one with `process_vm_readv`, a 1 MiB
    /// buffer per call, each reader its share; gives the median rate of [`ROUNDS`] rounds in GB/s.
    pub(super) fn pull(readers: usize, huge: bool, source: Source) -> f64 {
        let len = PAYLOADS * MIB + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping, used only through `base` below and unmapped
        // at the end; no Rust value aliases it.
        let mapping = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(mapping, libc::MAP_FAILED, "200 MiB can be mapped");
        let base = (mapping as usize).next_multiple_of(HUGE_PAGE);
        if huge {
            // SAFETY: the range lies inside the mapping just made; the advice changes no byte.
            unsafe {
                libc::madvise(
                    base as *mut libc::c_void,
                    PAYLOADS * MIB,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
        // Under Yama's `ptrace_scope=1` a child may not read its parent's memory unless the parent
        // allows it, as Open MPI's shared-memory transport does for its peers.
        // SAFETY: `prctl` with these arguments only changes which processes may attach to this one.
        unsafe { libc::prctl(libc::PR_SET_PTRACER, libc::PR_SET_PTRACER_ANY, 0, 0, 0) };
        let parent = std::process::id() as libc::pid_t;
        let mut children = Vec::new();
        for reader in 0..readers {
            let (go_read, go_write) = pipe();
            let (done_read, done_write) = pipe();
            let mut into = vec![1u8; MIB];
            let sources: Vec<usize> = (reader..PAYLOADS)
                .step_by(readers)
                .map(|i| match source {
                    Source::Distinct => base + i * MIB,
                    Source::One => base,
                })
                .collect();
            // SAFETY: the child runs only system calls on memory it owns (its copies of `into`,
            // `sources` and the descriptors) and leaves with `_exit`, so it never runs code that
            // another thread of the parent could have left half done (this part of the benchmark
            // runs in a process of its own, started by the conductor).
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork works");
            if pid == 0 {
                // Only the parent may hold the ends it writes `go` and reads `done` from, this
                // reader's and the earlier ones', or a reader would never see its `go` close.
                close(go_write);
                close(done_read);
                for &(_, go, done) in &children {
                    close(go);
                    close(done);
                }
                serve(parent, &mut into, &sources, go_read, done_write);
            }
            close(go_read);
            close(done_write);
            children.push((pid, go_write, done_read));
        }
        // Written after the fork, so the pages are the parent's own, not shared copy-on-write.
        // SAFETY: the range lies inside the mapping, which nothing else references.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, PAYLOADS * MIB) };
        let mut rates = Vec::new();
        for round in 0..ROUNDS {
            // Written again before each round, as the arguments row builds its payloads afresh.
            for (i, chunk) in bytes.chunks_mut(MIB).enumerate() {
                chunk.fill((i + round) as u8 | 1);
            }
            let started = Instant::now();
            for &(_, go, _) in &children {
                write_byte(go);
            }
            for &(_, _, done) in &children {
                assert_eq!(read_byte(done), Some(1), "a reader pulled its share");
            }
            rates.push((PAYLOADS * MIB) as f64 / started.elapsed().as_secs_f64() / 1e9);
        }
        for &(_, go, done) in &children {
            close(go);
            close(done);
        }
        for (pid, _, _) in children {
            // SAFETY: waits for a child of this process, into a local status.
            unsafe { libc::waitpid(pid, &mut 0, 0) };
        }
        // SAFETY: the mapping made above, no longer used (`bytes` ends here).
        unsafe { libc::munmap(mapping, len) };
        median(rates)
    }

    /// A reader: at each byte on `go`, pulls every source into `into`, then answers on `done`
    /// (1 when every call copied a whole buffer); ends when `go` closes.
    fn serve(parent: libc::pid_t, into: &mut [u8], sources: &[usize], go: i32, done: i32) -> ! {
        while read_byte(go).is_some() {
            let mut whole = true;
            for &source in sources {
                let local = libc::iovec {
                    iov_base: into.as_mut_ptr().cast(),
                    iov_len: into.len(),
                };
                let remote = libc::iovec {
                    iov_base: source as *mut libc::c_void,
                    iov_len: into.len(),
                };
                // SAFETY: `local` is this process's own buffer, `into.len()` bytes long; the
                // kernel checks `remote` against the parent's mappings.
                let copied = unsafe { libc::process_vm_readv(parent, &local, 1, &remote, 1, 0) };
                whole &= copied == into.len() as isize;
            }
            write_byte_of(done, u8::from(whole));
        }
        // SAFETY: ends the child without running the parent's exit hooks or destructors.
        unsafe { libc::_exit(0) }
    }

    fn pipe() -> (i32, i32) {
        let mut ends = [0; 2];
        // SAFETY: `ends` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(ends.as_mut_ptr()) }, 0, "pipe works");
        (ends[0], ends[1])
    }

    fn close(fd: i32) {
        // SAFETY: closes a descriptor this function's caller owns and no longer uses.
        unsafe { libc::close(fd) };
    }

    fn write_byte(fd: i32) {
        write_byte_of(fd, 1);
    }

    fn write_byte_of(fd: i32, byte: u8) {
        // SAFETY: writes one byte from a local.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }

    fn read_byte(fd: i32) -> Option<u8> {
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into a local.
        let read = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        (read == 1).then_some(byte)
    }
}
