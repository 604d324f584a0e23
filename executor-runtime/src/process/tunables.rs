//! Workers allocate their large buffers on huge pages: the pool adds `glibc.malloc.hugetlb=1` to
//! each worker's `GLIBC_TUNABLES`, and the worker takes it out again before `main`, so that the
//! programs its tasks start inherit the user's setting, not ours.
//!
//! Why: a fresh 64 MiB vector on 4 KiB pages costs 16,384 page faults, which on the report's VM
//! (2-vCPU AMD EPYC) ran at 0.2–0.26 of the speed of a `memcpy` into a reused buffer, whatever
//! else the call did; a worker that builds a large result pays that alone. With the tunable, glibc
//! (2.35 and later) advises `MADV_HUGEPAGE` for each mapping of at least one huge page (2 MiB; it
//! leaves smaller ones alone), the advice `remote::buffer` gives the pool's own receive buffers:
//! 32 faults of 2 MiB instead. Where transparent huge pages are `never` it changes nothing; older
//! glibc ignores the name.
//!
//! The user's choice wins: an inherited `GLIBC_TUNABLES` that mentions `glibc.malloc.hugetlb` at
//! all (say `glibc.malloc.hugetlb=0`, the opt-out) is passed on unchanged.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// glibc's variable.
pub(crate) const TUNABLES: &str = "GLIBC_TUNABLES";

/// What the pool adds.
const HUGETLB: &str = "glibc.malloc.hugetlb=1";

/// Tells the worker that the pool added [`HUGETLB`], so that it takes it out again.
pub(crate) const ADDED_ENV: &str = "__EXECUTOR_WORKER_HUGETLB";

/// The worker's `GLIBC_TUNABLES` for an `inherited` one, if the pool changes it: [`HUGETLB`] alone,
/// or appended with `:`; `None` where the inherited value already names the tunable.
pub(crate) fn with_huge_pages(inherited: Option<&OsStr>) -> Option<OsString> {
    match inherited {
        None => Some(OsString::from(HUGETLB)),
        Some(value) if value.is_empty() => Some(OsString::from(HUGETLB)),
        Some(value) => {
            let bytes = value.as_bytes();
            let named = bytes
                .windows(b"glibc.malloc.hugetlb".len())
                .any(|w| w == b"glibc.malloc.hugetlb");
            if named {
                return None;
            }
            let mut ours = bytes.to_vec();
            ours.push(b':');
            ours.extend_from_slice(HUGETLB.as_bytes());
            Some(OsString::from_vec(ours))
        }
    }
}

/// The environment entries that give a worker huge pages (see the module's docs): the changed
/// `GLIBC_TUNABLES` and the note that it was changed; none where the user's setting names the
/// tunable.
pub(crate) fn worker_entries() -> Vec<(&'static str, OsString)> {
    match with_huge_pages(std::env::var_os(TUNABLES).as_deref()) {
        Some(value) => vec![(TUNABLES, value), (ADDED_ENV, OsString::from("1"))],
        None => Vec::new(),
    }
}

/// The value of `GLIBC_TUNABLES` without what [`with_huge_pages`] added: `None` to remove the
/// variable (the pool set it alone), or the value to set.
pub(crate) fn without_huge_pages(value: &OsStr) -> Option<OsString> {
    let bytes = value.as_bytes();
    if bytes == HUGETLB.as_bytes() {
        return None;
    }
    let suffix = [b":", HUGETLB.as_bytes()].concat();
    let kept = bytes.strip_suffix(suffix.as_slice()).unwrap_or(bytes);
    Some(OsString::from_vec(kept.to_vec()))
}

/// In a worker, before `main` (one thread, so changing the environment races with nothing): takes
/// out what the pool added to `GLIBC_TUNABLES`. glibc read the variable when the process started;
/// this only keeps it from the programs that tasks start.
pub(crate) fn restore_in_worker() {
    if std::env::var_os(ADDED_ENV).is_none() {
        return;
    }
    std::env::remove_var(ADDED_ENV);
    if let Some(value) = std::env::var_os(TUNABLES) {
        match without_huge_pages(&value) {
            None => std::env::remove_var(TUNABLES),
            Some(kept) => std::env::set_var(TUNABLES, kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_adds_the_huge_page_tunable_unless_the_user_names_it_and_the_worker_takes_it_out() {
        let added = with_huge_pages(None).unwrap();
        assert_eq!(added, "glibc.malloc.hugetlb=1");
        assert_eq!(without_huge_pages(&added), None);
        let inherited = OsStr::new("glibc.malloc.arena_max=2");
        let appended = with_huge_pages(Some(inherited)).unwrap();
        assert_eq!(appended, "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1");
        assert_eq!(
            without_huge_pages(&appended).as_deref(),
            Some(inherited),
            "the worker's children get the user's value back"
        );
        for opt_out in [
            "glibc.malloc.hugetlb=0",
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2",
        ] {
            assert_eq!(
                with_huge_pages(Some(OsStr::new(opt_out))),
                None,
                "{opt_out}"
            );
        }
    }
}
