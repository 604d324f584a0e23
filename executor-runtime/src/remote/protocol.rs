//! The messages of a call's round trip, written and parsed here once for every remote backend.
//!
//! Every message is a frame (`wire`). A *call* carries fixed fields ([`CallHead`]: its id, the
//! trampoline and function offsets, the length of its raw tail and whether that is text) and then
//! the encoded arguments; an *outcome* carries [`OutcomeHead`] (the call's id, how it ended, its
//! run time in the worker, its raw tail's length and kind) and then the result or message. The
//! Process backend streams them over a socket, the Mpi backend packs several into one MPI
//! message; the bytes are the same, so `fuzzing` reads both.

use std::io::Read;

use crate::remote::buffer::read_fresh;
use crate::remote::call::{CallOutput, CallStatus};
use crate::remote::tail::Tail;
use crate::remote::wire::{self, Fields, Kind, ReadError};

/// Bytes of a call message before its arguments: id, trampoline, function, raw tail length,
/// whether the tail is text.
pub(crate) const CALL_FIELDS: usize = 33;

/// Bytes of an outcome message before the result: id, status, run time, raw tail length, whether
/// the tail is text.
pub(crate) const OUTCOME_FIELDS: usize = 26;

/// The largest message buffer either side keeps between messages. A fresh buffer costs a page
/// fault per 4 KiB, so buffers are reused; one grown for a huge payload is let go beyond this.
pub(crate) const KEEP_BUFFER: usize = 64 << 20;

/// What the 4 GiB frame limit means for a result, in the message that replaces it.
const RESULT_TOO_LARGE: &[u8] = b"the result is larger than the 4 GiB message limit";

/// The most bytes a call's encoded arguments may take: a frame, less room for the fixed fields of
/// any message that carries them (a call's [`CALL_FIELDS`], or the hello that carries a Process
/// pool's initializer, 65 bytes).
pub(crate) const MAX_ARGUMENTS: usize = wire::MAX_FRAME - 1024;

/// Refuses arguments that no message can carry, saying so in the terms the result side uses.
/// Checked where the arguments are encoded, at `submit`, so that such a call fails there, alone,
/// and is never sent.
pub(crate) fn check_arguments_len(len: usize) -> Result<(), String> {
    if len > MAX_ARGUMENTS {
        return Err(format!(
            "the arguments are larger than the 4 GiB message limit: {len} bytes"
        ));
    }
    Ok(())
}

/// The fixed fields of a call message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallHead {
    /// Numbers the call on its worker's channel; its outcome carries it back.
    pub(crate) id: u64,
    /// Offsets from the executable's anchor (see `remote::executable::offset_of`).
    pub(crate) trampoline: i64,
    pub(crate) function: i64,
    /// The last `tail_len` bytes of the arguments are a raw byte vector (see `wire::Parts`).
    pub(crate) tail_len: u64,
    /// The tail is a string's bytes, which the worker checks as they arrive (see `tail`).
    pub(crate) text: bool,
}

impl CallHead {
    /// Appends the frame header and these fields for a call whose arguments, `arguments_len`
    /// bytes, follow. `false`, with nothing written, if the call would not fit in a frame.
    pub(crate) fn write(&self, arguments_len: usize, out: &mut Vec<u8>) -> bool {
        if arguments_len > wire::MAX_FRAME - CALL_FIELDS {
            return false;
        }
        wire::write_header(out, Kind::Call, CALL_FIELDS + arguments_len)
            .expect("checked against the frame limit just above");
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.trampoline.to_le_bytes());
        out.extend_from_slice(&self.function.to_le_bytes());
        out.extend_from_slice(&self.tail_len.to_le_bytes());
        out.push(u8::from(self.text));
        true
    }

    /// Reads the fields at the start of a call's payload; gives them and the rest (the arguments,
    /// of which the last `tail_len` bytes are the raw tail, when the whole call is at hand).
    pub(crate) fn parse(payload: &[u8]) -> Result<(CallHead, &[u8]), ReadError> {
        let mut fields = Fields::new(payload);
        let id = fields.u64("call id")?;
        let trampoline = fields.i64("trampoline")?;
        let function = fields.i64("function")?;
        let tail_len = fields.u64("tail length")?;
        let head = CallHead {
            id,
            trampoline,
            function,
            tail_len,
            text: text_field(&mut fields, tail_len)?,
        };
        Ok((head, fields.rest()))
    }

    /// Splits a whole call's arguments into the encoded values and the raw tail (for a call read
    /// whole; the workers stream the tail into a buffer of its own, see [`read_call`]).
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub(crate) fn split_tail<'a>(&self, rest: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ReadError> {
        split_tail(Kind::Call, self.tail_len, rest)
    }
}

/// A call read from a stream: its fields, with its arguments in the caller's buffer after
/// `CALL_FIELDS` bytes, and its raw tail in a vector of its own, which the function then receives
/// without another copy.
pub(crate) struct CallMessage {
    pub(crate) head: CallHead,
    pub(crate) tail: Option<Tail>,
}

/// A channel beside the stream for large raw tails (the Process backend's shared-memory ring): a
/// tail it [carries](TailChannel::carries) is not in the stream, though the frame's length still
/// counts it, and comes through the channel after the message's head. Both sides know whether
/// the channel exists and apply the same rule, so no message says which way its tail went.
pub(crate) trait TailChannel {
    /// Whether a tail of `len` bytes comes through this channel.
    fn carries(&self, len: usize) -> bool;
    /// Receives the next tail, of `len` bytes, into a vector of its own (as
    /// `buffer::read_fresh` would read it from the stream); if the sender said it is `text`,
    /// checks it as it arrives, and gives [`Tail::Text`] if it is UTF-8.
    fn receive(&mut self, len: usize, text: bool) -> Result<Tail, ReadError>;
}

/// Reads one call message from `reader`: the fields and encoded arguments into `payload`, and the
/// raw tail (the bytes of a trailing `Vec<u8>` argument) straight into a vector of its own, from
/// `reader` or from `side` if it carries it.
pub(crate) fn read_call(
    reader: &mut impl Read,
    payload: &mut Vec<u8>,
    side: Option<&mut dyn TailChannel>,
) -> Result<CallMessage, ReadError> {
    let (kind, len) = wire::read_header(reader)?;
    if kind != Kind::Call {
        return Err(ReadError::Malformed(format!(
            "unexpected {kind:?} message from the pool"
        )));
    }
    let (head, tail) = read_with_tail(reader, Kind::Call, len, payload, side, |fields| {
        CallHead::parse(fields).map(|(head, _)| (head, head.tail_len, head.text))
    })?;
    Ok(CallMessage { head, tail })
}

/// The fixed fields of an outcome message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutcomeHead {
    /// The id of the call this answers.
    pub(crate) id: u64,
    pub(crate) status: CallStatus,
    /// The call's run time in the worker, which sizes the window of calls in flight.
    pub(crate) elapsed_ns: u64,
    /// The last `tail_len` bytes of the result are a raw byte vector or string (see
    /// `call::CallOutput`), which the pool reads into a vector of its own.
    pub(crate) tail_len: u64,
    /// The tail is a string's bytes, which the pool checks as they arrive (see `tail`).
    pub(crate) text: bool,
}

impl OutcomeHead {
    /// Appends the frame header and these fields (the tail's length and kind are `output`'s);
    /// `output` (the result or message, then its raw tail) follows them. A result over the frame
    /// limit is replaced by a message saying so, as a transport error.
    pub(crate) fn write(mut self, frame: &mut Vec<u8>, output: &mut CallOutput) {
        if output.bytes.len() + output.tail_len() > wire::MAX_FRAME - OUTCOME_FIELDS {
            output.set_message(RESULT_TOO_LARGE);
            self.status = CallStatus::Transport;
        }
        self.tail_len = output.tail_len() as u64;
        self.text = output.tail.as_ref().is_some_and(Tail::is_text);
        let len = OUTCOME_FIELDS + output.bytes.len() + output.tail_len();
        wire::write_header(frame, Kind::Outcome, len)
            .expect("checked against the frame limit just above");
        frame.extend_from_slice(&self.id.to_le_bytes());
        frame.push(self.status as u8);
        frame.extend_from_slice(&self.elapsed_ns.to_le_bytes());
        frame.extend_from_slice(&self.tail_len.to_le_bytes());
        frame.push(u8::from(self.text));
    }

    /// Reads the fields at the start of an outcome's payload; gives them and the rest (the
    /// result or message, of which the last `tail_len` bytes are the raw tail when the whole
    /// outcome is at hand).
    pub(crate) fn parse(payload: &[u8]) -> Result<(OutcomeHead, &[u8]), ReadError> {
        let mut fields = Fields::new(payload);
        let id = fields.u64("call id")?;
        let status = fields.u8("status")?;
        let elapsed_ns = fields.u64("run time")?;
        let tail_len = fields.u64("tail length")?;
        let text = text_field(&mut fields, tail_len)?;
        let status = CallStatus::from_byte(status)
            .ok_or_else(|| ReadError::Malformed(format!("unknown call status {status}")))?;
        if tail_len > 0 && status != CallStatus::Returned {
            return Err(ReadError::Malformed(format!(
                "a raw tail with a {status:?} outcome"
            )));
        }
        let head = OutcomeHead {
            id,
            status,
            elapsed_ns,
            tail_len,
            text,
        };
        Ok((head, fields.rest()))
    }

    /// Splits a whole outcome's result into the encoded part and the raw tail (for an outcome
    /// read whole; the Process pool streams the tail into a vector of its own, see
    /// [`read_outcome`]).
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub(crate) fn split_tail<'a>(&self, rest: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ReadError> {
        split_tail(Kind::Outcome, self.tail_len, rest)
    }
}

/// Reads the payload of an outcome frame of `len` bytes whose header was just read: the fields and
/// the encoded result into `payload` (replacing its contents), and the raw tail, if any, straight
/// into a vector of its own (from `reader`, or from `side` if it carries it), which the future
/// then receives without another copy.
pub(crate) fn read_outcome(
    reader: &mut impl Read,
    len: usize,
    payload: &mut Vec<u8>,
    side: Option<&mut dyn TailChannel>,
) -> Result<(OutcomeHead, Option<Tail>), ReadError> {
    read_with_tail(reader, Kind::Outcome, len, payload, side, |fields| {
        OutcomeHead::parse(fields).map(|(head, _)| (head, head.tail_len, head.text))
    })
}

/// The field that says whether a tail of `tail_len` bytes is text: 0 or 1, and 0 without a tail
/// (so that each message has one encoding).
fn text_field(fields: &mut Fields<'_>, tail_len: u64) -> Result<bool, ReadError> {
    match (fields.u8("tail kind")?, tail_len) {
        (0, _) => Ok(false),
        (1, 1..) => Ok(true),
        (1, 0) => Err(ReadError::Malformed("a text tail of no bytes".to_string())),
        (other, _) => Err(ReadError::Malformed(format!("unknown tail kind {other}"))),
    }
}

/// The fixed fields' length of a call or outcome message, and how the message is named in errors.
fn named(kind: Kind) -> (usize, &'static str, &'static str) {
    match kind {
        Kind::Call => (CALL_FIELDS, "a call", "call"),
        _ => (OUTCOME_FIELDS, "an outcome", "outcome"),
    }
}

fn tail_too_long(kind: Kind, tail_len: u64) -> ReadError {
    let (_, a, noun) = named(kind);
    ReadError::Malformed(format!(
        "{a}'s tail of {tail_len} bytes is longer than the {noun}"
    ))
}

/// Splits the rest of a whole call or outcome (after its fields) into the encoded part and the
/// raw tail of `tail_len` bytes.
fn split_tail(kind: Kind, tail_len: u64, rest: &[u8]) -> Result<(&[u8], &[u8]), ReadError> {
    let head_len = usize::try_from(tail_len)
        .ok()
        .and_then(|tail_len| rest.len().checked_sub(tail_len))
        .ok_or_else(|| tail_too_long(kind, tail_len))?;
    Ok(rest.split_at(head_len))
}

/// Reads the payload of a call or outcome frame of `len` bytes whose header was just read: the
/// fixed fields (which `parse` reads, giving the head, its tail's length and whether it is text)
/// and the encoded part into `payload` (replacing its contents), and the raw tail, if any,
/// straight into a vector of its own, which the function or the future then receives without
/// another copy: from `reader`, after the encoded part, or from `side` if it carries a tail that
/// long.
fn read_with_tail<H>(
    reader: &mut impl Read,
    kind: Kind,
    len: usize,
    payload: &mut Vec<u8>,
    side: Option<&mut dyn TailChannel>,
    parse: impl FnOnce(&[u8]) -> Result<(H, u64, bool), ReadError>,
) -> Result<(H, Option<Tail>), ReadError> {
    let (fields, a, _) = named(kind);
    if len < fields {
        return Err(ReadError::Malformed(format!("{a} message was too short")));
    }
    payload.clear();
    wire::read_into(reader, payload, fields)?;
    let (head, tail_len, text) = parse(payload)?;
    let Some(head_len) = usize::try_from(tail_len)
        .ok()
        .and_then(|tail_len| (len - fields).checked_sub(tail_len))
    else {
        return Err(tail_too_long(kind, tail_len));
    };
    wire::read_into(reader, payload, head_len)?;
    let tail = match (tail_len as usize, side) {
        (0, _) => None,
        (len, Some(side)) if side.carries(len) => Some(side.receive(len, text)?),
        // Short enough to stay on the socket: a string's is checked when it is decoded.
        (len, _) => Some(Tail::Bytes(read_fresh(reader, len)?)),
    };
    Ok((head, tail))
}

/// Appends a whole frame to `out` (for short payloads: a hello, or its answer), for a backend that
/// gathers frames into messages (Mpi); Process streams them with `wire::write_frame`.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn write_frame_into(out: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    wire::write_header(out, kind, payload.len()).expect("short payloads fit in a frame");
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_head_round_trips_and_refuses_a_tail_longer_than_the_call() {
        let head = CallHead {
            id: 7,
            trampoline: -12,
            function: 34,
            tail_len: 3,
            text: true,
        };
        let mut frame = Vec::new();
        assert!(head.write(5, &mut frame));
        frame.extend_from_slice(b"ab123");
        let (kind, len) =
            wire::parse_header(frame[..wire::HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!((kind, len), (Kind::Call, CALL_FIELDS + 5));
        let (parsed, rest) = CallHead::parse(&frame[wire::HEADER_LEN..]).unwrap();
        assert_eq!(parsed, head);
        assert_eq!(parsed.split_tail(rest).unwrap(), (&b"ab"[..], &b"123"[..]));
        let long = CallHead {
            tail_len: 9,
            ..head
        };
        assert!(long.split_tail(rest).is_err());
        let mut streamed = Vec::new();
        let message = read_call(&mut &frame[..], &mut streamed, None).unwrap();
        assert_eq!(message.head, head);
        assert_eq!(&streamed[CALL_FIELDS..], b"ab");
        // Read from the stream, a tail said to be text is bytes until it is decoded.
        assert_eq!(message.tail, Some(Tail::Bytes(b"123".to_vec())));
        // The tail's kind is 0 or 1, and 0 when there is no tail.
        frame[wire::HEADER_LEN + CALL_FIELDS - 1] = 2;
        assert!(CallHead::parse(&frame[wire::HEADER_LEN..]).is_err());
        let mut no_tail = Vec::new();
        assert!(CallHead {
            tail_len: 0,
            ..head
        }
        .write(5, &mut no_tail));
        assert!(CallHead::parse(&no_tail[wire::HEADER_LEN..])
            .unwrap_err()
            .to_string()
            .contains("a text tail of no bytes"));
    }

    #[test]
    fn arguments_that_fit_a_call_message_are_accepted_and_larger_ones_refused() {
        assert!(check_arguments_len(0).is_ok());
        assert!(check_arguments_len(MAX_ARGUMENTS).is_ok());
        let mut frame = Vec::new();
        assert!(CallHead {
            id: 1,
            trampoline: 0,
            function: 0,
            tail_len: 0,
            text: false,
        }
        .write(MAX_ARGUMENTS, &mut frame));
        assert_eq!(
            check_arguments_len(MAX_ARGUMENTS + 1).unwrap_err(),
            format!(
                "the arguments are larger than the 4 GiB message limit: {} bytes",
                MAX_ARGUMENTS + 1
            )
        );
    }

    #[test]
    fn an_outcome_head_round_trips_and_refuses_an_unknown_status() {
        let head = OutcomeHead {
            id: 3,
            status: CallStatus::Panicked,
            elapsed_ns: 1_500,
            tail_len: 0,
            text: false,
        };
        let mut frame = Vec::new();
        let mut output = CallOutput {
            bytes: b"boom".to_vec(),
            tail: None,
        };
        head.write(&mut frame, &mut output);
        frame.extend_from_slice(&output.bytes);
        let (parsed, rest) = OutcomeHead::parse(&frame[wire::HEADER_LEN..]).unwrap();
        assert_eq!((parsed, rest), (head, &b"boom"[..]));
        frame[wire::HEADER_LEN + 8] = 9;
        assert!(OutcomeHead::parse(&frame[wire::HEADER_LEN..]).is_err());
    }

    #[test]
    fn an_outcome_with_a_raw_tail_streams_it_into_its_own_vector_and_refuses_a_bad_length() {
        let head = OutcomeHead {
            id: 4,
            status: CallStatus::Returned,
            elapsed_ns: 10,
            tail_len: 0,
            text: false,
        };
        let mut frame = Vec::new();
        let mut output = CallOutput {
            bytes: 3u64.to_le_bytes().to_vec(),
            tail: Some(Tail::Text("abc".to_string())),
        };
        head.write(&mut frame, &mut output);
        frame.extend_from_slice(&output.bytes);
        frame.extend_from_slice(output.tail.as_ref().unwrap().as_bytes());
        let mut input = &frame[..];
        let (kind, len) = wire::read_header(&mut input).unwrap();
        assert_eq!(kind, Kind::Outcome);
        let mut payload = Vec::new();
        let (parsed, tail) = read_outcome(&mut input, len, &mut payload, None).unwrap();
        assert_eq!(
            parsed,
            OutcomeHead {
                tail_len: 3,
                text: true,
                ..head
            }
        );
        assert_eq!(&payload[OUTCOME_FIELDS..], 3u64.to_le_bytes());
        assert_eq!(tail, Some(Tail::Bytes(b"abc".to_vec())));
        let (_, rest) = OutcomeHead::parse(&frame[wire::HEADER_LEN..]).unwrap();
        assert_eq!(parsed.split_tail(rest).unwrap().1, b"abc");
        // A tail longer than the frame, and a tail on a panic, are refused.
        let mut long = frame.clone();
        long[wire::HEADER_LEN + 17] = 200;
        let mut input = &long[..];
        let (_, len) = wire::read_header(&mut input).unwrap();
        assert!(matches!(
            read_outcome(&mut input, len, &mut payload, None),
            Err(ReadError::Malformed(_))
        ));
        let mut panicked = frame.clone();
        panicked[wire::HEADER_LEN + 8] = CallStatus::Panicked as u8;
        assert!(OutcomeHead::parse(&panicked[wire::HEADER_LEN..]).is_err());
    }
}
