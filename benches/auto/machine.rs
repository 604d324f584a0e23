//! The machine: what it is, its load, and how much CPU other processes took meanwhile.

use std::process::Command;

pub use crate::cpu_time::load_average;
use crate::cpu_time::{machine_busy_seconds, own_cpu_seconds};
use std::time::Instant;

/// The first line a command prints (stdout, else stderr).
pub fn first_line(command: &str, args: &[&str]) -> String {
    Command::new(command)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8(text).ok()
        })
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("`{command}` did not run"))
}

/// The CPU model, whether virtual, rustc and Python.
pub fn describe(cores: usize) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".to_string());
    let virtualised = field("flags").is_some_and(|f| f.split(' ').any(|f| f == "hypervisor"));
    format!(
        "{cores} {} ({model}){}; {}; {}",
        if virtualised { "vCPUs" } else { "cores" },
        if virtualised {
            ", a virtual machine"
        } else {
            ""
        },
        first_line("rustc", &["--version"]),
        first_line("python3", &["--version"]),
    )
}

/// The CPU time other processes took from [`Meter::start`] on: the machine's busy time
/// (`/proc/stat`) less this process's and its waited-for children's (`/proc/self/stat`).
pub struct Meter {
    started: Instant,
    busy: f64,
    own: f64,
}

impl Meter {
    pub fn start() -> Meter {
        Meter {
            started: Instant::now(),
            busy: machine_busy_seconds(),
            own: own_cpu_seconds(),
        }
    }

    /// The average number of cores other processes kept busy.
    pub fn others(&self) -> f64 {
        let wall = self.started.elapsed().as_secs_f64();
        let others = (machine_busy_seconds() - self.busy) - (own_cpu_seconds() - self.own);
        if wall > 0.0 {
            others.max(0.0) / wall
        } else {
            0.0
        }
    }
}
