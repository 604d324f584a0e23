//! Workers allocate their large buffers on huge pages and reuse the memory they free: the pool adds
//! three of glibc's malloc tunables to each worker's `GLIBC_TUNABLES`, and the worker takes them
//! out again before `main`, so that the programs its tasks start inherit the user's setting, not
//! ours.
//!
//! - `glibc.malloc.hugetlb=1`: a fresh 64 MiB vector on 4 KiB pages costs 16,384 page faults, which
//!   on the report's VM (2-vCPU AMD EPYC) ran at 0.2–0.26 of the speed of a `memcpy` into a reused
//!   buffer, whatever else the call did; a worker that builds a large result pays that alone. With
//!   the tunable, glibc (2.35 and later) advises `MADV_HUGEPAGE` for each mapping of at least one
//!   huge page (2 MiB; it leaves smaller ones alone), the advice `remote::buffer` gives the pool's
//!   own receive buffers: 32 faults of 2 MiB instead.
//! - `glibc.malloc.mmap_max=0` and `glibc.malloc.trim_threshold=128 MiB`: glibc maps every
//!   allocation of 32 MiB and more on its own and unmaps it when freed, so a worker whose calls take
//!   or return 64 MiB each faults in (and the kernel zeroes) 64 MiB of fresh memory per call. With
//!   these, large allocations come from the heap, and up to 128 MiB freed at its top stays there for
//!   the next call. Measured on an Intel Xeon VM (2 vCPUs), 12 alternations of 8 calls on 2 workers:
//!   64 MiB results at a median 4.00 GB/s against 3.65 without (three such sets: +6 to +12%),
//!   arguments 4.78 against 4.59; `perf` put the workers' share of the kernel's page clearing at 7%
//!   of all samples, from 24%. The price: glibc gives back only the top of its heap, so memory freed
//!   below memory still in use stays with the worker until it exits: a worker may keep as much as
//!   it once used at its peak. Under `memory_limit` (`RLIMIT_DATA`, which counts the heap) the pool
//!   leaves these two out, so that memory kept for reuse never counts against the cap.
//!
//! Where transparent huge pages are `never` the first changes nothing; older glibc ignores the
//! names. The user's choice wins: a tunable that the inherited `GLIBC_TUNABLES` names at all (say
//! `glibc.malloc.hugetlb=0`), or whose older variable is set (`MALLOC_MMAP_MAX_`,
//! `MALLOC_TRIM_THRESHOLD_`), keeps the user's value, and the pool adds only the others.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// glibc's variable.
pub(crate) const TUNABLES: &str = "GLIBC_TUNABLES";

/// A tunable the pool may add: its name, its value, and glibc's older variable for it, if any.
struct Tunable {
    name: &'static str,
    value: &'static str,
    variable: Option<&'static str>,
}

/// Huge pages for large allocations.
const HUGE_PAGES: Tunable = Tunable {
    name: "glibc.malloc.hugetlb",
    value: "1",
    variable: None,
};

/// Large freed allocations kept for the next calls (not under `memory_limit`).
const REUSE: [Tunable; 2] = [
    Tunable {
        name: "glibc.malloc.mmap_max",
        value: "0",
        variable: Some("MALLOC_MMAP_MAX_"),
    },
    Tunable {
        name: "glibc.malloc.trim_threshold",
        value: "134217728",
        variable: Some("MALLOC_TRIM_THRESHOLD_"),
    },
];

/// Tells the worker what the pool appended to `GLIBC_TUNABLES` (the exact text), so that it takes
/// that out again.
pub(crate) const ADDED_ENV: &str = "__EXECUTOR_WORKER_TUNABLES";

/// The worker's `GLIBC_TUNABLES` for an `inherited` one, and the text the pool added, if it adds
/// any: those of `wanted` that `inherited` does not name, alone or appended with `:`.
fn with_worker_tunables<'a>(
    inherited: Option<&OsStr>,
    wanted: impl IntoIterator<Item = &'a Tunable>,
) -> Option<(OsString, String)> {
    let bytes = inherited.map_or(&[][..], OsStr::as_bytes);
    let names = |name: &str| {
        bytes
            .split(|&b| b == b':')
            .any(|entry| entry.split(|&b| b == b'=').next() == Some(name.as_bytes()))
    };
    let added: Vec<String> = wanted
        .into_iter()
        .filter(|tunable| !names(tunable.name))
        .map(|tunable| format!("{}={}", tunable.name, tunable.value))
        .collect();
    if added.is_empty() {
        return None;
    }
    let added = added.join(":");
    let mut value = bytes.to_vec();
    if !value.is_empty() {
        value.push(b':');
    }
    value.extend_from_slice(added.as_bytes());
    Some((OsString::from_vec(value), added))
}

/// The tunables the pool wants for its workers: huge pages always, reuse unless the workers'
/// memory is limited; none that the user set through glibc's older variables.
fn wanted(memory_limited: bool) -> impl Iterator<Item = &'static Tunable> {
    let reuse = if memory_limited { &[][..] } else { &REUSE[..] };
    std::iter::once(&HUGE_PAGES).chain(reuse).filter(|tunable| {
        tunable
            .variable
            .is_none_or(|v| std::env::var_os(v).is_none())
    })
}

/// The environment entries that give a worker the tunables (see the module's docs): the changed
/// `GLIBC_TUNABLES` and what was added to it; none where the user's setting names them all.
pub(crate) fn worker_entries(memory_limited: bool) -> Vec<(&'static str, OsString)> {
    let inherited = std::env::var_os(TUNABLES);
    match with_worker_tunables(inherited.as_deref(), wanted(memory_limited)) {
        Some((value, added)) => vec![(TUNABLES, value), (ADDED_ENV, OsString::from(added))],
        None => Vec::new(),
    }
}

/// The value of `GLIBC_TUNABLES` without the `added` text that [`with_worker_tunables`] appended:
/// `None` to remove the variable (the pool set it alone), or the value to set.
pub(crate) fn without_added(value: &OsStr, added: &OsStr) -> Option<OsString> {
    let (bytes, added) = (value.as_bytes(), added.as_bytes());
    if bytes == added {
        return None;
    }
    let suffix = [b":", added].concat();
    let kept = bytes.strip_suffix(suffix.as_slice()).unwrap_or(bytes);
    Some(OsString::from_vec(kept.to_vec()))
}

/// In a worker, before `main` (one thread, so changing the environment races with nothing): takes
/// out what the pool added to `GLIBC_TUNABLES`. glibc read the variable when the process started;
/// this only keeps it from the programs that tasks start.
pub(crate) fn restore_in_worker() {
    let Some(added) = std::env::var_os(ADDED_ENV) else {
        return;
    };
    std::env::remove_var(ADDED_ENV);
    if let Some(value) = std::env::var_os(TUNABLES) {
        match without_added(&value, &added) {
            None => std::env::remove_var(TUNABLES),
            Some(kept) => std::env::set_var(TUNABLES, kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &str = "glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:\
                       glibc.malloc.trim_threshold=134217728";

    fn all() -> impl Iterator<Item = &'static Tunable> {
        std::iter::once(&HUGE_PAGES).chain(&REUSE)
    }

    #[test]
    fn the_pool_adds_its_tunables_and_the_worker_takes_them_out() {
        let (value, added) = with_worker_tunables(None, all()).unwrap();
        assert_eq!(value, ALL);
        assert_eq!(added, ALL);
        assert_eq!(without_added(&value, OsStr::new(&added)), None);
        let inherited = OsStr::new("glibc.malloc.arena_max=2");
        let (value, added) = with_worker_tunables(Some(inherited), all()).unwrap();
        assert_eq!(value, format!("glibc.malloc.arena_max=2:{ALL}").as_str());
        assert_eq!(
            without_added(&value, OsStr::new(&added)).as_deref(),
            Some(inherited),
            "the worker's children get the user's value back"
        );
    }

    #[test]
    fn a_tunable_the_user_names_keeps_the_users_value() {
        let inherited = OsStr::new("glibc.malloc.hugetlb=0");
        let (value, added) = with_worker_tunables(Some(inherited), all()).unwrap();
        assert_eq!(
            value,
            "glibc.malloc.hugetlb=0:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=134217728"
        );
        assert_eq!(
            without_added(&value, OsStr::new(&added)).as_deref(),
            Some(inherited)
        );
        let named = "glibc.malloc.mmap_max=65536:glibc.malloc.hugetlb=2:\
                     glibc.malloc.trim_threshold=0";
        assert_eq!(with_worker_tunables(Some(OsStr::new(named)), all()), None);
        // A name is a whole entry's name, not part of another's.
        let (value, _) =
            with_worker_tunables(Some(OsStr::new("glibc.malloc.hugetlb_x=1")), all()).unwrap();
        assert_eq!(value, format!("glibc.malloc.hugetlb_x=1:{ALL}").as_str());
    }

    #[test]
    fn workers_under_a_memory_limit_keep_no_freed_memory_for_reuse() {
        let names: Vec<&str> = wanted(true).map(|tunable| tunable.name).collect();
        assert_eq!(names, ["glibc.malloc.hugetlb"]);
    }
}
