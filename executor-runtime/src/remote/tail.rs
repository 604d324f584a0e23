//! A message's raw tail: the bytes of a large `Vec<u8>` or `String` that is the last value of a
//! call's arguments or an outcome's result, which cross in a buffer of their own (see
//! `wire::Parts`) and become the value without another copy.
//!
//! A string's bytes are checked to be UTF-8 once they are in the receiver's own memory. Checked
//! whole by std after the last byte had arrived, a 64 MiB ASCII string took 11.1 ms (6.0 GB/s:
//! its bytes had left the cache). Checked in the 512 KiB chunks the Process ring delivers, right
//! after each chunk's copy, std added 4.1 ms to the copies and simdutf8 (SIMD, chosen at run
//! time) 2.6 ms; for 64 MiB of mixed text (accents, symbols, emoji) std added 75 ms and
//! simdutf8 8.5 (a standalone probe on the Intel Xeon of BENCHMARKS.md). So the sender says
//! whether a tail is a string's (the `text` field of `protocol::CallHead` and
//! `protocol::OutcomeHead`), a receiver that copies the tail chunk by chunk checks each one with
//! simdutf8 as it lands ([`Utf8Check`]), and the tail it gives is [`Tail::Text`], which decodes
//! as a `String` as it is. The field is only a hint: a tail said to be text that is not UTF-8
//! stays [`Tail::Bytes`], and a `String` decoded from bytes is checked then, so a faulty peer
//! gets an error, never a `String` that is not UTF-8.

/// A raw tail, as the receiver holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Bytes, not known to be UTF-8.
    Bytes(Vec<u8>),
    /// A string's bytes, checked.
    Text(String),
}

impl Tail {
    /// The tail's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the tail is a string's bytes.
    pub(crate) fn is_text(&self) -> bool {
        matches!(self, Tail::Text(_))
    }

    /// The tail's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Tail::Bytes(bytes) => bytes,
            Tail::Text(text) => text.as_bytes(),
        }
    }

    /// The tail's buffer, without a copy.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        match self {
            Tail::Bytes(bytes) => bytes,
            Tail::Text(text) => text.into_bytes(),
        }
    }
}

/// Checks a buffer for UTF-8 as it grows, the new bytes of each step while they are in the cache.
#[derive(Debug, Default)]
pub(crate) struct Utf8Check {
    /// The bytes checked so far: whole characters.
    checked: usize,
    /// A byte that no character can hold was found: the buffer is not UTF-8.
    broken: bool,
}

impl Utf8Check {
    /// Checks what `buffer` gained since the last call. A character split between two steps is
    /// checked whole with the next. `buffer` must begin with the bytes it held at the last call.
    pub(crate) fn advance(&mut self, buffer: &[u8]) {
        if self.broken {
            return;
        }
        match simdutf8::compat::from_utf8(&buffer[self.checked..]) {
            Ok(_) => self.checked = buffer.len(),
            // The step ends inside a character: its first bytes are checked with the next step.
            Err(error) if error.error_len().is_none() => self.checked += error.valid_up_to(),
            Err(_) => self.broken = true,
        }
    }

    /// The filled buffer as a tail: [`Tail::Text`] if every byte of it was checked and found
    /// UTF-8, [`Tail::Bytes`] otherwise.
    ///
    /// # Safety
    /// `buffer` must begin with the bytes that [`advance`](Self::advance) checked, unchanged
    /// since (the vector may have moved or grown: only its bytes count); so each `advance` must
    /// have been given the same bytes as the one before, and more.
    pub(crate) unsafe fn finish(self, buffer: Vec<u8>) -> Tail {
        if self.broken || self.checked != buffer.len() {
            return Tail::Bytes(buffer);
        }
        // SAFETY: `advance` checked `buffer[..checked]` as consecutive runs of whole characters,
        // each of which simdutf8 accepted (a full UTF-8 check, as strict as std's: overlong
        // forms, surrogates and code points past U+10FFFF are refused; see the tests below), and
        // UTF-8 runs that end on character boundaries join into UTF-8. `checked` is the whole
        // buffer's length, and the caller guarantees that those bytes are the ones checked.
        Tail::Text(unsafe { String::from_utf8_unchecked(buffer) })
    }
}

/// `bytes` copied into a buffer of their own `step` bytes at a time and checked after each step, as
/// a receiver checks a tail (for the tests and the fuzz targets).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn checked_in_steps(bytes: &[u8], step: usize) -> Tail {
    let mut check = Utf8Check::default();
    let mut buffer = Vec::with_capacity(bytes.len());
    for piece in bytes.chunks(step) {
        buffer.extend_from_slice(piece);
        check.advance(&buffer);
    }
    // SAFETY: `buffer` grew only by appending, and every step was given to `advance`.
    unsafe { check.finish(buffer) }
}

/// `bytes` as a `String` if they are UTF-8 (checked as [`Utf8Check`] checks them), without a copy.
pub(crate) fn into_text(bytes: Vec<u8>) -> Result<String, std::str::Utf8Error> {
    let mut check = Utf8Check::default();
    check.advance(&bytes);
    // SAFETY: the check was given all of `bytes`, unchanged since.
    match unsafe { check.finish(bytes) } {
        Tail::Text(text) => Ok(text),
        // std's error says where the fault lies, in std's words.
        Tail::Bytes(bytes) => String::from_utf8(bytes).map_err(|error| error.utf8_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_split_inside_characters_is_checked_whole_and_becomes_a_string() {
        // 1-, 2-, 3- and 4-byte characters, cut at every offset by steps of 1 to 7 bytes (std's
        // path: simdutf8 hands inputs under 64 bytes to std), 64 to 70 and 1000 (the SIMD path).
        let text = "aé€😀".repeat(500);
        for step in (1..8).chain(64..71).chain([1000]) {
            assert_eq!(
                checked_in_steps(text.as_bytes(), step),
                Tail::Text(text.clone()),
                "steps of {step}"
            );
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_stay_bytes_wherever_the_fault_lies() {
        let text = "aé€😀".repeat(20).into_bytes();
        for at in [0, 1, text.len() / 2, text.len() - 1] {
            let mut bad = text.clone();
            bad[at] = 0xff;
            for step in [1, 3, 64] {
                assert_eq!(
                    checked_in_steps(&bad, step),
                    Tail::Bytes(bad.clone()),
                    "0xff at {at}, steps of {step}"
                );
            }
        }
    }

    #[test]
    fn the_check_refuses_what_std_refuses() {
        // Overlong forms, surrogates, past U+10FFFF, stray continuation bytes, bytes never used,
        // and sequences cut short before another character.
        let faults: [&[u8]; 9] = [
            b"\xc0\x80",
            b"\xe0\x80\x80",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\x80",
            b"\xfe",
            b"\xff",
            b"\xe2\x82a",
            b"\xf0\x9f\x98a",
        ];
        for fault in faults {
            // Alone, and inside 100 bytes of ASCII (so that the SIMD path reads it).
            let long = [&[b'x'; 50][..], fault, &[b'y'; 50][..]].concat();
            for bytes in [fault.to_vec(), long] {
                assert!(std::str::from_utf8(&bytes).is_err());
                assert_eq!(checked_in_steps(&bytes, 64), Tail::Bytes(bytes.clone()));
                let error = into_text(bytes.clone()).unwrap_err();
                assert_eq!(error, std::str::from_utf8(&bytes).unwrap_err());
            }
        }
        // Every 1- and 2-byte sequence, and 3-byte ones from 0xe0 to 0xef, against std, inside
        // 64 bytes of ASCII: simdutf8 hands inputs under 64 bytes to std, so shorter ones would
        // compare std with itself.
        let mut bytes = vec![b'x'; 64];
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for sequence in [&[a][..], &[a, b], &[0xe0 | (a & 0x0f), b, a]] {
                    bytes.truncate(32);
                    bytes.extend_from_slice(sequence);
                    bytes.resize(64 + sequence.len(), b'y');
                    let std_ok = std::str::from_utf8(&bytes).is_ok();
                    assert_eq!(into_text(bytes.clone()).is_ok(), std_ok, "{sequence:x?}");
                }
            }
        }
    }

    #[test]
    fn a_buffer_that_ends_inside_a_character_stays_bytes() {
        let mut cut = "ab€".as_bytes().to_vec();
        cut.pop();
        assert_eq!(checked_in_steps(&cut, 2), Tail::Bytes(cut.clone()));
    }

    #[test]
    fn a_check_that_did_not_see_the_whole_buffer_gives_bytes() {
        let mut check = Utf8Check::default();
        check.advance(b"abc");
        // SAFETY: the buffer begins with the three bytes checked; the rest were never checked.
        let tail = unsafe { check.finish(b"abcdef".to_vec()) };
        assert_eq!(tail, Tail::Bytes(b"abcdef".to_vec()));
    }

    #[test]
    fn a_tail_gives_its_length_and_buffer_whichever_kind_it_is() {
        let text = Tail::Text("héllo".to_string());
        let bytes = Tail::Bytes(vec![1, 2, 3]);
        assert_eq!((text.len(), text.is_text()), (6, true));
        assert_eq!((bytes.len(), bytes.is_text()), (3, false));
        assert_eq!(text.into_bytes(), "héllo".as_bytes());
        assert_eq!(bytes.as_bytes(), &[1, 2, 3]);
    }
}
