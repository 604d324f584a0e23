//! Process workers allocate large buffers on huge pages and reuse the large buffers they free: the
//! pool adds `glibc.malloc.hugetlb=1`, `glibc.malloc.mmap_max=0` and
//! `glibc.malloc.trim_threshold=134217728` to their `GLIBC_TUNABLES`, each unless the user's own
//! value names that tunable (the opt-out), and the worker takes the addition out again before
//! `main`, so the programs its tasks start see the user's value. Each case runs in a helper process
//! started with its own `GLIBC_TUNABLES`, but two that run in this process: the one under a
//! memory limit, and the one that pins that a worker's large arguments land where the one before
//! it lay (skipped where the user's environment sets glibc's malloc tunables).

use std::process::Command;

use concurrent_futures::pool;

mod common;

const LEN: usize = 64 << 20;

/// In a worker: the page faults that building a fresh 64 MiB vector took, those that building a
/// second one took after the first was freed, and the worker's `GLIBC_TUNABLES` as a task (and a
/// program it starts) sees it.
fn faults_building_a_large_vector() -> (i64, i64, Option<String>) {
    let faults = || {
        // SAFETY: `getrusage` writes only into the `rusage` we pass.
        unsafe {
            let mut usage = std::mem::zeroed::<libc::rusage>();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage.ru_minflt
        }
    };
    let before = faults();
    let bytes = vec![7u8; LEN];
    let after = faults();
    std::hint::black_box(&bytes);
    drop(bytes);
    let again = faults();
    let bytes = vec![8u8; LEN];
    let after_again = faults();
    std::hint::black_box(&bytes);
    (
        after - before,
        after_again - again,
        std::env::var("GLIBC_TUNABLES").ok(),
    )
}

#[test]
#[ignore = "helper of the tests below"]
fn helper_reports_a_workers_faults() {
    if !common::helper_enabled() {
        return;
    }
    let (faults, again, tunables) = pool!(Process(max_workers = 1) => {
        submit(faults_building_a_large_vector).result().unwrap()
    });
    println!("FAULTS {faults} AGAIN {again} TUNABLES {tunables:?}");
}

/// What the helper's worker reported, run with `GLIBC_TUNABLES` set to `tunables` (or unset): the
/// faults of the first vector, of the second, and the variable as its task saw it.
fn worker_report(tunables: Option<&str>) -> (i64, i64, String) {
    worker_report_with(tunables, None)
}

/// [`worker_report`], with one more variable set in the helper's environment.
fn worker_report_with(
    tunables: Option<&str>,
    variable: Option<(&str, &str)>,
) -> (i64, i64, String) {
    let mut command: Command = common::helper_command(
        &std::env::current_exe().unwrap(),
        "helper_reports_a_workers_faults",
    );
    if let Some((name, value)) = variable {
        command.env(name, value);
    }
    match tunables {
        Some(value) => command.env("GLIBC_TUNABLES", value),
        None => command.env_remove("GLIBC_TUNABLES"),
    };
    let output = command.output().expect("the helper runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.find("FAULTS ").map(|at| &line[at..]))
        .unwrap_or_else(|| panic!("no report in {stdout}"));
    let mut words = line.splitn(6, ' ');
    let faults = words.nth(1).unwrap().parse().unwrap();
    let again = words.nth(1).unwrap().parse().unwrap();
    (faults, again, words.nth(1).unwrap().to_string())
}

/// The kernel's transparent huge page mode: `always`, `madvise` or `never`.
fn huge_page_mode() -> String {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .ok()
        .and_then(|modes| Some(modes.split_once('[')?.1.split_once(']')?.0.to_string()))
        .unwrap_or_else(|| "never".to_string())
}

/// Whether this glibc knows the tunable `glibc.malloc.hugetlb` (2.35 and later; older ones ignore
/// the name).
fn glibc_knows_hugetlb() -> bool {
    // SAFETY: `gnu_get_libc_version` returns a static NUL-terminated string, such as "2.36".
    let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let mut numbers = version.to_str().unwrap_or("0.0").split('.');
    let major: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let minor: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (major, minor) >= (2, 35)
}

/// Whether the pool's `glibc.malloc.hugetlb=1` puts a worker's large vectors on huge pages: the
/// kernel allows them (not `never`) and glibc knows the tunable.
fn huge_pages_available() -> bool {
    huge_page_mode() != "never" && glibc_knows_hugetlb()
}

/// A fresh 64 MiB vector on 4 KiB pages takes 16,384 page faults; on 2 MiB pages, 32.
const SMALL_PAGE_FAULTS: i64 = (LEN / 4096) as i64;

/// Reusing freed memory takes no page faults at all; a handful allow for the heap's own
/// bookkeeping.
const REUSED_FAULTS: i64 = 64;

#[test]
fn a_worker_builds_a_large_vector_on_huge_pages_and_its_tasks_see_the_users_setting() {
    let (faults, _, seen) = worker_report(None);
    if huge_pages_available() {
        assert!(faults < SMALL_PAGE_FAULTS / 8, "{faults} page faults");
    }
    assert_eq!(seen, "None", "the variable the pool added is gone again");
    let (faults, _, seen) = worker_report(Some("glibc.malloc.arena_max=4"));
    if huge_pages_available() {
        assert!(faults < SMALL_PAGE_FAULTS / 8, "{faults} page faults");
    }
    assert_eq!(seen, "Some(\"glibc.malloc.arena_max=4\")");
}

#[test]
fn a_worker_reuses_the_memory_of_a_large_vector_it_freed() {
    let (_, again, _) = worker_report(None);
    assert!(again < REUSED_FAULTS, "{again} page faults the second time");
}

fn address_of(bytes: Vec<u8>) -> usize {
    bytes.as_ptr() as usize
}

#[test]
fn a_workers_large_arguments_reuse_the_memory_of_the_argument_before() {
    // What a worker keeps for life (its panic hook above all) is made before its first call. Made
    // during it, it lay in the heap above that call's argument, which then never rejoined the
    // heap's top and was carved up for small allocations: the second argument came from fresh
    // memory, just past the first.
    if [
        "GLIBC_TUNABLES",
        "MALLOC_MMAP_MAX_",
        "MALLOC_TRIM_THRESHOLD_",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some())
    {
        eprintln!("skipped: the environment sets glibc's malloc tunables, which the pool keeps");
        return;
    }
    const ARGUMENT: usize = 8 << 20;
    let bytes = vec![7u8; ARGUMENT];
    let addresses: Vec<usize> = pool!(Process(max_workers = 1) => {
        (0..3).map(|_| submit(address_of, bytes.clone()).result().unwrap()).collect()
    });
    // The same memory, give or take a few small allocations; a fresh buffer lay a whole argument
    // further on.
    assert!(
        addresses
            .iter()
            .all(|&a| a.abs_diff(addresses[0]) < ARGUMENT / 8),
        "the arguments lay at {addresses:x?}"
    );
}

#[test]
fn a_worker_under_a_memory_limit_keeps_no_freed_memory_for_reuse() {
    // Memory kept for reuse would count against the cap (`RLIMIT_DATA` counts the heap).
    let (_, again, _) = pool!(Process(max_workers = 1, memory_limit = 1 << 30) => {
        submit(faults_building_a_large_vector).result().unwrap()
    });
    assert!(
        again >= 32,
        "{again} page faults: the second vector is fresh memory"
    );
}

#[test]
fn a_user_who_sets_the_tunable_keeps_small_pages_in_the_workers() {
    let (faults, _, seen) = worker_report(Some("glibc.malloc.hugetlb=0"));
    // Where the kernel's mode is `always`, it uses huge pages without being asked.
    if huge_page_mode() != "always" {
        assert!(faults >= SMALL_PAGE_FAULTS, "{faults} page faults");
    }
    assert_eq!(seen, "Some(\"glibc.malloc.hugetlb=0\")");
}

#[test]
fn a_user_who_sets_mmap_max_keeps_glibcs_unmapping_of_freed_vectors() {
    // glibc's own default: large allocations mapped alone, and unmapped when freed.
    let (_, again, seen) = worker_report(Some("glibc.malloc.mmap_max=65536"));
    if huge_pages_available() {
        assert!(
            again >= 32,
            "{again} page faults: the second vector is fresh memory"
        );
    } else {
        assert!(again >= SMALL_PAGE_FAULTS, "{again} page faults");
    }
    assert_eq!(seen, "Some(\"glibc.malloc.mmap_max=65536\")");
}

#[test]
fn a_user_who_sets_glibcs_older_variable_keeps_its_unmapping_of_freed_vectors() {
    // The pool adds no tunable whose older variable is set. (glibc 2.36 also lets that variable win
    // over `GLIBC_TUNABLES` by itself: there this pins the behaviour, not the pool's check.)
    let (_, again, _) = worker_report_with(None, Some(("MALLOC_MMAP_MAX_", "65536")));
    assert!(
        again >= 32,
        "{again} page faults: the second vector is fresh memory"
    );
}
