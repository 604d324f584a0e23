//! Fresh buffers for large payloads: the vector a large argument or result is read into, which
//! the function or the future then owns.
//!
//! A fresh 64 MiB vector costs 16,384 page faults on 4 KiB pages, and those, not the copy, set the
//! pace: on the 2-core AMD EPYC VM of the report, filling a fresh 64 MiB `malloc` ran at
//! 0.15–0.25× the speed of a `memcpy` into a reused buffer, and 1.2–1.35× once the range was
//! advised for transparent huge pages (`MADV_HUGEPAGE`: 32 faults of 2 MiB). The advice is a hint:
//! where huge pages are off (`/sys/kernel/mm/transparent_hugepage/enabled` = `never`) it changes
//! nothing, and where they are `always` the kernel already does it.

use std::io::Read;

use crate::remote::wire::{read_into, ReadError};

/// Buffers at least this long are advised for huge pages: one huge page and more.
const HUGE_PAGE: usize = 2 << 20;

/// The most a buffer reserves before its bytes arrive, so that a corrupt length costs at most this
/// (untouched) reservation: a longer payload grows its buffer in 16 MiB steps as its bytes arrive
/// (`wire::read_into`; glibc grows a buffer this large with `mremap`, without copying it). The same
/// bound as the message buffers a side keeps (`protocol::KEEP_BUFFER`).
const RESERVE_AHEAD: usize = 64 << 20;

/// An empty vector with room for `len` bytes (up to [`RESERVE_AHEAD`]), its pages advised for
/// huge pages when it is large.
pub(crate) fn fresh(len: usize) -> Vec<u8> {
    let buffer = Vec::with_capacity(len.min(RESERVE_AHEAD));
    advise_huge_pages(&buffer);
    buffer
}

/// Reads exactly `len` bytes from `input` into a fresh vector of their own (see [`fresh`]).
pub(crate) fn read_fresh(input: &mut impl Read, len: usize) -> Result<Vec<u8>, ReadError> {
    let mut buffer = fresh(len);
    let mut advised = buffer.capacity();
    while buffer.len() < len {
        let step = (len - buffer.len()).min(RESERVE_AHEAD);
        read_into(input, &mut buffer, step)?;
        if buffer.capacity() > advised {
            // Grown past what was reserved ahead: the new pages get the same advice.
            advise_huge_pages(&buffer);
            advised = buffer.capacity();
        }
    }
    Ok(buffer)
}

/// Advises the whole 2 MiB pages inside a vector's allocation for transparent huge pages.
fn advise_huge_pages(buffer: &Vec<u8>) {
    #[cfg(target_os = "linux")]
    {
        if buffer.capacity() < 2 * HUGE_PAGE {
            return;
        }
        let start = buffer.as_ptr() as usize;
        let first = start.next_multiple_of(HUGE_PAGE);
        let end = (start + buffer.capacity()) & !(HUGE_PAGE - 1);
        if end > first {
            // SAFETY: the range lies inside the vector's own allocation, which this function
            // borrows; `MADV_HUGEPAGE` only sets how the kernel backs those pages later and
            // never changes their contents. A failure (huge pages unsupported) changes nothing.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (buffer, HUGE_PAGE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_buffer_holds_exactly_the_bytes_read_and_reserves_at_most_a_bound() {
        let bytes: Vec<u8> = (0..RESERVE_AHEAD + 5 * HUGE_PAGE)
            .map(|i| (i % 251) as u8)
            .collect();
        let read = read_fresh(&mut bytes.as_slice(), bytes.len()).unwrap();
        assert!(read == bytes, "the bytes past the reservation are read too");
        // A corrupt length reserves no more than the bound, and fails when the bytes run out.
        assert!(fresh(usize::MAX / 2).capacity() <= RESERVE_AHEAD);
        assert!(matches!(
            read_fresh(&mut &bytes[..], usize::MAX / 2),
            Err(ReadError::Io(_))
        ));
        assert!(matches!(
            read_fresh(&mut &bytes[..10], 11),
            Err(ReadError::Io(_))
        ));
    }
}
