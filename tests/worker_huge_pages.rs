//! Process workers allocate large buffers on huge pages: the pool adds `glibc.malloc.hugetlb=1` to
//! their `GLIBC_TUNABLES`, unless the user's own value names that tunable (the opt-out), and the
//! worker takes the addition out again before `main`, so the programs its tasks start see the
//! user's value. Each case runs in a helper process started with its own `GLIBC_TUNABLES`.

use std::process::Command;

use concurrent_futures::pool;

mod common;

const LEN: usize = 64 << 20;

/// In a worker: the page faults that building a fresh 64 MiB vector took, and the worker's
/// `GLIBC_TUNABLES` as a task (and a program it starts) sees it.
fn faults_building_a_large_vector() -> (i64, Option<String>) {
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
    (after - before, std::env::var("GLIBC_TUNABLES").ok())
}

#[test]
#[ignore = "helper of the tests below"]
fn helper_reports_a_workers_faults() {
    if !common::helper_enabled() {
        return;
    }
    let (faults, tunables) = pool!(Process(max_workers = 1) => {
        submit(faults_building_a_large_vector).result().unwrap()
    });
    println!("FAULTS {faults} TUNABLES {tunables:?}");
}

/// What the helper's worker reported, run with `GLIBC_TUNABLES` set to `tunables` (or unset).
fn worker_report(tunables: Option<&str>) -> (i64, String) {
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
    let mut words = line.splitn(4, ' ');
    let faults = words.nth(1).unwrap().parse().unwrap();
    (faults, words.nth(1).unwrap().to_string())
}

/// Whether transparent huge pages may be used at all (`never` turns the advice into nothing).
fn huge_pages_available() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| !mode.contains("[never]"))
}

/// A fresh 64 MiB vector on 4 KiB pages takes 16,384 page faults; on 2 MiB pages, 32.
const SMALL_PAGE_FAULTS: i64 = (LEN / 4096) as i64;

#[test]
fn a_worker_builds_a_large_vector_on_huge_pages_and_its_tasks_see_the_users_setting() {
    let (faults, seen) = worker_report(None);
    if huge_pages_available() {
        assert!(faults < SMALL_PAGE_FAULTS / 8, "{faults} page faults");
    }
    assert_eq!(seen, "None", "the variable the pool added is gone again");
    let (faults, seen) = worker_report(Some("glibc.malloc.arena_max=4"));
    if huge_pages_available() {
        assert!(faults < SMALL_PAGE_FAULTS / 8, "{faults} page faults");
    }
    assert_eq!(seen, "Some(\"glibc.malloc.arena_max=4\")");
}

#[test]
fn a_user_who_sets_the_tunable_keeps_small_pages_in_the_workers() {
    let (faults, seen) = worker_report(Some("glibc.malloc.hugetlb=0"));
    assert!(faults >= SMALL_PAGE_FAULTS, "{faults} page faults");
    assert_eq!(seen, "Some(\"glibc.malloc.hugetlb=0\")");
}
