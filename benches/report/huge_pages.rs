//! A copy into fresh memory advised for huge pages, as the pool's process receives a large result:
//! the report's floor for results, and one of `fresh_memory`'s probes.

/// A copy of `bytes` in a fresh vector advised for transparent huge pages, as the pool's process
/// receives a large result (`remote::buffer`, which the bench cannot reach).
pub(crate) fn copy_into_huge_pages(bytes: &[u8]) -> Vec<u8> {
    let mut copy = Vec::with_capacity(bytes.len());
    #[cfg(target_os = "linux")]
    {
        let start = copy.as_ptr() as usize & !4095;
        let end = (copy.as_ptr() as usize + copy.capacity()).next_multiple_of(4096);
        // SAFETY: the range is the vector's own allocation rounded out to 4 KiB pages (Linux's
        // page size on the machines this bench runs on), all mapped; it may take in neighbouring
        // bytes of the same pages, which is harmless: `MADV_HUGEPAGE` only says how the kernel
        // backs the pages later and changes no byte. Its result is not needed: without the advice
        // the copy is only slower.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
    copy.extend_from_slice(bytes);
    copy
}
