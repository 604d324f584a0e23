//! Process workers allocate large buffers on huge pages and reuse the large buffers they free: the
//! pool adds `glibc.malloc.hugetlb=1`, `glibc.malloc.mmap_max=0` and
//! `glibc.malloc.trim_threshold=134217728` to their `GLIBC_TUNABLES`, each unless the user's own
//! value names that tunable (the opt-out), and the worker takes the addition out again before
//! `main`, so the programs its tasks start see the user's value. Each case runs in a helper process
//! started with its own `GLIBC_TUNABLES`.

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
    let mut command: Command = common::helper_command(
        &std::env::current_exe().unwrap(),
        "helper_reports_a_workers_faults",
    );
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

/// Whether transparent huge pages may be used at all (`never` turns the advice into nothing).
fn huge_pages_available() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| !mode.contains("[never]"))
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

#[test]
fn a_user_who_sets_the_tunable_keeps_small_pages_in_the_workers() {
    let (faults, _, seen) = worker_report(Some("glibc.malloc.hugetlb=0"));
    assert!(faults >= SMALL_PAGE_FAULTS, "{faults} page faults");
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
