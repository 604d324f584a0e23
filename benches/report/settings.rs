//! The report's settings, from the environment: how many runs, and where it writes (quick runs
//! under `target/report/`, so as not to overwrite the figures on record).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::common::settings::{count, switch};
use crate::{SECTION, STARTUP_PER_RUN};

pub(crate) struct Settings {
    pub runs: usize,
    pub startup_runs: usize,
    pub map_items: usize,
    pub quick: bool,
    pub markdown: PathBuf,
    pub svg: PathBuf,
}

impl Settings {
    pub(crate) fn from_env() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let quick = switch("REPORT_QUICK");
        let runs = count("REPORT_RUNS").unwrap_or(if quick { 1 } else { 5 });
        let (markdown, svg) = if quick {
            let dir = root.join("target/report");
            std::fs::create_dir_all(&dir).expect("target/report can be made");
            let markdown = dir.join("BENCHMARKS.md");
            if !markdown.exists() {
                std::fs::write(
                    &markdown,
                    format!("# Quick report\n\n{}\n{}\n", SECTION.begin, SECTION.end),
                )
                .expect("target/report/BENCHMARKS.md can be written");
            }
            (markdown, dir.join("benchmarks-scaling.svg"))
        } else {
            (
                root.join("BENCHMARKS.md"),
                root.join("benchmarks-scaling.svg"),
            )
        };
        Settings {
            runs,
            startup_runs: runs * STARTUP_PER_RUN,
            map_items: if quick { 100_000 } else { 1_000_000 },
            quick,
            markdown,
            svg,
        }
    }

    pub(crate) fn command(&self) -> String {
        let mut command = String::new();
        if self.quick {
            command.push_str("REPORT_QUICK=1 ");
        }
        if self.runs != if self.quick { 1 } else { 5 } {
            let _ = write!(command, "REPORT_RUNS={} ", self.runs);
        }
        command + "cargo bench --bench report"
    }
}
