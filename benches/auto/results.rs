//! Every figure of a run, as the blocks give them, and Python's, from `benches/python/auto.py`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::settings::Settings;
use crate::starvation::Starvation;
use crate::trace::Trace;
use crate::workloads::Timed;
use crate::{Setting, Workload, SLOW};
use crate::{CPU_TASKS, CPU_TASK_SECONDS, IO_TASKS, PYTHON_TINY_BLOCKS, TINY_TASKS};

/// Every figure of a benchmark run.
#[derive(Default)]
pub(crate) struct Results {
    /// Wall seconds of each block, in the order timed.
    pub times: BTreeMap<(Workload, Setting), Vec<f64>>,
    /// One trace per `Auto` block of the workloads timed once per run.
    pub traces: BTreeMap<Workload, Vec<Trace>>,
    pub tiny_trace: Option<Trace>,
    pub python_workers: Option<usize>,
    pub python_error: Option<String>,
    pub starvation: Option<Starvation>,
    /// Blocks taken for hung: workload, setting, the trace until then.
    pub hung: Vec<(Workload, Setting, Option<Trace>)>,
}

impl Results {
    /// Whether to time `setting` on `workload` in `run`: always in the first, later only if its
    /// first run was fast (or no run has finished yet: it hung).
    pub(crate) fn wanted(&self, workload: Workload, setting: Setting, run: usize) -> bool {
        run == 0
            || self
                .times
                .get(&(workload, setting))
                .and_then(|t| t.first())
                .is_none_or(|&first| first < SLOW)
    }

    pub(crate) fn record(&mut self, workload: Workload, setting: Setting, timed: Timed) {
        match timed.seconds {
            Some(seconds) => {
                self.times
                    .entry((workload, setting))
                    .or_default()
                    .push(seconds);
                if let Some(trace) = timed.trace {
                    self.traces.entry(workload).or_default().push(trace);
                }
            }
            None => self.hung.push((workload, setting, timed.trace)),
        }
    }

    /// One run of `benches/python/auto.py`: every workload Python is still wanted on.
    pub(crate) fn run_python(&mut self, settings: &Settings, port: u16, run: usize) {
        if self.python_error.is_some() {
            return;
        }
        let workloads: Vec<&str> = Workload::TIMED_ONCE_PER_RUN
            .into_iter()
            .chain([Workload::Tiny])
            .filter(|&w| settings.runs_workload(w.python_name()))
            .filter(|&w| self.wanted(w, Setting::Python, run))
            .map(Workload::python_name)
            .collect();
        if workloads.is_empty() {
            return;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/auto.py");
        let tiny_blocks = if settings.quick {
            1
        } else {
            PYTHON_TINY_BLOCKS
        };
        let output = Command::new("python3")
            .arg(&script)
            .args([
                "--port",
                &port.to_string(),
                "--workloads",
                &workloads.join(","),
            ])
            .args(["--io-tasks", &IO_TASKS.to_string()])
            .args(["--cpu-tasks", &CPU_TASKS.to_string()])
            .args(["--cpu-seconds", &CPU_TASK_SECONDS.to_string()])
            .args(["--tiny-tasks", &TINY_TASKS.to_string()])
            .args(["--tiny-blocks", &tiny_blocks.to_string()])
            .output();
        let json = match output {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                self.python_error = Some(format!("{}: {why}", o.status));
                return;
            }
            Err(e) => {
                self.python_error = Some(format!("python3 did not start: {e}"));
                return;
            }
        };
        self.python_workers = json_number(&json, "max_workers").map(|n| n as usize);
        for workload in Workload::TIMED_ONCE_PER_RUN
            .into_iter()
            .chain([Workload::Tiny])
        {
            if let Some(seconds) = json_number(&json, workload.python_name()) {
                eprintln!("auto:   {workload:?} Python: {:.1} ms", seconds * 1e3);
                let timed = Timed {
                    seconds: Some(seconds),
                    trace: None,
                };
                self.record(workload, Setting::Python, timed);
            }
        }
    }
}

/// The number after `"key":` in the flat JSON that `auto.py` prints (no JSON crate here).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let quoted = format!("\"{key}\":");
    let rest = &json[json.find(&quoted)? + quoted.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE ".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}
