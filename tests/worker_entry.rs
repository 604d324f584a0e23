//! Only a pool can make a process a worker: the environment variable that names the channel does
//! nothing unless its descriptor is an inherited socket, and a socket that does not speak the
//! protocol gets no code run at all.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;

use concurrent_futures::__private::PROTOCOL_VERSION;
use concurrent_futures::pool;

mod common;

const WORKER_ENV: &str = "__EXECUTOR_WORKER_FD";

fn square(x: u64) -> u64 {
    x * x
}

#[test]
#[ignore = "helper of the tests below"]
fn helper_reports_that_main_ran() {
    if !common::helper_enabled() {
        return;
    }
    println!("main ran");
    // The variable is still set: a pool refuses to start workers rather than risk a loop.
    match pool!(Process(max_workers = 1) => { submit(square, 3).result() }) {
        Err(error) => println!("pool refused: {error}"),
        Ok(value) => println!("pool ran: {value}"),
    }
}

fn helper() -> Command {
    let mut command = common::helper_command(
        &std::env::current_exe().unwrap(),
        "helper_reports_that_main_ran",
    );
    command.env(WORKER_ENV, "3");
    command
}

/// The helper, with `fd` (of this process) at descriptor 3 in the child, where the variable says.
fn helper_with_fd_3(fd: std::os::fd::RawFd) -> Command {
    let mut command = helper();
    // SAFETY: between fork and exec the closure only calls `dup2`, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// The helper, with the socket `fd` at descriptor 3 and `ring` at 4, as the variable `3,4` says.
fn helper_with_fds_3_and_4(fd: std::os::fd::RawFd, ring: std::os::fd::RawFd) -> Command {
    let mut command = helper();
    command.env(WORKER_ENV, "3,4");
    // SAFETY: between fork and exec the closure only calls `dup2`, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 || libc::dup2(ring, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

fn stdout_of(mut command: Command) -> String {
    let output = command.output().expect("the helper runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_variable_without_a_descriptor_is_a_normal_run() {
    let out = stdout_of(helper());
    assert!(out.contains("main ran"), "{out}");
    // The calls fail, saying which variable and what to do, rather than the block panicking.
    assert!(
        out.contains(
            "pool refused: no worker process could run the task: the environment variable \
             __EXECUTOR_WORKER_FD is set (to \"3\"), but this process is not a Process worker"
        ) && out.contains("Unset __EXECUTOR_WORKER_FD"),
        "{out}"
    );
}

#[test]
fn the_variable_naming_a_file_is_a_normal_run() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let command = helper_with_fd_3(std::os::fd::AsRawFd::as_raw_fd(&file));
    let out = stdout_of(command);
    drop(file);
    assert!(out.contains("main ran"), "{out}");
}

/// A socket whose other end does not send the pool's hello: the process runs no task and no
/// `main`; it exits with an error, having written nothing but its refusal on the socket.
#[test]
fn a_socket_that_does_not_speak_the_protocol_runs_nothing() {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let child = helper_with_fd_3(std::os::fd::AsRawFd::as_raw_fd(&theirs))
        .spawn()
        .unwrap();
    drop(theirs);
    ours.write_all(b"GET / HTTP/1.0\r\n\r\n this is not a hello")
        .unwrap();
    ours.shutdown(std::net::Shutdown::Write).unwrap();
    let output = child.wait_with_output().unwrap();
    let mut answer = Vec::new();
    ours.read_to_end(&mut answer).unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(!out.contains("main ran"), "{out}");
    assert!(!output.status.success(), "{:?}", output.status);
    assert!(answer.is_empty(), "the worker answered {answer:?}");
}

/// A pool that hangs up before its hello: the process exits with the protocol error's code, 70,
/// every time (its watchdog used to race the handshake and exit 0 most times).
#[test]
fn a_hang_up_before_the_hello_is_an_error_exit() {
    for _ in 0..8 {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let child = helper_with_fd_3(std::os::fd::AsRawFd::as_raw_fd(&theirs))
            .spawn()
            .unwrap();
        drop(theirs);
        drop(ours);
        let output = child.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(!out.contains("main ran"), "{out}");
        assert_eq!(output.status.code(), Some(70), "{:?}", output.status);
    }
}

/// A worker told it has a shared-memory ring at descriptor 4 that is not one (here `/dev/null`)
/// refuses to serve, saying why, in answer to the hello, and exits with the refusal's code, 71: the
/// pool reports that as a failed start.
#[test]
fn a_worker_given_a_ring_it_cannot_map_refuses_to_serve_and_says_why() {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let child = helper_with_fds_3_and_4(
        std::os::fd::AsRawFd::as_raw_fd(&theirs),
        std::os::fd::AsRawFd::as_raw_fd(&null),
    )
    .spawn()
    .unwrap();
    drop((theirs, null));
    // A hello: worker 0, an executable identity of zeros, no initializer.
    let mut hello = vec![0u8; 8 + 5 * 8];
    hello.push(0);
    let mut frame = vec![0xEC, PROTOCOL_VERSION, 1, 0];
    frame.extend_from_slice(&(hello.len() as u32).to_le_bytes());
    frame.extend_from_slice(&hello);
    ours.write_all(&frame).unwrap();
    let output = child.wait_with_output().unwrap();
    let mut answer = Vec::new();
    ours.read_to_end(&mut answer).unwrap();
    assert_eq!(output.status.code(), Some(71), "{:?}", output.status);
    assert_eq!(answer.get(2), Some(&3), "a refusal: {answer:?}");
    let why = String::from_utf8_lossy(&answer[8..]);
    assert!(
        why.starts_with("the worker could not map its shared-memory ring: its file holds 0 bytes"),
        "{why}"
    );
}
