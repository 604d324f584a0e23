//! Which executable a worker runs, and where its code lies: a remote backend's workers run the
//! same program as the pool, and a call names its function by its offset from the executable's
//! program headers (see `remote::call`), which means the same code in every process running that
//! program.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The path of the executable on disk, for the Mpi backend, which spawns ranks by path (possibly
/// on other machines, where `/proc/self/exe` would not name it). When the file was replaced after
/// the program started, Linux names the running one `path (deleted)`; the ranks start from `path`,
/// the replacement, and the handshake's digest then tells the two apart. (The Process backend
/// starts its workers from `/proc/self/exe`, the running image itself.)
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn on_disk(path: PathBuf) -> PathBuf {
    match path.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
        Some(original) => PathBuf::from(original),
        None => path,
    }
}

/// The identity of the running executable, compared in the handshake.
pub(crate) fn executable_identity() -> io::Result<[u64; 5]> {
    let meta = std::fs::metadata("/proc/self/exe")?;
    Ok([
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
    ])
}

/// The point addresses are measured from: the executable's program headers, which the loader
/// maps at a fixed offset from wherever it places the executable. Measuring from the executable
/// rather than from a function of this crate keeps offsets right even when a program links two
/// copies of this crate (two versions, or a test binary that also depends on the facade).
pub(crate) fn anchor() -> usize {
    // SAFETY: `getauxval` only reads the auxiliary vector the kernel gave the process.
    unsafe { libc::getauxval(libc::AT_PHDR) as usize }
}

/// Whether `address` lies in the code of the program's executable. Only such addresses are the same
/// (relative to the anchor) in a worker: a function in a shared library (a Rust `dylib`, a
/// `prefer-dynamic` standard library) is loaded at an address of its own in each process.
pub(crate) fn in_executable(address: usize) -> bool {
    executable_code()
        .iter()
        .any(|&(start, end)| (start..end).contains(&address))
}

/// The address ranges of the executable's code segments, found once.
fn executable_code() -> &'static [(usize, usize)] {
    static RANGES: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
    RANGES.get_or_init(|| {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        // SAFETY: `dl_iterate_phdr` calls `first_object` with a valid `dl_phdr_info` and passes our
        // `data` pointer through unchanged; it points at `ranges`, which outlives the call.
        unsafe {
            libc::dl_iterate_phdr(
                Some(first_object),
                (&mut ranges as *mut Vec<(usize, usize)>).cast(),
            );
        }
        ranges
    })
}

/// Collects the executable segments of the first object `dl_iterate_phdr` reports, which is the
/// program's executable, and stops the iteration.
unsafe extern "C" fn first_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid `info` whose `dlpi_phdr` points at `dlpi_phnum` program
    // headers, mapped for the life of the process; `data` is the `Vec` passed by `executable_code`.
    unsafe {
        let info = &*info;
        let ranges = &mut *data.cast::<Vec<(usize, usize)>>();
        let headers = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
        for header in headers {
            if header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_X != 0 {
                let start = info.dlpi_addr as usize + header.p_vaddr as usize;
                ranges.push((start, start + header.p_memsz as usize));
            }
        }
    }
    1
}

/// The offset of `address` from the anchor.
pub(crate) fn offset_of(address: usize) -> isize {
    address.wrapping_sub(anchor()) as isize
}

/// The address at `offset` from the anchor.
pub(crate) fn address_at(offset: isize) -> usize {
    anchor().wrapping_add(offset as usize)
}
