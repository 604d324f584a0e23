//! What both benches read from the environment: switches (`REPORT_QUICK`, `AUTO_QUICK`,
//! `AUTO_LOG`) and counts (`REPORT_RUNS`, `AUTO_RUNS`).

/// Whether the variable `name` is set, to anything but `0`.
pub(crate) fn switch(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v != "0")
}

/// The variable `name` as a whole number above zero, if it is set to one.
pub(crate) fn count(name: &str) -> Option<usize> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
}
