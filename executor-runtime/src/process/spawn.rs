//! Starting a worker process, and reaping it.
//!
//! `std::process::Command` can pass an extra descriptor to a child only through `pre_exec`, which
//! makes it `fork` the parent: the kernel copies the parent's page tables and the parent then takes
//! a copy-on-write fault on every page it touches until the child has called `exec`. With a large
//! heap that cost milliseconds per worker. `posix_spawn` (a `vfork`-style clone in glibc) copies
//! nothing, and its `adddup2` file action places the socket (and the shared-memory ring's file, see
//! `ring`) at a fixed descriptor in the child, where `dup2` clears close-on-exec, so no other child
//! of this process can inherit them.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use crate::process::tunables;
use crate::process::worker::WORKER_ENV;

/// The descriptor a worker finds its socket at.
pub(crate) const WORKER_FD: RawFd = 3;
/// The descriptor a worker finds its shared-memory ring's file at, when it has one.
pub(crate) const RING_FD: RawFd = 4;

/// A started worker process; dropping it without [`WorkerProcess::wait`] kills and reaps it.
pub(crate) struct WorkerProcess {
    pid: libc::pid_t,
    reaped: bool,
    /// The status it was reaped with.
    status: Option<ExitStatus>,
}

impl WorkerProcess {
    pub(crate) fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Sends `SIGKILL`. Harmless if it already exited (it stays a zombie until reaped).
    pub(crate) fn kill(&self) {
        if !self.reaped {
            // SAFETY: `kill` only sends a signal; the pid is our unreaped child, so it was not reused.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }

    /// Waits for the process to end and reaps it.
    pub(crate) fn wait(&mut self) -> io::Result<ExitStatus> {
        self.wait_with(0)
            .map(|status| status.expect("a blocking wait returns a status"))
    }

    /// Reaps the process if it has ended.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.wait_with(libc::WNOHANG)
    }

    fn wait_with(&mut self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        if self.reaped {
            return Ok(self.status);
        }
        let mut status = 0;
        loop {
            // SAFETY: `waitpid` writes the status into the `c_int` we pass.
            let pid = unsafe { libc::waitpid(self.pid, &mut status, flags) };
            if pid == self.pid {
                self.reaped = true;
                self.status = Some(ExitStatus::from_raw(status));
                return Ok(self.status);
            }
            if pid == 0 {
                return Ok(None);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.wait();
        }
    }
}

/// What a worker executes: this process's own executable, the image it runs, even when the file
/// it was started from has since been replaced or deleted (the kernel resolves the link to the
/// open file, not to a path); a path could by then name another program.
const OWN_EXECUTABLE: &std::ffi::CStr = c"/proc/self/exe";

/// Executes this process's own executable ([`OWN_EXECUTABLE`]) with `name` as `argv[0]`, the
/// socket `channel` at [`WORKER_FD`], the ring's file `ring` (if any) at [`RING_FD`], the `env`
/// entries set in the environment (replacing inherited ones of the same names), stdin from
/// `/dev/null`, stdout shared with this process, stderr shared too or `stderr` where given, and no
/// signal blocked.
pub(crate) fn spawn(
    name: &Path,
    channel: RawFd,
    ring: Option<RawFd>,
    env: &[(&str, OsString)],
    stderr: Option<RawFd>,
) -> io::Result<WorkerProcess> {
    let name = CString::new(name.as_os_str().as_bytes())?;
    let argv = [name.as_ptr(), std::ptr::null()];
    let mut environment: Vec<CString> = std::env::vars_os()
        .filter(|(name, _)| !env.iter().any(|(ours, _)| name == ours))
        .filter_map(|(name, value)| {
            let mut entry = name.into_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            CString::new(entry).ok()
        })
        .collect();
    for (name, value) in env {
        let mut ours = name.as_bytes().to_vec();
        ours.push(b'=');
        ours.extend_from_slice(value.as_bytes());
        environment.push(CString::new(ours)?);
    }
    let envp: Vec<*const libc::c_char> = environment
        .iter()
        .map(|entry| entry.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let null = std::fs::File::open("/dev/null")?;
    let (null_fd, _moved_null) = out_of_the_way(null.as_raw_fd())?;
    let (stderr, _moved_stderr) = out_of_the_way_if_any(stderr)?;
    let (channel, _moved_channel) = out_of_the_way(channel)?;
    let (ring, _moved_ring) = out_of_the_way_if_any(ring)?;

    // SAFETY: every pointer passed below is valid for the duration of the calls: `name`, `argv`,
    // `environment` and `envp` live until the end of this function and are NUL-terminated, as
    // `posix_spawn` requires; `actions` and `attributes` are initialised before use and destroyed
    // once. The descriptors named in the file actions are open (`channel`, `ring`, `null`,
    // `stderr`; the moved copies live until the end of this function).
    unsafe {
        let mut actions = std::mem::zeroed::<libc::posix_spawn_file_actions_t>();
        let mut attributes = std::mem::zeroed::<libc::posix_spawnattr_t>();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        check(libc::posix_spawnattr_init(&mut attributes))?;
        let mut result = check(libc::posix_spawn_file_actions_adddup2(
            &mut actions,
            null_fd,
            0,
        ));
        if let (true, Some(stderr)) = (result.is_ok(), stderr) {
            result = check(libc::posix_spawn_file_actions_adddup2(
                &mut actions,
                stderr,
                2,
            ));
        }
        if result.is_ok() {
            result = check(libc::posix_spawn_file_actions_adddup2(
                &mut actions,
                channel,
                WORKER_FD,
            ));
        }
        if let (true, Some(ring)) = (result.is_ok(), ring) {
            result = check(libc::posix_spawn_file_actions_adddup2(
                &mut actions,
                ring,
                RING_FD,
            ));
        }
        if result.is_ok() {
            let mut empty = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut empty);
            result =
                check(libc::posix_spawnattr_setsigmask(&mut attributes, &empty)).and_then(|()| {
                    check(libc::posix_spawnattr_setflags(
                        &mut attributes,
                        libc::POSIX_SPAWN_SETSIGMASK as libc::c_short,
                    ))
                });
        }
        let mut pid: libc::pid_t = 0;
        if result.is_ok() {
            // Until it executes, the child runs this process's image, so its `/proc/self/exe`
            // is this process's executable.
            result = check(libc::posix_spawn(
                &mut pid,
                OWN_EXECUTABLE.as_ptr(),
                &actions,
                &attributes,
                argv.as_ptr().cast(),
                envp.as_ptr().cast(),
            ));
        }
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attributes);
        result.map(|()| WorkerProcess {
            pid,
            reaped: false,
            status: None,
        })
    }
}

/// `fd`, or a close-on-exec duplicate of it above [`RING_FD`] (kept open by the `OwnedFd` given
/// with it) if it sits where the file actions put a worker's descriptors (0 to [`RING_FD`]): an
/// earlier action would replace it before it is copied (the ring's file at 3 by the socket, or,
/// where this process was started with stdin or stderr closed, a descriptor at 0 or 2 by
/// `/dev/null` or the stderr pipe), and `dup2` onto itself may leave close-on-exec set.
fn out_of_the_way(fd: RawFd) -> io::Result<(RawFd, Option<OwnedFd>)> {
    if !(0..=RING_FD).contains(&fd) {
        return Ok((fd, None));
    }
    // SAFETY: `fcntl(F_DUPFD_CLOEXEC)` returns a new descriptor that we alone own.
    let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, RING_FD + 1) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `moved` is a fresh descriptor owned by nothing else.
    Ok((moved, Some(unsafe { OwnedFd::from_raw_fd(moved) })))
}

/// [`out_of_the_way`] for a descriptor there may not be.
fn out_of_the_way_if_any(fd: Option<RawFd>) -> io::Result<(Option<RawFd>, Option<OwnedFd>)> {
    match fd {
        Some(fd) => out_of_the_way(fd).map(|(fd, moved)| (Some(fd), moved)),
        None => Ok((None, None)),
    }
}

/// The environment entries that make a child a worker: its socket's descriptor, and its ring's
/// after a comma when it has one (`3` or `3,4`); and those that set its allocator (`tunables`),
/// which keeps no freed memory for reuse where the worker's memory is limited.
pub(crate) fn worker_env(ring: bool, memory_limited: bool) -> Vec<(&'static str, OsString)> {
    let fds = match ring {
        false => WORKER_FD.to_string(),
        true => format!("{WORKER_FD},{RING_FD}"),
    };
    let mut entries = vec![(WORKER_ENV, OsString::from(fds))];
    entries.extend(tunables::worker_entries(memory_limited));
    entries
}

fn check(code: libc::c_int) -> io::Result<()> {
    match code {
        0 => Ok(()),
        code => Err(io::Error::from_raw_os_error(code)),
    }
}
