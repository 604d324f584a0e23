//! The bench's settings, from the environment: how many runs, which workloads, and where it
//! writes (quick or partial runs under `target/auto/`, so as not to overwrite the figures on
//! record).

use std::path::{Path, PathBuf};

use crate::common::settings::{count, switch};
use crate::{Setting, Workload, SWEEP, TINY_BLOCKS};

pub(crate) struct Settings {
    pub runs: usize,
    pub quick: bool,
    /// `AUTO_ONLY`: the workloads to run (all when `None`).
    pub only: Option<Vec<String>>,
    pub tiny_blocks_per_run: usize,
    pub markdown: PathBuf,
    pub svg: PathBuf,
}

impl Settings {
    pub(crate) fn from_env() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let quick = switch("AUTO_QUICK");
        let runs = count("AUTO_RUNS").unwrap_or(if quick { 1 } else { 3 });
        let only: Option<Vec<String>> = std::env::var("AUTO_ONLY").ok().map(|v| {
            v.split(',')
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .collect()
        });
        for name in only.iter().flatten() {
            assert!(
                name == "starvation" || Workload::from_name(name).is_some(),
                "AUTO_ONLY: unknown workload {name:?}"
            );
        }
        let (markdown, svg) = if quick || only.is_some() {
            let dir = root.join("target/auto");
            std::fs::create_dir_all(&dir).expect("target/auto can be made");
            (
                dir.join("BENCHMARKS.md"),
                dir.join("benchmarks-auto-workers.svg"),
            )
        } else {
            (
                root.join("BENCHMARKS.md"),
                root.join("benchmarks-auto-workers.svg"),
            )
        };
        Settings {
            runs,
            quick,
            only,
            tiny_blocks_per_run: if quick { 5 } else { TINY_BLOCKS.div_ceil(runs) },
            markdown,
            svg,
        }
    }

    pub(crate) fn command(&self) -> String {
        let mut command = String::new();
        if self.quick {
            command.push_str("AUTO_QUICK=1 ");
        }
        if let Some(only) = &self.only {
            command.push_str(&format!("AUTO_ONLY={} ", only.join(",")));
        }
        if self.runs != if self.quick { 1 } else { 3 } {
            command.push_str(&format!("AUTO_RUNS={} ", self.runs));
        }
        command + "cargo bench --bench auto"
    }

    /// Whether `AUTO_ONLY` lets the workload called `name` run.
    pub(crate) fn runs_workload(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|w| w == name))
    }

    /// The fixed sizes swept for `workload` (quick mode skips the 20 s and 10 s I/O ones).
    pub(crate) fn sweep(&self, workload: Workload) -> Vec<usize> {
        SWEEP
            .into_iter()
            .filter(|&n| !(self.quick && workload.has_io() && n <= 2))
            .collect()
    }

    /// Every `pool!` setting timed on `workload`, in the order they run within a run.
    pub(crate) fn pools(&self, workload: Workload) -> Vec<Setting> {
        let mut pools = vec![Setting::Auto];
        pools.extend(self.sweep(workload).into_iter().map(Setting::Fixed));
        pools.push(Setting::ThreadDefault);
        pools
    }
}
