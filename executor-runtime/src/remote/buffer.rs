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
/// (`wire::read_into`). In the pool's process (glibc's defaults) a buffer this large is a mapping
/// of its own, which glibc grows with `mremap`, without copying it; in a worker, whose large
/// allocations come from the heap (`process::tunables`), it grows in place at the heap's top, and
/// is copied only where a live allocation sits above it. The same bound as the message buffers a
/// side keeps (`protocol::KEEP_BUFFER`).
pub(crate) const RESERVE_AHEAD: usize = 64 << 20;

/// An empty vector with room for `len` bytes (up to [`RESERVE_AHEAD`]), its pages advised for
/// huge pages when it is large.
pub(crate) fn fresh(len: usize) -> Vec<u8> {
    let buffer = Vec::with_capacity(len.min(RESERVE_AHEAD));
    advise_huge_pages(&buffer);
    buffer
}

/// A copy of `bytes` in a vector of its own, its pages advised for huge pages when it is large
/// (a borrowed argument copied at `submit`).
pub(crate) fn copy_fresh(bytes: &[u8]) -> Vec<u8> {
    let mut copy = Vec::with_capacity(bytes.len());
    advise_huge_pages(&copy);
    copy.extend_from_slice(bytes);
    copy
}

/// Reads exactly `len` bytes from `input` into a fresh vector of their own (see [`fresh`]).
pub(crate) fn read_fresh(input: &mut impl Read, len: usize) -> Result<Vec<u8>, ReadError> {
    fill_fresh(len, |buffer, step| read_into(input, buffer, step))
}

/// Fills a fresh vector (see [`fresh`]) with exactly `len` bytes, which `fill(buffer, step)`
/// appends `step` at a time: steps of [`RESERVE_AHEAD`] bytes, then the rest.
pub(crate) fn fill_fresh(
    len: usize,
    mut fill: impl FnMut(&mut Vec<u8>, usize) -> Result<(), ReadError>,
) -> Result<Vec<u8>, ReadError> {
    let mut buffer = fresh(len);
    let mut advised = buffer.capacity();
    while buffer.len() < len {
        let step = (len - buffer.len()).min(RESERVE_AHEAD);
        fill(&mut buffer, step)?;
        if buffer.capacity() > advised {
            // Grown past what was reserved ahead: the new pages get the same advice.
            advise_huge_pages(&buffer);
            advised = buffer.capacity();
        }
    }
    Ok(buffer)
}

/// Advises a large vector's allocation for transparent huge pages: every page it spans, rounded
/// out to whole pages. In the pool's process an allocation this large is a mapping of its own
/// (glibc's defaults map anything over 32 MiB, and often less, by itself), and advising all of it
/// keeps it one mapping, which `realloc` can then grow by moving it (`mremap`, no copy). (In a
/// worker it lies in the heap, which glibc advises the same way under the pool's
/// `glibc.malloc.hugetlb=1`; where the user turned that off, this advice still covers the buffer.) Advising only the 2 MiB pages inside
/// it split the mapping in three, `mremap` refused to move it (`EFAULT`), and glibc copied it into
/// a new one instead: a 256 MiB result read in 64 MiB steps peaked at 1.5× its size
/// (`tests/load.rs`, `process_256`). The pages at either end may hold the allocator's own bytes or
/// a neighbour's; the advice changes no byte of them.
fn advise_huge_pages(buffer: &Vec<u8>) {
    #[cfg(target_os = "linux")]
    {
        if buffer.capacity() < 2 * HUGE_PAGE {
            return;
        }
        // SAFETY: `sysconf` only reads a value of the C library.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
        let start = buffer.as_ptr() as usize;
        let first = start & !(page - 1);
        let end = (start + buffer.capacity()).next_multiple_of(page);
        // SAFETY: the range covers the vector's own allocation, rounded out to the pages it lies
        // in, all mapped (the allocation is); `MADV_HUGEPAGE` only sets how the kernel backs those
        // pages later and never changes their contents. A failure (huge pages unsupported)
        // changes nothing.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (buffer, HUGE_PAGE);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping of this process that holds `address`: its start and end, from `/proc/self/maps`.
    fn mapping_holding(address: usize) -> (usize, usize) {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|line| {
                let (start, end) = line.split_whitespace().next()?.split_once('-')?;
                let start = usize::from_str_radix(start, 16).ok()?;
                let end = usize::from_str_radix(end, 16).ok()?;
                (start..end).contains(&address).then_some((start, end))
            })
            .next()
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_advised_buffer_stays_in_one_mapping_so_that_growing_it_moves_rather_than_copies_it() {
        let bytes = vec![5u8; RESERVE_AHEAD + 5];
        let copy = copy_fresh(&bytes);
        let (start, end) = (
            copy.as_ptr() as usize,
            copy.as_ptr() as usize + copy.capacity(),
        );
        let (mapped_from, mapped_to) = mapping_holding(start);
        assert!(
            mapped_from <= start && mapped_to >= end,
            "the buffer {start:#x}..{end:#x} spans more than its mapping {mapped_from:#x}..{mapped_to:#x}"
        );
        assert!(copy == bytes);
    }

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
