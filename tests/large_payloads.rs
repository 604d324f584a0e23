//! Large payloads through Process: byte vectors and strings, as arguments (owned and borrowed) and
//! as results, cross whole and in order at every size around the thresholds where their path
//! changes (16 KiB: a raw tail of its own), up to 64 MiB; a worker that dies in the middle of
//! sending a large result fails that call with `WorkerDied` and leaves no descriptor behind.

use std::io::Write;
use std::os::unix::io::FromRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};

use concurrent_futures::__private::PROTOCOL_VERSION;
use concurrent_futures::{pool, TaskError};

mod common;
use common::payloads::{patterned_bytes, two_byte_text};

/// A raw tail of its own from this size (`wire::OWN_PART`).
const OWN_PART: usize = 16 << 10;

/// The sizes tried: empty, around the raw-tail threshold, and large.
const SIZES: [usize; 7] = [
    0,
    1,
    OWN_PART - 1,
    OWN_PART,
    OWN_PART + 1,
    3 << 20,
    64 << 20,
];

/// The tests of this file run one at a time: one counts this process's descriptors.
fn alone() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn echo_bytes(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

fn echo_text(text: String) -> String {
    text
}

fn copy_borrowed(text: &str, bytes: &[u8]) -> (usize, String, Vec<u8>) {
    (text.len() + bytes.len(), text.to_string(), bytes.to_vec())
}

fn make_bytes(len: usize) -> Vec<u8> {
    patterned_bytes(len, 0)
}

fn make_text(len: usize) -> String {
    two_byte_text(len)
}

#[test]
fn byte_vectors_and_strings_round_trip_as_arguments_and_results_at_every_size() {
    let _alone = alone();
    pool!(Process(max_workers = 1) => {
        for len in SIZES {
            let sent = patterned_bytes(len, 0);
            assert!(submit(echo_bytes, sent.clone()).result().unwrap() == sent, "Vec<u8> of {len}");
            assert!(submit(make_bytes, len).result().unwrap() == sent, "Vec<u8> result of {len}");
            let sent = two_byte_text(len);
            assert!(submit(echo_text, sent.clone()).result().unwrap() == sent, "String of {len}");
            assert!(submit(make_text, len).result().unwrap() == sent, "String result of {len}");
        }
    });
}

/// Text of `len` bytes of three-byte characters (and `x`s to fill): the ring's 512 KiB chunks
/// cut characters, which the receiving side checks across the cut. (This pins that such strings
/// arrive whole and equal; that the check as they arrive accepts them, rather than leaving them
/// to be checked again when decoded, is pinned by the ring's own test
/// `a_text_tail_is_checked_chunk_by_chunk_and_decodes_as_the_string_it_was`.)
fn euro_text(len: usize) -> String {
    let mut text = "€".repeat(len / 3);
    text.extend(std::iter::repeat_n('x', len % 3));
    text
}

#[test]
fn strings_whose_characters_straddle_the_rings_chunks_arrive_whole() {
    let _alone = alone();
    pool!(Process(max_workers = 1) => {
        for len in [3 << 20, (3 << 20) + 2] {
            let sent = euro_text(len);
            assert!(!sent.is_char_boundary(512 << 10), "a character straddles the first chunk");
            assert!(submit(echo_text, sent.clone()).result().unwrap() == sent, "String of {len}");
            assert!(submit(euro_text, len).result().unwrap() == sent, "String result of {len}");
        }
    });
}

#[test]
fn borrowed_text_and_bytes_round_trip_at_every_size() {
    let _alone = alone();
    for len in SIZES {
        let (text, bytes) = (two_byte_text(len), patterned_bytes(len, 0));
        let (total, text_back, bytes_back) = pool!(Process(max_workers = 1) => { submit(copy_borrowed, text.as_str(), bytes.as_slice()).result().unwrap() });
        assert_eq!(total, 2 * len, "lengths of {len}");
        assert!(
            text_back == text && bytes_back == bytes,
            "borrowed of {len}"
        );
    }
}

/// The descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// In a worker: writes the start of an outcome that announces a 64 MiB result as its raw tail,
/// sends 1 MiB of it on every socket the worker holds (its channel to the pool), and dies.
fn die_while_sending_a_large_result() -> Vec<u8> {
    const TAIL: u64 = 64 << 20;
    let mut frame = vec![0xEC, PROTOCOL_VERSION, 5, 0];
    let fields: u64 = 8 + 1 + 8 + 8 + 1;
    frame.extend_from_slice(&((fields + 8 + TAIL) as u32).to_le_bytes());
    frame.extend_from_slice(&0u64.to_le_bytes()); // the call's id: the pool's first
    frame.push(0); // returned
    frame.extend_from_slice(&1u64.to_le_bytes()); // its run time
    frame.extend_from_slice(&TAIL.to_le_bytes()); // the raw tail's length
    frame.push(0); // bytes, not text
    frame.extend_from_slice(&TAIL.to_le_bytes()); // the vector's length
    frame.extend_from_slice(&vec![7u8; 1 << 20]);
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        if is_socket && fd > 2 {
            // SAFETY: the descriptor is open (just listed) and the process exits right after
            // this write, so nothing else uses it after this stream; it is leaked, not closed.
            let mut socket = std::mem::ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(fd) });
            let _ = socket.write_all(&frame);
            break;
        }
    }
    // SAFETY: `_exit` ends the process at once.
    unsafe { libc::_exit(9) }
}

#[test]
fn a_worker_that_dies_in_the_middle_of_a_large_result_fails_that_call_and_leaks_no_descriptor() {
    let _alone = alone();
    let before = open_fds();
    let (died, next) = pool!(Process(max_workers = 1) => {
        let died = submit(die_while_sending_a_large_result).result();
        let next = submit(make_bytes, 1 << 20).result();
        (died, next)
    });
    assert!(
        matches!(died, Err(TaskError::WorkerDied { .. })),
        "{died:?}"
    );
    assert_eq!(
        next.unwrap(),
        patterned_bytes(1 << 20, 0),
        "a replacement worker serves the next call"
    );
    assert_eq!(
        open_fds(),
        before,
        "every descriptor of the pool is closed after the block"
    );
}
