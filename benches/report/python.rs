//! Python's peers: `benches/python/executors.py --report`, one workload a call.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use crate::figures::Row;

pub(crate) const PY_THREAD: &str = "Python `ThreadPoolExecutor`";
pub(crate) const PY_FORK: &str = "Python `ProcessPoolExecutor` (fork)";
pub(crate) const PY_SPAWN: &str = "Python `ProcessPoolExecutor` (spawn)";
/// How `executors.py --report` names `PY_THREAD`, `PY_FORK` and `PY_SPAWN`, in that order.
pub(crate) const PY_KEYS: [&str; 3] = ["thread", "fork", "spawn"];

/// A row for each of Python's peers, in [`PY_KEYS`] order.
pub(crate) fn python_peer_rows(runs: usize, units: f64) -> Vec<Row> {
    [PY_THREAD, PY_FORK, PY_SPAWN]
        .map(|label| Row::new(label, runs, units))
        .into()
}

/// Runs one workload of `benches/python/executors.py` and returns each peer's seconds.
pub(crate) fn python(workload: &str, args: &[String]) -> BTreeMap<String, f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/executors.py");
    let output = Command::new("python3")
        .arg(script)
        .arg("--report")
        .arg(workload)
        .args(args)
        .stderr(Stdio::inherit())
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!("report: python3 {workload} failed: {}", output.status);
            return BTreeMap::new();
        }
        Err(error) => {
            eprintln!("report: python3 could not run: {error}");
            return BTreeMap::new();
        }
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, seconds) = line.split_once(' ')?;
            Some((name.to_string(), seconds.trim().parse().ok()?))
        })
        .collect()
}
