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

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// First byte of every frame.
const MAGIC: u8 = 0xEC;
/// Bumped whenever a message's layout changes.
pub(crate) const VERSION: u8 = 1;
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
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Hello,
            2 => Kind::Ready,
            3 => Kind::Refused,
            4 => Kind::Call,
            5 => Kind::Outcome,
            _ => return None,
        })
    }
}

/// Encodes a value.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_allocvec(value)
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

/// Decodes a value, which must use all of `bytes`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!("{} unexpected bytes after the value", rest.len())),
        Err(error) => Err(error.to_string()),
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
    let (kind, len) = parse_header(&header)?;
    payload.clear();
    let mut remaining = len;
    while remaining > 0 {
        let step = remaining.min(READ_STEP);
        let start = payload.len();
        payload.resize(start + step, 0);
        if let Err(error) = input.read_exact(&mut payload[start..]) {
            return Err(ReadError::Io(error));
        }
        remaining -= step;
    }
    Ok(kind)
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
    fn values_decode_only_when_complete() {
        let bytes = encode(&("text".to_string(), 7u32)).unwrap();
        assert_eq!(
            decode::<(String, u32)>(&bytes).unwrap(),
            ("text".to_string(), 7)
        );
        assert!(decode::<(String, u32)>(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<(String, u32)>(&longer).is_err());
    }
}
