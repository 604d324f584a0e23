//! Starvation: as many tasks as cores wait for a flag that only a task queued after them sets;
//! `Auto` must start a worker for it, a fixed pool of `cores` workers cannot.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use concurrent_futures::pool;

use crate::trace::{Trace, Tracer};
use crate::workloads::guarded;
use crate::{Setting, STARVATION_FIXED, STARVATION_SAFETY};

/// A flag that tasks wait for.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

/// Waits until the gate opens, or `limit` passes; whether it opened.
fn wait_for_gate(gate: &Gate, limit: Duration) -> bool {
    let open = gate.open.lock().expect("the gate's lock");
    let (open, _) = gate
        .opened
        .wait_timeout_while(open, limit, |open| !*open)
        .expect("the gate's lock");
    *open
}

fn open_gate(gate: &Gate) {
    *gate.open.lock().expect("the gate's lock") = true;
    gate.opened.notify_all();
}

/// `cores` tasks that wait for a gate which only a task submitted after them opens.
pub(crate) struct Starvation {
    pub cores: usize,
    /// `Auto`: seconds and waiters that saw the gate open (`None`: it hung).
    pub auto: Option<(f64, usize)>,
    pub auto_trace: Trace,
    /// `Thread(max_workers = cores)` with waits of [`STARVATION_FIXED`]: seconds, waiters that
    /// saw the gate open.
    pub fixed: Option<(f64, usize)>,
}

impl Starvation {
    pub(crate) fn run(cores: usize) -> Starvation {
        eprintln!("auto: starvation");
        let tracer = Tracer::start();
        let auto = guarded("starvation under Auto".into(), move || {
            Self::block(Setting::Auto, cores, STARVATION_SAFETY)
        });
        let auto_trace = tracer.finish(auto.map_or_else(Instant::now, |a| a.2), None);
        let fixed = guarded("starvation under Thread".into(), move || {
            Self::block(Setting::Fixed(cores), cores, STARVATION_FIXED)
        });
        Starvation {
            cores,
            auto: auto.map(|(seconds, opened, _)| (seconds, opened)),
            auto_trace,
            fixed: fixed.map(|(seconds, opened, _)| (seconds, opened)),
        }
    }

    /// Seconds, waiters that saw the gate open, when the block ended.
    fn block(setting: Setting, cores: usize, limit: Duration) -> (f64, usize, Instant) {
        let gate = Gate::default();
        let start = Instant::now();
        let opened = in_pool!(setting, {
            let waiters: Vec<_> = (0..cores)
                .map(|_| submit(wait_for_gate, &gate, limit))
                .collect();
            let opener = submit(open_gate, &gate);
            let opened = waiters
                .into_iter()
                .map(|f| f.result().expect("a waiter"))
                .filter(|&o| o)
                .count();
            opener.result().expect("the opener");
            opened
        });
        let end = Instant::now();
        ((end - start).as_secs_f64(), opened, end)
    }
}
