//! Entry points for fuzzing the wire format (see `fuzz/` at the repository root).
//!
//! Each entry point takes arbitrary bytes and reads them as the side that receives them would:
//! frames with the real reader (`wire::read_frame`, `read_header`, `read_into`), fixed fields with
//! `wire::Fields`, and values with the real decoders (`wire::decode_value`, `decode_whole`, and
//! `remote::Arguments::decode_and_call` for argument tuples, borrowed `&str`/`&[u8]` and a raw
//! `Vec<u8>` tail included). None may panic, hang, or allocate much more than the bytes it was
//! given, whatever they are; errors are the expected outcome for most inputs.
//!
//! The entry points are pure: where a worker would jump to the trampoline and function a call
//! names, they only check the offsets as the worker does (`in_executable`) and hand the decoded
//! arguments to fixed functions of this module. Every message is parsed by the functions the two
//! sides use (`remote::protocol`'s `read_call`, `CallHead::parse` and `OutcomeHead::parse`, and
//! `process::worker::Hello::parse`), so what is fuzzed is what runs.
//!
//! Compiled only with the cargo feature `fuzzing` (which the fuzz crate enables) and in this
//! crate's unit tests: users' builds do not carry it. Not a stable API.
//!
//! Over 500 lines with its unit tests (about 225 lines), which feed each entry point the malformed
//! inputs it must refuse.

use std::collections::BTreeMap;
use std::hint::black_box;

use serde::{Deserialize, Serialize};

use crate::process::worker::Hello;
use crate::remote::call::{Arguments, CallStatus};
use crate::remote::executable::{address_at, in_executable};
use crate::remote::protocol::{read_call, CallHead, OutcomeHead, CALL_FIELDS};
use crate::remote::shape::{BorrowedBytes, BorrowedStr, Owned};
use crate::remote::tail::{checked_in_steps, Tail};
use crate::remote::wire::{self, Kind, ReadError};

/// What an entry point read before its input ran out or went wrong.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Frames whose header and payload were read whole.
    pub frames: usize,
    /// Values, argument tuples and messages that decoded completely.
    pub decoded: usize,
    /// Messages or values refused after their frame was read (each ends only itself, as a call
    /// whose arguments cannot be decoded fails alone).
    pub rejected: usize,
    /// How reading stopped: `None` at a clean end of input between frames, else the error.
    pub end: Option<String>,
    /// The largest capacity any read buffer reached, in bytes: what a corrupt length claim made
    /// the reader allocate.
    pub peak_capacity: usize,
}

impl Summary {
    fn saw(&mut self, capacity: usize) {
        self.peak_capacity = self.peak_capacity.max(capacity);
    }

    fn count(&mut self, decoded: Result<usize, ReadError>) {
        match decoded {
            Ok(values) => self.decoded += values,
            Err(_) => self.rejected += 1,
        }
    }

    /// Reads the next frame into `payload` and counts it; `None`, with the reason kept, when no
    /// whole frame could be read.
    fn next_frame(&mut self, input: &mut &[u8], payload: &mut Vec<u8>) -> Option<Kind> {
        let read = wire::read_frame(input, payload);
        self.saw(payload.capacity());
        match read {
            Ok(kind) => {
                self.frames += 1;
                Some(kind)
            }
            Err(error) => {
                self.stop(error);
                None
            }
        }
    }

    fn stop(&mut self, error: ReadError) {
        if !matches!(error, ReadError::Closed) {
            self.end = Some(error.to_string());
        }
    }
}

/// Reads `data` as a stream of frames of any kind, in any order, until it ends or a frame cannot
/// be read, and parses each payload as the side that receives that kind does: a hello or a call
/// as a worker, an answer to the hello or an outcome as the pool.
pub fn frames(data: &[u8]) -> Summary {
    let mut input = data;
    let mut summary = Summary::default();
    let mut payload = Vec::new();
    while let Some(kind) = summary.next_frame(&mut input, &mut payload) {
        let parsed = match kind {
            Kind::Hello => hello(&payload),
            Kind::Ready => Ok(usize::from(black_box(payload.len()) == 4)),
            Kind::Refused => Ok(usize::from(
                !black_box(String::from_utf8_lossy(&payload)).is_empty(),
            )),
            Kind::Call => whole_call(&payload),
            Kind::Outcome => outcome(&payload),
            Kind::Accepted => Ok(usize::from(black_box(payload.is_empty()))),
        };
        summary.count(parsed);
    }
    summary
}

/// Reads `data` as a worker reads its channel: a hello (parsed, and its initializer's arguments
/// decoded), then calls (fixed fields, arguments and the raw tail streamed into buffers of their
/// own, the arguments decoded), until the input ends or breaks the protocol.
pub fn worker_stream(data: &[u8]) -> Summary {
    let mut input = data;
    let mut summary = Summary::default();
    let mut payload = Vec::new();
    match summary.next_frame(&mut input, &mut payload) {
        Some(Kind::Hello) => {}
        Some(other) => {
            summary.end = Some(format!("expected a hello, got a {other:?} message"));
            return summary;
        }
        None => return summary,
    }
    if let Err(error) = hello(&payload).map(|values| summary.decoded += values) {
        // A worker that cannot read its hello exits.
        summary.rejected += 1;
        summary.stop(error);
        return summary;
    }
    loop {
        let read = read_call(&mut input, &mut payload, None);
        summary.saw(payload.capacity());
        let call = match read {
            Ok(call) => call,
            Err(error) => {
                summary.stop(error);
                return summary;
            }
        };
        match &call.tail {
            Some(Tail::Bytes(tail)) => summary.saw(tail.capacity()),
            Some(Tail::Text(tail)) => summary.saw(tail.capacity()),
            None => {}
        }
        summary.frames += 1;
        locate(call.head.trampoline, call.head.function);
        black_box(call.head.id);
        summary.decoded += arguments(&payload[CALL_FIELDS..], call.tail);
    }
}

/// Reads `data` as the pool reads a worker's channel: the answer to the hello (after its
/// acknowledgement, when the pool has an initializer), then outcomes
/// (fixed fields, and the result decoded as several types, or the message), until the input ends
/// or breaks the protocol.
pub fn parent_stream(data: &[u8]) -> Summary {
    let mut input = data;
    let mut summary = Summary::default();
    let mut payload = Vec::new();
    let mut answer = summary.next_frame(&mut input, &mut payload);
    if answer == Some(Kind::Accepted) && payload.is_empty() {
        // The initializer ran; its outcome follows.
        answer = summary.next_frame(&mut input, &mut payload);
    }
    match answer {
        Some(Kind::Ready) => {}
        Some(Kind::Refused) => {
            summary.end = Some(format!("refused: {}", String::from_utf8_lossy(&payload)));
            return summary;
        }
        Some(other) => {
            summary.end = Some(format!("unexpected {other:?} message"));
            return summary;
        }
        None => return summary,
    }
    loop {
        match summary.next_frame(&mut input, &mut payload) {
            Some(Kind::Outcome) => {}
            Some(other) => {
                summary.end = Some(format!("unexpected {other:?} message"));
                return summary;
            }
            None => return summary,
        }
        match outcome(&payload) {
            Ok(values) => summary.decoded += values,
            Err(error) => {
                // The pool ends a link whose outcome it cannot read.
                summary.rejected += 1;
                summary.stop(error);
                return summary;
            }
        }
    }
}

/// Decodes `data` directly as values: as argument tuples (the first byte, if any, says how many
/// of the bytes after it are the raw tail, its low 7 bits, and whether the tail is said to be
/// text, its high bit) and as whole results.
pub fn values(data: &[u8]) -> Summary {
    let mut summary = Summary::default();
    if let Some((&split, rest)) = data.split_first() {
        let tail_len = usize::from(split & 0x7f);
        let (head, tail) = rest.split_at(rest.len().saturating_sub(tail_len));
        let tail = (!tail.is_empty()).then(|| tail_of(split & 0x80 != 0, tail));
        summary.decoded += arguments(head, tail);
    }
    summary.decoded += results(data, None);
    summary
}

/// A hello, as a Process worker reads it; decodes the initializer's arguments if there is one.
fn hello(payload: &[u8]) -> Result<usize, ReadError> {
    let hello = Hello::parse(payload)?;
    black_box((hello.index, hello.executable));
    match hello.initializer {
        None => Ok(1),
        Some((trampoline, function, arguments_bytes)) => {
            locate(trampoline, function);
            Ok(1 + arguments(arguments_bytes, None))
        }
    }
}

/// A call read whole (by `frames`): its fields, then its arguments, the last `tail length` bytes
/// being the raw tail.
fn whole_call(payload: &[u8]) -> Result<usize, ReadError> {
    let (head, rest) = CallHead::parse(payload)?;
    black_box(head.id);
    locate(head.trampoline, head.function);
    let (values, tail) = head.split_tail(rest)?;
    Ok(arguments(
        values,
        (head.tail_len > 0).then(|| tail_of(head.text, tail)),
    ))
}

/// A whole message's raw tail as a receiver holds it: one said to be text is checked in steps, as
/// the Process ring checks it: 67 bytes, so that characters are cut between steps, and each step
/// but the last is long enough for simdutf8's SIMD path (64 bytes and more).
fn tail_of(text: bool, bytes: &[u8]) -> Tail {
    match text {
        true => checked_in_steps(bytes, 67),
        false => Tail::Bytes(bytes.to_vec()),
    }
}

/// An outcome, as the pool reads it, then the result decoded (as several types) or the message.
fn outcome(payload: &[u8]) -> Result<usize, ReadError> {
    let (head, rest) = OutcomeHead::parse(payload)?;
    black_box((head.id, head.elapsed_ns));
    Ok(match head.status {
        CallStatus::Returned => {
            let (values, tail) = head.split_tail(rest)?;
            results(
                values,
                (head.tail_len > 0).then(|| tail_of(head.text, tail)),
            )
        }
        CallStatus::Panicked => {
            black_box(crate::remote::call::decode_panic(rest));
            1
        }
        CallStatus::Transport => {
            black_box(String::from_utf8_lossy(rest));
            1
        }
    })
}

/// What a worker checks of the offsets a call names before it jumps: nothing is called here.
fn locate(trampoline: i64, function: i64) {
    black_box(in_executable(address_at(trampoline as isize)));
    black_box(in_executable(address_at(function as isize)));
}

/// A user type with the shapes serde derives: unit, tuple and struct variants, and fields of
/// several kinds. (`Serialize` too: arguments must be both.)
#[derive(Debug, Serialize, Deserialize)]
enum Sample {
    Unit,
    Pair(u32, i64),
    Named {
        text: String,
        bytes: Vec<u8>,
        ratio: f64,
        flag: bool,
        letter: char,
        items: Vec<(u16, Option<String>)>,
    },
}

fn nothing() -> usize {
    0
}

fn number_and_text(number: u64, text: String) -> usize {
    black_box(number) as usize ^ text.len()
}

fn bytes(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn text_and_bytes(text: String, bytes: Vec<u8>) -> usize {
    text.len() ^ bytes.len()
}

fn borrowed(text: &str, bytes: &[u8], number: u32) -> usize {
    text.len() ^ bytes.len() ^ number as usize
}

fn structured(
    sample: Sample,
    nested: Option<Vec<(i32, String)>>,
    map: BTreeMap<String, u64>,
) -> usize {
    black_box(&sample);
    nested.map_or(0, |v| v.len()) ^ map.len()
}

/// Decodes `input` (and `tail`, a raw tail) as the argument tuples of several function types, as
/// their trampolines would, and as the chunks of a `map`; gives how many decoded.
fn arguments(input: &[u8], tail: Option<Tail>) -> usize {
    /// One function type: `Args` is `((shapes...), (argument types...))`, as `remote<n>` builds it.
    fn call<Args: Arguments<usize>>(f: Args::Function, input: &[u8], tail: Option<Tail>) -> usize {
        usize::from(black_box(Args::decode_and_call(f, input, tail)).is_ok())
    }
    /// A `map` chunk, as `remote::call::chunk_trampoline` decodes it.
    fn chunk<T: serde::de::DeserializeOwned + 'static>(
        mut input: &[u8],
        mut tail: Option<Tail>,
    ) -> usize {
        usize::from(black_box(wire::decode_value::<Vec<T>>(&mut input, &mut tail)).is_ok())
    }
    let tail = || tail.clone();
    call::<((), ())>(nothing, input, tail())
        + call::<((Owned, Owned), (u64, String))>(number_and_text, input, tail())
        + call::<((Owned,), (Vec<u8>,))>(bytes, input, tail())
        + call::<((Owned, Owned), (String, Vec<u8>))>(text_and_bytes, input, tail())
        + call::<((BorrowedStr, BorrowedBytes, Owned), (&str, &[u8], u32))>(borrowed, input, tail())
        + call::<(
            (Owned, Owned, Owned),
            (Sample, Option<Vec<(i32, String)>>, BTreeMap<String, u64>),
        )>(structured, input, tail())
        + chunk::<u64>(input, tail())
        + chunk::<String>(input, tail())
}

/// Decodes `bytes` (and `tail`, a raw tail) as the result of calls of several result types, as
/// the pool does (a `map` chunk's results included); gives how many decoded.
fn results(bytes: &[u8], tail: Option<Tail>) -> usize {
    let one = |decode: fn(&[u8], Option<Tail>) -> bool| usize::from(decode(bytes, tail.clone()));
    fn ok<T: serde::de::DeserializeOwned + 'static>(bytes: &[u8], tail: Option<Tail>) -> bool {
        black_box(wire::decode_with_tail::<T>(bytes, tail)).is_ok()
    }
    one(ok::<()>)
        + one(ok::<u64>)
        + one(ok::<String>)
        + one(ok::<Vec<u8>>)
        + one(ok::<Option<(i32, String)>>)
        + one(ok::<Sample>)
        + one(ok::<BTreeMap<String, Vec<u8>>>)
        + one(ok::<Vec<Result<u64, String>>>)
        + one(ok::<Vec<Result<Vec<u8>, String>>>)
}

// A file beside this one, not a folder: every folder of `src/` is a layer or a backend.
#[cfg(test)]
#[path = "fuzzing_seeds.rs"]
mod seeds;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::wire::{Parts, VERSION};

    const MAGIC: u8 = 0xEC;
    /// Far below the 4 GiB a corrupt header can claim; above the reader's 16 MiB read step.
    const SMALL: usize = 64 << 20;

    pub(super) fn header(kind: Kind, len: u32) -> Vec<u8> {
        let mut bytes = vec![MAGIC, VERSION, kind as u8, 0];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes
    }

    pub(super) fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        wire::write_frame(&mut bytes, kind, payload).unwrap();
        bytes
    }

    pub(super) fn hello_frame() -> Vec<u8> {
        let mut payload = vec![0u8; 48];
        payload.push(0); // no initializer
        frame(Kind::Hello, &payload)
    }

    /// A call frame as the pool writes it.
    pub(super) fn call_frame(id: u64, arguments: &Parts) -> Vec<u8> {
        let mut bytes = Vec::new();
        let head = CallHead {
            id,
            trampoline: 0,
            function: 0,
            tail_len: arguments.raw_tail_len() as u64,
            text: arguments.raw_tail_is_text(),
        };
        assert!(head.write(arguments.len(), &mut bytes));
        bytes.extend_from_slice(&arguments.concat());
        bytes
    }

    pub(super) fn outcome_frame(id: u64, status: u8, result: &[u8]) -> Vec<u8> {
        let mut payload = id.to_le_bytes().to_vec();
        payload.push(status);
        payload.extend_from_slice(&7u64.to_le_bytes());
        payload.extend_from_slice(&0u64.to_le_bytes()); // no raw tail
        payload.push(0); // of no kind
        payload.extend_from_slice(result);
        frame(Kind::Outcome, &payload)
    }

    fn all(data: &[u8]) -> [Summary; 4] {
        [
            frames(data),
            worker_stream(data),
            parent_stream(data),
            values(data),
        ]
    }

    #[test]
    fn well_formed_streams_decode() {
        let mut parts = Parts::default();
        parts.push_value("head".to_string()).unwrap();
        parts.push_value(vec![3u8; 1 << 15]).unwrap();
        assert!(parts.raw_tail_len() > 0, "the call has a raw tail");
        let mut worker = hello_frame();
        worker.extend(call_frame(0, &parts));
        let mut small = Parts::default();
        small.push_value(5u64).unwrap();
        small.push_value("five".to_string()).unwrap();
        worker.extend(call_frame(1, &small));
        let summary = worker_stream(&worker);
        assert_eq!(summary.end, None, "{summary:?}");
        assert_eq!(summary.frames, 3);
        assert!(summary.decoded >= 3, "{summary:?}");
        let summary = frames(&worker);
        assert_eq!(
            (summary.frames, summary.rejected, summary.end),
            (3, 0, None)
        );

        let mut result = Vec::new();
        wire::encode_value(&"done".to_string(), &mut result).unwrap();
        let mut parent = frame(Kind::Ready, &42u32.to_le_bytes());
        parent.extend(outcome_frame(0, CallStatus::Returned as u8, &result));
        parent.extend(outcome_frame(1, CallStatus::Panicked as u8, b"boom"));
        let summary = parent_stream(&parent);
        assert_eq!(summary.end, None, "{summary:?}");
        assert_eq!(summary.frames, 3);
        assert!(summary.decoded >= 2, "{summary:?}");
    }

    #[test]
    fn a_truncated_header_ends_the_stream_with_an_error() {
        for cut in 1..8 {
            let bytes = &hello_frame()[..cut];
            for summary in &all(bytes)[..3] {
                assert_eq!(summary.frames, 0);
                let end = summary.end.as_deref().unwrap_or_default();
                assert!(end.contains("inside a frame header"), "{end}");
            }
        }
        // Inside the second frame's header: the first was read.
        let mut bytes = hello_frame();
        bytes.extend_from_slice(&[MAGIC, VERSION]);
        let summary = worker_stream(&bytes);
        assert_eq!(summary.frames, 1);
        assert!(summary.end.unwrap().contains("inside a frame header"));
    }

    #[test]
    fn a_bad_magic_byte_or_version_is_refused() {
        let mut bad_magic = hello_frame();
        bad_magic[0] = 0xEB;
        let mut bad_version = hello_frame();
        bad_version[1] = VERSION.wrapping_add(1);
        let mut bad_kind = hello_frame();
        bad_kind[2] = 0;
        for (bytes, why) in [
            (bad_magic, "bad magic byte 0xeb"),
            (bad_version, "protocol version"),
            (bad_kind, "unknown message kind 0"),
        ] {
            for summary in &all(&bytes)[..3] {
                assert_eq!(summary.frames, 0);
                let end = summary.end.as_deref().unwrap_or_default();
                assert!(end.contains(why), "{end}");
            }
        }
    }

    #[test]
    fn a_huge_claimed_length_is_not_allocated() {
        // Claims 4 GiB - 1 and delivers 3 bytes.
        for kind in [Kind::Hello, Kind::Ready, Kind::Call, Kind::Outcome] {
            let mut bytes = header(kind, u32::MAX);
            bytes.extend_from_slice(&[1, 2, 3]);
            for summary in &all(&bytes)[..3] {
                assert_eq!(summary.frames, 0);
                assert!(summary
                    .end
                    .as_deref()
                    .unwrap()
                    .contains("closed inside a frame"));
                assert!(summary.peak_capacity <= SMALL, "{summary:?}");
            }
        }
        // The same inside a worker's stream, after its hello.
        let mut bytes = hello_frame();
        bytes.extend(header(Kind::Call, u32::MAX));
        bytes.extend_from_slice(&[0; CALL_FIELDS]);
        bytes.extend_from_slice(&[1, 2, 3]);
        let summary = worker_stream(&bytes);
        assert_eq!(summary.frames, 1);
        assert!(summary.end.unwrap().contains("closed inside a frame"));
        assert!(summary.peak_capacity <= SMALL);
    }

    #[test]
    fn oversized_claims_inside_a_frame_are_refused() {
        // A call whose raw tail is longer than the call.
        let mut call = header(Kind::Call, CALL_FIELDS as u32 + 3);
        call.extend_from_slice(&[0; 24]);
        call.extend_from_slice(&u64::MAX.to_le_bytes());
        call.push(0);
        call.extend_from_slice(&[1, 2, 3]);
        let summary = frames(&call);
        assert_eq!((summary.frames, summary.rejected), (1, 1));
        let mut bytes = hello_frame();
        bytes.extend_from_slice(&call);
        let summary = worker_stream(&bytes);
        assert!(summary.end.unwrap().contains("longer than the call"));
        assert!(summary.peak_capacity <= SMALL);

        // Arguments that claim more bytes than there are: a raw byte vector of 2^64 - 1 bytes,
        // then a string whose length prefix claims 2^63.
        let mut payload = u64::MAX.to_le_bytes().to_vec();
        payload.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        let mut call = header(Kind::Call, (CALL_FIELDS + payload.len()) as u32);
        call.extend_from_slice(&[0; CALL_FIELDS]);
        call.extend_from_slice(&payload);
        let summary = frames(&call);
        assert_eq!((summary.frames, summary.decoded, summary.end), (1, 0, None));
        assert!(summary.peak_capacity <= SMALL);
        let summary = values(&payload);
        assert_eq!(summary.decoded, 0, "{summary:?}");

        // A result claiming 2^32 elements in four bytes.
        let mut parent = frame(Kind::Ready, &[]);
        parent.extend(outcome_frame(
            0,
            0,
            &[0x80, 0x80, 0x80, 0x80, 0x10, 1, 2, 3],
        ));
        let summary = parent_stream(&parent);
        assert_eq!((summary.frames, summary.end), (2, None));
        assert!(summary.peak_capacity <= SMALL);
    }

    #[test]
    fn garbage_payloads_are_errors_not_panics() {
        let garbage: Vec<u8> = (0u32..600).map(|i| (i * 7919 % 251) as u8).collect();
        for kind in [
            Kind::Hello,
            Kind::Ready,
            Kind::Refused,
            Kind::Call,
            Kind::Outcome,
            Kind::Accepted,
        ] {
            for len in [0, 1, 8, 17, 31, 32, 33, 49, 57, 64, 600] {
                let mut bytes = frame(kind, &garbage[..len]);
                bytes.extend(frame(kind, &garbage[len..]));
                for summary in all(&bytes) {
                    assert!(summary.peak_capacity <= SMALL);
                }
            }
        }
        // An outcome with an unknown status ends the pool's link.
        let mut parent = frame(Kind::Ready, &[]);
        parent.extend(outcome_frame(0, 9, &[]));
        let summary = parent_stream(&parent);
        assert!(summary.end.unwrap().contains("unknown call status 9"));
        // A message too short for its fields.
        let summary = frames(&frame(Kind::Outcome, &[1, 2, 3]));
        assert_eq!((summary.frames, summary.rejected), (1, 1));
        let summary = values(&garbage);
        assert!(summary.peak_capacity == 0 && summary.end.is_none());
    }
}
