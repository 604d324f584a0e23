//! The machine as the benchmarks that write reports (`report`, `auto`) describe it: its CPU, its
//! load, how busy the rest of it was while they ran ([`Meter`]), and the versions of the tools.

use std::process::Command;
use std::time::Instant;

/// Linux reports CPU times in `USER_HZ` ticks, 100 a second on every architecture it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// The machine's busy CPU time so far, in seconds, from `/proc/stat`.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: busy is all but idle, iowait and steal.
    let busy: f64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| ticks.get(i)).sum();
    busy / TICKS_PER_SECOND
}

/// This process's CPU time so far, and that of its waited-for children, in seconds.
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name in brackets: field 3 (state) onwards; utime, stime, cutime and
    // cstime are fields 14 to 17.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|v| v.parse().ok())
        .collect();
    fields.iter().sum::<f64>() / TICKS_PER_SECOND
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The first line a command prints (stdout, else stderr).
pub(crate) fn first_line(command: &str, args: &[&str]) -> String {
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

/// The CPU's model name, and whether it runs under a hypervisor, from `/proc/cpuinfo`.
fn cpu_model() -> (String, bool) {
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
    (model, virtualised)
}

/// The CPUs as both reports open their machine line: `2 vCPUs (model), a virtual machine`.
pub(crate) fn cpus(cores: usize) -> String {
    let (model, virtualised) = cpu_model();
    format!(
        "{cores} {} ({model}){}",
        if virtualised { "vCPUs" } else { "cores" },
        if virtualised {
            ", a virtual machine"
        } else {
            ""
        },
    )
}

/// What other processes did to the machine while pieces of a bench ran: the CPU time the whole
/// machine spent busy (`/proc/stat`) less this process's and its waited-for children's
/// (`/proc/self/stat`), both in clock ticks of 10 ms, over the wall time measured.
#[derive(Default, Clone, Copy)]
pub(crate) struct Meter {
    wall: f64,
    others: f64,
}

impl Meter {
    /// Runs `f`, and adds its wall time and what other processes took meanwhile.
    pub(crate) fn measure<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let (busy, own, started) = (machine_busy_seconds(), own_cpu_seconds(), Instant::now());
        let value = f();
        self.wall += started.elapsed().as_secs_f64();
        self.others += ((machine_busy_seconds() - busy) - (own_cpu_seconds() - own)).max(0.0);
        value
    }

    /// The average number of cores the rest of the machine kept busy while measured.
    pub(crate) fn cores(&self) -> f64 {
        if self.wall > 0.0 {
            self.others / self.wall
        } else {
            0.0
        }
    }
}
