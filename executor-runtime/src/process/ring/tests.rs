//! The ring in one process: the pool's mapping and a second mapping of the same file (the worker's),
//! one thread on each side.

use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;

use super::*;
use crate::remote::call::{CallOutput, CallStatus};
use crate::remote::protocol::{read_outcome, OutcomeHead, OUTCOME_FIELDS};
use crate::remote::tail::Tail;
use crate::remote::wire;

/// Bytes that differ from place to place (a prime period), so that a misplaced chunk shows.
fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i + seed) % 251) as u8).collect()
}

/// Both sides of a fresh ring, each watching its end of a socket pair (also returned, pool's end
/// first, so a test can hang up or shut down one side).
fn pair() -> (
    (Sender, Receiver),
    (Sender, Receiver),
    (UnixStream, UnixStream),
) {
    let (pool_ring, fd) = Ring::create().expect("a ring");
    let worker_ring = Ring::open(fd.try_clone().unwrap()).expect("the worker maps it");
    let (pool_socket, worker_socket) = UnixStream::pair().unwrap();
    let pool = pool_ring.split(Side::Pool, pool_socket.as_raw_fd(), pool_socket.as_raw_fd());
    let worker = worker_ring.split(
        Side::Worker,
        worker_socket.as_raw_fd(),
        worker_socket.as_raw_fd(),
    );
    (pool, worker, (pool_socket, worker_socket))
}

/// Waits for a thread's answer, failing the test instead of hanging if it never comes.
fn within<T>(answer: &mpsc::Receiver<T>) -> T {
    answer
        .recv_timeout(Duration::from_secs(60))
        .expect("the other side answered")
}

#[test]
fn tails_cross_whole_and_in_order_both_ways_at_every_size_around_the_chunks() {
    let ((mut to_worker, mut from_worker), (mut to_pool, mut from_pool), _sockets) = pair();
    let sizes = [
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        SLOTS as usize * CHUNK + 1,
        3 * SLOTS as usize * CHUNK + 7,
        RESERVE_AHEAD + CHUNK + 3,
    ];
    let (answer, answers) = mpsc::channel();
    // The worker's side echoes each tail back, through the other ring.
    let worker = thread::spawn(move || {
        for len in sizes {
            let got = from_pool.receive(len, false).unwrap();
            to_pool.send(got.as_bytes()).unwrap();
            answer.send(got.len()).unwrap();
        }
    });
    for (seed, len) in sizes.into_iter().enumerate() {
        let sent = pattern(len, seed);
        to_worker.send(&sent).unwrap();
        let back = from_worker.receive(len, false).unwrap();
        assert_eq!(within(&answers), len);
        assert!(
            back == Tail::Bytes(sent),
            "a tail of {len} bytes came back changed"
        );
    }
    worker.join().unwrap();
}

#[test]
fn impossible_counts_from_a_corrupt_peer_are_refused_on_both_sides() {
    let ((mut to_worker, mut from_worker), (to_pool, from_pool), _sockets) = pair();
    // The worker claims more chunks published than the ring has slots.
    to_pool.half.published().store(SLOTS + 1, Ordering::SeqCst);
    assert!(matches!(
        from_worker.receive(CHUNK, false),
        Err(ReadError::Malformed(_))
    ));
    // The worker claims to have consumed chunks never published.
    from_pool.half.consumed().store(3, Ordering::SeqCst);
    assert!(matches!(
        to_worker.send(&[1; 10]),
        Err(ReadError::Malformed(_))
    ));
}

#[test]
fn a_waiting_side_fails_when_the_other_hangs_up_but_not_when_it_only_stops_writing() {
    let ((mut to_worker, _), (_, mut from_pool), (pool_socket, worker_socket)) = pair();
    let (answer, answers) = mpsc::channel();
    let worker = thread::spawn(move || {
        answer.send(from_pool.receive(CHUNK + 5, false)).unwrap();
        answer.send(from_pool.receive(CHUNK, false)).unwrap();
        drop(worker_socket);
    });
    // The pool ends the worker's input while the worker still waits: not a hang-up.
    pool_socket.shutdown(std::net::Shutdown::Write).unwrap();
    thread::sleep(3 * NAP);
    let sent = pattern(CHUNK + 5, 1);
    to_worker.send(&sent).unwrap();
    assert!(within(&answers).unwrap() == Tail::Bytes(sent));
    // Now the pool is gone: the worker's wait ends with an I/O error.
    drop(pool_socket);
    assert!(matches!(within(&answers), Err(ReadError::Io(_))));
    worker.join().unwrap();
}

#[test]
fn a_sender_with_a_full_ring_fails_when_the_receiver_hangs_up() {
    let ((mut to_worker, _), _worker, (pool_socket, worker_socket)) = pair();
    let (answer, answers) = mpsc::channel();
    let pool = thread::spawn(move || {
        // Nobody consumes: the ring fills after `SLOTS` chunks, then the worker's end closes.
        answer
            .send(to_worker.send(&pattern(2 * SLOTS as usize * CHUNK, 0)))
            .unwrap();
        drop(pool_socket);
    });
    thread::sleep(NAP);
    drop(worker_socket);
    assert!(matches!(within(&answers), Err(ReadError::Io(_))));
    pool.join().unwrap();
}

#[test]
fn a_worker_refuses_a_file_that_is_not_a_sealed_ring() {
    let null = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    assert!(Ring::open(null).err().unwrap().contains("holds 0 bytes"));
    // SAFETY: the name is a NUL-terminated literal; the descriptor returned is ours alone.
    let unsealed = unsafe {
        let fd = libc::memfd_create(c"test".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0);
        assert_eq!(libc::ftruncate(fd, FILE_BYTES as libc::off_t), 0);
        OwnedFd::from_raw_fd(fd)
    };
    assert!(Ring::open(unsealed).err().unwrap().contains("not sealed"));
    let (_ring, fd) = Ring::create().unwrap();
    assert!(Ring::open(fd).is_ok());
}

/// An outcome frame whose result is a raw tail of `tail` (a `String` or `Vec<u8>` result), the
/// tail said to be `text` (whatever its bytes are).
fn outcome_with_tail(tail: Vec<u8>, text: bool) -> (Vec<u8>, Vec<u8>) {
    let mut output = CallOutput {
        bytes: (tail.len() as u64).to_le_bytes().to_vec(),
        tail: Some(Tail::Bytes(tail)),
    };
    let mut frame = Vec::new();
    let head = OutcomeHead {
        id: 9,
        status: CallStatus::Returned,
        elapsed_ns: 1,
        tail_len: 0,
        text: false,
    };
    head.write(&mut frame, &mut output);
    // The last of the fixed fields says whether the tail is text.
    frame[wire::HEADER_LEN + OUTCOME_FIELDS - 1] = u8::from(text);
    frame.extend_from_slice(&output.bytes);
    (frame, output.tail.unwrap().into_bytes())
}

/// Reads one outcome from `stream`, its tail through `ring`; gives the rest of the stream, the
/// result's encoded part and its tail.
fn read_through<'a>(stream: &'a [u8], ring: &mut Receiver) -> (&'a [u8], Vec<u8>, Option<Tail>) {
    let mut input = stream;
    let (_, len) = wire::read_header(&mut input).unwrap();
    let mut payload = Vec::new();
    let side: &mut dyn TailChannel = ring;
    let (_, tail) = read_outcome(&mut input, len, &mut payload, Some(side)).unwrap();
    (input, payload.split_off(OUTCOME_FIELDS), tail)
}

#[test]
fn a_long_tail_comes_through_the_ring_after_its_head_and_a_short_one_stays_in_the_stream() {
    let ((_, mut from_worker), (mut to_pool, _), _sockets) = pair();
    // A `String` result of `RING_MIN` bytes that are not UTF-8: its head in the stream, its tail
    // in the ring; the stream goes on with the next message.
    let (mut stream, long) = outcome_with_tail(vec![0xff; RING_MIN], true);
    stream.extend_from_slice(b"next");
    let pushed = thread::spawn(move || to_pool.send(&long).map(|()| to_pool));
    let (rest, result, tail) = read_through(&stream, &mut from_worker);
    assert_eq!(rest, b"next", "the tail was not in the stream");
    // Said to be text, the tail stays bytes, and decodes as a `String` only to an error.
    assert!(!tail.as_ref().unwrap().is_text());
    let error = wire::decode_with_tail::<String>(&result, tail).unwrap_err();
    assert!(error.contains("not UTF-8"), "{error}");
    pushed.join().unwrap().unwrap();
    // One byte shorter, the tail is in the stream, though the link has a ring.
    let short = pattern(RING_MIN - 1, 3);
    let (mut stream, _) = outcome_with_tail(short.clone(), false);
    stream.extend_from_slice(&short);
    let (rest, _, tail) = read_through(&stream, &mut from_worker);
    assert!(rest.is_empty() && tail.unwrap() == Tail::Bytes(short));
}

#[test]
fn a_text_tail_is_checked_chunk_by_chunk_and_decodes_as_the_string_it_was() {
    let ((_, mut from_worker), (mut to_pool, _), _sockets) = pair();
    // Three-byte characters from the start, so that every chunk boundary cuts one.
    let text = "€".repeat((3 * CHUNK + 11) / 3);
    assert!(
        !text.is_char_boundary(CHUNK),
        "a character straddles the first chunk's end"
    );
    let (stream, bytes) = outcome_with_tail(text.clone().into_bytes(), true);
    let pushed = thread::spawn(move || to_pool.send(&bytes).map(|()| to_pool));
    let (_, result, tail) = read_through(&stream, &mut from_worker);
    assert_eq!(tail.as_ref(), Some(&Tail::Text(text.clone())));
    assert_eq!(
        wire::decode_with_tail::<String>(&result, tail).unwrap(),
        text
    );
    let mut to_pool = pushed.join().unwrap().unwrap();
    // The same bytes not said to be text arrive as bytes, and are checked when decoded.
    let (stream, bytes) = outcome_with_tail(text.clone().into_bytes(), false);
    let pushed = thread::spawn(move || to_pool.send(&bytes));
    let (_, result, tail) = read_through(&stream, &mut from_worker);
    assert!(!tail.as_ref().unwrap().is_text());
    assert_eq!(
        wire::decode_with_tail::<String>(&result, tail).unwrap(),
        text
    );
    pushed.join().unwrap().unwrap();
}
