//! The wire format between a pool and its worker processes.
//!
//! Values (argument tuples, results) are encoded with serde and **postcard**, chosen by measurement
//! against bincode 2 and bitcode (see BENCHMARKS.md): postcard and bincode tie on small values, both
//! are 3–10× faster than bitcode's serde mode there, and postcard needs no configuration.
//!
//! Messages travel in frames: an 8-byte header (magic `0xEC`, protocol version, message kind, and
//! the payload length as a little-endian `u32`) followed by the payload. A reader checks all four
//! before it reads the payload, refuses lengths over [`MAX_FRAME`], and grows its buffer as bytes
//! arrive rather than allocating the length a corrupt header claims.

use std::any::{Any, TypeId};
use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::remote::buffer;
use crate::remote::custom_error::custom_message;
use crate::remote::tail::{self, Tail};

/// First byte of every frame.
const MAGIC: u8 = 0xEC;
/// Bumped whenever a message's layout changes. (Public through `__private` for the tests that
/// write frames by hand.)
pub const VERSION: u8 = 3;
/// The largest payload a frame may carry: 4 GiB - 1, what the length field holds.
pub(crate) const MAX_FRAME: usize = u32::MAX as usize;
/// Payloads are read in steps of at most this much, so a corrupt length costs no more memory than
/// the bytes that actually arrive.
const READ_STEP: usize = 1 << 24;

pub(crate) const HEADER_LEN: usize = 8;

/// The kinds of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Parent → worker, first frame: who the worker is and which executable the parent runs.
    Hello = 1,
    /// Worker → parent: the worker accepts (payload: its pid).
    Ready = 2,
    /// Worker → parent: the worker refuses (payload: why), then exits.
    Refused = 3,
    /// Parent → worker: a call (id, trampoline and function offsets, arguments).
    Call = 4,
    /// Worker → parent: a call's outcome (id, status, run time, result or message).
    Outcome = 5,
    /// Worker → parent, before `Ready` when the pool has an initializer: the hello was read and
    /// accepted, and the initializer runs now (empty payload). The pool's handshake timeout
    /// stops here, so an initializer may take as long as it needs.
    Accepted = 6,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Hello,
            2 => Kind::Ready,
            3 => Kind::Refused,
            4 => Kind::Call,
            5 => Kind::Outcome,
            6 => Kind::Accepted,
            _ => return None,
        })
    }
}

/// Appends the encoding of a value to `output`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    output: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    let buffer = std::mem::take(output);
    *output = postcard::to_extend(value, buffer)?;
    Ok(())
}

/// Appends one value (an argument or a result). A `Vec<u8>` or a `String` is copied as raw bytes
/// (a `u64` length, then the bytes): serde would encode a byte vector byte by byte, which caps a
/// 1 MiB argument at about 0.6 GB/s in every serde format measured, and a string's raw path lets a
/// large one travel as a raw tail, as a byte vector does. Other types go through serde and postcard.
pub(crate) fn encode_value<T: Serialize + 'static>(
    value: &T,
    output: &mut Vec<u8>,
) -> Result<(), String> {
    if let Some(bytes) = raw_bytes(value) {
        output.reserve(8 + bytes.len());
        output.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        output.extend_from_slice(bytes);
        return Ok(());
    }
    encode_into(value, output).map_err(|e| explain(e, value))
}

/// Whether values of type `T` cross as raw bytes: `Vec<u8>` and `String`.
pub(crate) fn is_raw<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<Vec<u8>>() || TypeId::of::<T>() == TypeId::of::<String>()
}

/// The bytes of a value that crosses raw (see [`is_raw`]).
fn raw_bytes<T: 'static>(value: &T) -> Option<&[u8]> {
    let value = value as &dyn Any;
    if let Some(bytes) = value.downcast_ref::<Vec<u8>>() {
        return Some(bytes);
    }
    value.downcast_ref::<String>().map(String::as_bytes)
}

/// The buffer of a value that crosses raw (see [`is_raw`]), taken without a copy: a string's
/// buffer as [`Tail::Text`]. Other values are given back.
pub(crate) fn into_raw<T: 'static>(value: T) -> Result<Tail, T> {
    let value = match cast::<Vec<u8>, T>(value) {
        Ok(bytes) => return Ok(Tail::Bytes(bytes)),
        Err(value) => value,
    };
    cast::<String, T>(value).map(Tail::Text)
}

/// A value that crosses raw (see [`is_raw`]) from its tail, without a copy. A string from
/// [`Tail::Bytes`] is checked to be UTF-8 here (see `tail`), so corrupt bytes give an error.
fn from_raw<T: 'static>(tail: Tail) -> Result<T, String> {
    let bytes = match tail {
        Tail::Text(text) => match cast::<T, String>(text) {
            Ok(value) => return Ok(value),
            Err(text) => text.into_bytes(),
        },
        Tail::Bytes(bytes) => bytes,
    };
    let bytes = match cast::<T, Vec<u8>>(bytes) {
        Ok(value) => return Ok(value),
        Err(bytes) => bytes,
    };
    let text = tail::into_text(bytes).map_err(|error| format!("a string is not UTF-8: {error}"))?;
    cast::<T, String>(text)
        .map_err(|_| format!("{} does not cross as raw bytes", std::any::type_name::<T>()))
}

/// `value` as a `T`, if `U` is `T`; `value` back otherwise.
fn cast<T: 'static, U: 'static>(value: U) -> Result<T, U> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>() {
        Some(value) => Ok(value.take().expect("just filled")),
        None => Err(slot.expect("not taken")),
    }
}

/// Why `value` could not be encoded: postcard's message, except for an error that the value's own
/// `Serialize` raised, whose message postcard drops ("Serde Serialization Error"): that message is
/// found again (see `custom_error`; this runs the `Serialize` a second time).
fn explain<T: Serialize + ?Sized>(error: postcard::Error, value: &T) -> String {
    if matches!(error, postcard::Error::SerdeSerCustom) {
        if let Some(message) = custom_message(value) {
            return message;
        }
    }
    error.to_string()
}

/// An encoded message kept in parts, so that a large byte vector is sent from the caller's own
/// buffer instead of being copied into the message.
#[derive(Debug, Default)]
#[doc(hidden)]
pub struct Parts {
    parts: Vec<Vec<u8>>,
    /// Whether the last part is a byte vector's own buffer (the message's *raw tail*, which a
    /// worker reads straight into the vector it hands to the function).
    raw_last: bool,
    /// Whether that raw tail is a string's bytes, which the receiver checks as they arrive.
    raw_text: bool,
}

/// Byte vectors and strings at least this long become parts of their own (a raw tail when last).
pub(crate) const OWN_PART: usize = 1 << 14;

impl Parts {
    /// Appends one value, as [`encode_value`] would, taking ownership of a `Vec<u8>` or `String`.
    pub(crate) fn push_value<T: Serialize + 'static>(&mut self, value: T) -> Result<(), String> {
        match into_raw(value) {
            Ok(tail) if tail.len() >= OWN_PART => {
                self.encoded()
                    .extend_from_slice(&(tail.len() as u64).to_le_bytes());
                self.raw_text = tail.is_text();
                self.parts.push(tail.into_bytes());
                self.raw_last = true;
                Ok(())
            }
            Ok(tail) => encode_value(&tail.into_bytes(), self.encoded()),
            Err(value) => encode_value(&value, self.encoded()),
        }
    }

    /// Appends a byte slice as raw bytes (what a `Vec<u8>`, or a `String` if they are UTF-8,
    /// decodes from), copying it; `text` if they are a `str`'s.
    pub(crate) fn push_bytes(&mut self, bytes: &[u8], text: bool) {
        if bytes.len() >= OWN_PART {
            self.encoded()
                .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            // A buffer of its own, advised for huge pages when large: a fresh 64 MiB on 4 KiB
            // pages costs 16,384 page faults (see `buffer`).
            self.parts.push(buffer::copy_fresh(bytes));
            self.raw_last = true;
            self.raw_text = text;
        } else {
            let encoded = self.encoded();
            encoded.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            encoded.extend_from_slice(bytes);
        }
    }

    /// The part that encoded values are appended to.
    fn encoded(&mut self) -> &mut Vec<u8> {
        if self.parts.is_empty() || self.raw_last {
            self.parts.push(Vec::new());
            self.raw_last = false;
        }
        self.parts.last_mut().expect("not empty")
    }

    /// The length of the raw tail: the last byte vector's bytes, when nothing follows them.
    pub(crate) fn raw_tail_len(&self) -> usize {
        match self.parts.last() {
            Some(last) if self.raw_last => last.len(),
            _ => 0,
        }
    }

    /// Whether the raw tail, if any, is a string's bytes.
    pub(crate) fn raw_tail_is_text(&self) -> bool {
        self.raw_last && self.raw_text
    }

    /// The parts, in order.
    pub(crate) fn parts(&self) -> &[Vec<u8>] {
        &self.parts
    }

    /// The total length.
    pub(crate) fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    /// The whole message in one buffer.
    pub(crate) fn concat(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

/// Takes one value written by [`encode_value`] off the front of `input`. Raw bytes (a byte vector
/// or a string) that are the message's raw tail (see [`Parts::raw_tail_len`]) are taken from
/// `tail` without a copy.
pub(crate) fn decode_value<T: DeserializeOwned + 'static>(
    input: &mut &[u8],
    tail: &mut Option<Tail>,
) -> Result<T, String> {
    if is_raw::<T>() {
        let Some((len, rest)) = input.split_first_chunk::<8>() else {
            return Err("the input ends inside a length".to_string());
        };
        let len = u64::from_le_bytes(*len);
        if rest.is_empty() && tail.as_ref().is_some_and(|t| t.len() as u64 == len) {
            *input = rest;
            return from_raw(tail.take().expect("checked"));
        }
        if len > rest.len() as u64 {
            return Err(format!(
                "a byte vector claims {len} bytes but {} remain",
                rest.len()
            ));
        }
        let (bytes, rest) = rest.split_at(len as usize);
        *input = rest;
        return from_raw(Tail::Bytes(bytes.to_vec()));
    }
    let (value, rest) = postcard::take_from_bytes(input).map_err(|e| e.to_string())?;
    *input = rest;
    Ok(value)
}

/// Decodes a whole message holding one value written by [`encode_value`].
pub(crate) fn decode_whole<T: DeserializeOwned + 'static>(input: &[u8]) -> Result<T, String> {
    decode_with_tail(input, None)
}

/// Decodes a whole message holding one value written by [`encode_value`], whose last bytes may
/// come as a raw tail of their own (a large byte vector or string result).
pub(crate) fn decode_with_tail<T: DeserializeOwned + 'static>(
    mut input: &[u8],
    mut tail: Option<Tail>,
) -> Result<T, String> {
    let value = decode_value(&mut input, &mut tail)?;
    match (input.len(), tail) {
        (0, None) => Ok(value),
        (extra, None) => Err(format!("{extra} unexpected bytes after the value")),
        (_, Some(tail)) => Err(format!("{} unexpected bytes after the value", tail.len())),
    }
}

/// Writes the header of a frame whose payload is `len` bytes.
pub(crate) fn write_header(out: &mut Vec<u8>, kind: Kind, len: usize) -> io::Result<()> {
    let len = u32::try_from(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a message of {len} bytes is over the limit of {MAX_FRAME} bytes"),
        )
    })?;
    out.extend_from_slice(&[MAGIC, VERSION, kind as u8, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Writes one whole frame.
pub(crate) fn write_frame(out: &mut impl Write, kind: Kind, payload: &[u8]) -> io::Result<()> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    write_header(&mut header, kind, payload.len())?;
    out.write_all(&header)?;
    out.write_all(payload)
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The other side closed the channel between frames.
    Closed,
    /// An I/O error, or the channel closed in the middle of a frame.
    Io(io::Error),
    /// The bytes are not a frame of this protocol.
    Malformed(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed => f.write_str("the channel was closed"),
            ReadError::Io(error) => write!(f, "reading the channel failed: {error}"),
            ReadError::Malformed(why) => write!(f, "malformed message: {why}"),
        }
    }
}

/// Reads one frame into `payload` (replacing its contents) and returns its kind.
pub(crate) fn read_frame(input: &mut impl Read, payload: &mut Vec<u8>) -> Result<Kind, ReadError> {
    let (kind, len) = read_header(input)?;
    payload.clear();
    read_into(input, payload, len)?;
    Ok(kind)
}

/// Reads and checks a frame header; gives the kind and the payload length.
pub(crate) fn read_header(input: &mut impl Read) -> Result<(Kind, usize), ReadError> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match input.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Err(ReadError::Closed),
            Ok(0) => {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the channel closed inside a frame header",
                )))
            }
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(ReadError::Io(error)),
        }
    }
    parse_header(&header)
}

/// Appends exactly `len` bytes from `input` to `buffer`, growing it in steps.
pub(crate) fn read_into(
    input: &mut impl Read,
    buffer: &mut Vec<u8>,
    len: usize,
) -> Result<(), ReadError> {
    let mut remaining = len;
    while remaining > 0 {
        let step = remaining.min(READ_STEP);
        buffer.reserve_exact(step);
        // `read_to_end` fills the spare capacity without zeroing it first.
        match input.by_ref().take(step as u64).read_to_end(buffer) {
            Ok(got) if got == step => remaining -= step,
            Ok(_) => {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the channel closed inside a frame",
                )))
            }
            Err(error) => return Err(ReadError::Io(error)),
        }
    }
    Ok(())
}

/// Checks a header; gives the kind and payload length.
pub(crate) fn parse_header(header: &[u8; HEADER_LEN]) -> Result<(Kind, usize), ReadError> {
    if header[0] != MAGIC {
        return Err(ReadError::Malformed(format!(
            "bad magic byte {:#04x}",
            header[0]
        )));
    }
    if header[1] != VERSION {
        return Err(ReadError::Malformed(format!(
            "protocol version {} (this side speaks {VERSION})",
            header[1]
        )));
    }
    let kind = Kind::from_byte(header[2])
        .ok_or_else(|| ReadError::Malformed(format!("unknown message kind {}", header[2])))?;
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    Ok((kind, len))
}

/// A cursor over a payload, for the fixed-layout parts of messages.
pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Fields { bytes }
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ReadError> {
        if self.bytes.len() < N {
            return Err(ReadError::Malformed(format!(
                "message too short for {what}"
            )));
        }
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        Ok(head.try_into().expect("split at N"))
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, ReadError> {
        Ok(self.take::<1>(what)?[0])
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.take::<8>(what)?))
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, ReadError> {
        Ok(i64::from_le_bytes(self.take::<8>(what)?))
    }

    /// Everything not read yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips() {
        let mut channel = Vec::new();
        write_frame(&mut channel, Kind::Call, b"payload").unwrap();
        let mut payload = Vec::new();
        let kind = read_frame(&mut channel.as_slice(), &mut payload).unwrap();
        assert_eq!(kind, Kind::Call);
        assert_eq!(payload, b"payload");
    }

    #[test]
    fn end_of_input_between_frames_is_closed_and_inside_one_is_an_error() {
        let mut payload = Vec::new();
        assert!(matches!(
            read_frame(&mut &b""[..], &mut payload),
            Err(ReadError::Closed)
        ));
        let mut channel = Vec::new();
        write_frame(&mut channel, Kind::Call, b"payload").unwrap();
        for cut in 1..channel.len() {
            assert!(matches!(
                read_frame(&mut &channel[..cut], &mut payload),
                Err(ReadError::Io(_))
            ));
        }
    }

    #[test]
    fn a_bad_header_is_refused_before_the_payload_is_read() {
        let mut payload = Vec::new();
        let bad_magic = [0u8, VERSION, Kind::Call as u8, 0, 0, 0, 0, 0];
        let bad_version = [MAGIC, VERSION + 1, Kind::Call as u8, 0, 0, 0, 0, 0];
        let bad_kind = [MAGIC, VERSION, 99, 0, 0, 0, 0, 0];
        for header in [bad_magic, bad_version, bad_kind] {
            assert!(matches!(
                read_frame(&mut &header[..], &mut payload),
                Err(ReadError::Malformed(_))
            ));
        }
    }

    #[test]
    fn a_huge_claimed_length_does_not_allocate_it() {
        // Claims 4 GiB and delivers 10 bytes: the read fails after allocating one step at most.
        let mut channel = vec![MAGIC, VERSION, Kind::Call as u8, 0, 0xff, 0xff, 0xff, 0xff];
        channel.extend_from_slice(&[0; 10]);
        let mut payload = Vec::new();
        assert!(matches!(
            read_frame(&mut channel.as_slice(), &mut payload),
            Err(ReadError::Io(_))
        ));
        assert!(payload.capacity() <= READ_STEP);
    }

    #[test]
    fn byte_vectors_take_the_raw_path_and_round_trip() {
        let mut output = Vec::new();
        encode_value(&vec![1u8, 2, 3], &mut output).unwrap();
        encode_value(&"after".to_string(), &mut output).unwrap();
        assert_eq!(&output[..11], &[3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
        let mut input = output.as_slice();
        let mut no_tail = None;
        assert_eq!(
            decode_value::<Vec<u8>>(&mut input, &mut no_tail).unwrap(),
            vec![1, 2, 3]
        );
        assert_eq!(
            decode_value::<String>(&mut input, &mut no_tail).unwrap(),
            "after"
        );
        assert!(input.is_empty());
        let claims_too_much = [9u8, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(decode_whole::<Vec<u8>>(&claims_too_much).is_err());
        assert!(decode_whole::<Vec<u8>>(&[1, 0]).is_err());
    }

    #[test]
    fn parts_encode_as_one_message_would() {
        let big = vec![5u8; OWN_PART];
        let mut parts = Parts::default();
        parts.push_value(1u32).unwrap();
        parts.push_value(big.clone()).unwrap();
        parts.push_value(vec![1u8, 2]).unwrap();
        let mut flat = Vec::new();
        encode_value(&1u32, &mut flat).unwrap();
        encode_value(&big, &mut flat).unwrap();
        encode_value(&vec![1u8, 2], &mut flat).unwrap();
        assert_eq!(parts.concat(), flat);
        assert_eq!(parts.len(), flat.len());
        assert!(parts.parts().iter().any(|part| part.len() == OWN_PART));
        assert_eq!(parts.raw_tail_len(), 0, "a small value follows the big one");
    }

    #[test]
    fn a_trailing_byte_vector_is_a_raw_tail_taken_without_a_copy() {
        let big = vec![5u8; OWN_PART];
        let mut parts = Parts::default();
        parts.push_value("head".to_string()).unwrap();
        parts.push_value(big.clone()).unwrap();
        assert_eq!(parts.raw_tail_len(), OWN_PART);
        let flat = parts.concat();
        let (head, tail) = flat.split_at(flat.len() - OWN_PART);
        let mut input = head;
        let mut tail = Some(Tail::Bytes(tail.to_vec()));
        let tail_buffer = tail.as_ref().unwrap().as_bytes().as_ptr();
        assert_eq!(
            decode_value::<String>(&mut input, &mut tail).unwrap(),
            "head"
        );
        let bytes = decode_value::<Vec<u8>>(&mut input, &mut tail).unwrap();
        assert_eq!(bytes, big);
        assert_eq!(bytes.as_ptr(), tail_buffer, "the tail's buffer itself");
        assert!(tail.is_none() && input.is_empty());
    }

    #[test]
    fn a_trailing_string_is_a_text_tail_that_decodes_as_a_string_or_bytes_without_a_copy() {
        let big = "é".repeat(OWN_PART);
        let mut parts = Parts::default();
        parts.push_value(big.clone()).unwrap();
        assert!(parts.raw_tail_is_text());
        let mut borrowed = Parts::default();
        borrowed.push_bytes(big.as_bytes(), true);
        assert!(borrowed.raw_tail_is_text());
        borrowed.push_value(1u8).unwrap();
        assert!(!borrowed.raw_tail_is_text(), "a value follows: no raw tail");
        let length = (big.len() as u64).to_le_bytes();
        for as_string in [true, false] {
            let tail = Tail::Text(big.clone());
            let buffer = tail.as_bytes().as_ptr();
            let decoded = if as_string {
                decode_with_tail::<String>(&length, Some(tail))
                    .unwrap()
                    .into_bytes()
            } else {
                decode_with_tail::<Vec<u8>>(&length, Some(tail)).unwrap()
            };
            assert_eq!(decoded, big.as_bytes());
            assert_eq!(decoded.as_ptr(), buffer, "the tail's buffer itself");
        }
    }

    #[test]
    fn a_custom_serialize_error_keeps_its_own_message() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("my message"))
            }
        }
        let mut output = Vec::new();
        assert_eq!(
            encode_value(&(1u8, Refuses), &mut output).unwrap_err(),
            "my message"
        );
        let mut parts = Parts::default();
        assert_eq!(parts.push_value(Some(Refuses)).unwrap_err(), "my message");
    }

    #[test]
    fn values_decode_only_when_complete() {
        let mut bytes = Vec::new();
        encode_value(&("text".to_string(), 7u32), &mut bytes).unwrap();
        assert_eq!(
            decode_whole::<(String, u32)>(&bytes).unwrap(),
            ("text".to_string(), 7)
        );
        assert!(decode_whole::<(String, u32)>(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_whole::<(String, u32)>(&longer).is_err());
    }
}
