//! The machine: what it is, its load, and how much CPU other processes took meanwhile.

use crate::common_machine::{cpu_model, machine_busy_seconds, own_cpu_seconds};
pub use crate::common_machine::{first_line, load_average};
use std::time::Instant;

/// The CPU model, whether virtual, rustc and Python.
pub fn describe(cores: usize) -> String {
    let (model, virtualised) = cpu_model();
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
