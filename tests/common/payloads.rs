//! Payloads whose damage shows: bytes that differ from place to place, and text of two-byte
//! characters.

/// `len` bytes that differ from place to place (a period of 251, a prime, shifted by `seed`), so
/// that a misplaced or missing chunk shows. One period, built once and repeated (fast in debug
/// builds too).
pub(crate) fn patterned_bytes(len: usize, seed: usize) -> Vec<u8> {
    let period: Vec<u8> = (0..251).map(|i| ((i * 31 + seed) % 251) as u8).collect();
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        let more = (len - bytes.len()).min(period.len());
        bytes.extend_from_slice(&period[..more]);
    }
    bytes
}

/// Text of `len` bytes of two-byte characters (and an `x` where `len` is odd), so that a chunk cut
/// inside a character shows: it would not be UTF-8.
pub(crate) fn two_byte_text(len: usize) -> String {
    let mut text = "é".repeat(len / 2);
    if len % 2 == 1 {
        text.push('x');
    }
    text
}
