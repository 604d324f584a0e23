//! The worker count over time while an `Auto` block runs: a sampler thread that counts this
//! process's threads named with [`PREFIX`] every [`PERIOD`], and a `log::Log` that keeps the
//! governor's decisions (target `concurrent_futures::auto`, debug level).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The `thread_name_prefix` of every `Auto` block in this benchmark: its workers are `auto-0`,
/// `auto-1`, ... (a thread's `comm` keeps 15 bytes, enough for the prefix).
pub(crate) const PREFIX: &str = "auto";
/// How often the sampler counts the workers.
pub(crate) const PERIOD: Duration = Duration::from_millis(2);

/// One decision the governor logged: `pool {id}: target {target} workers, {active} active of
/// {started} started ({reason})`.
#[derive(Clone, Debug)]
pub(crate) struct Decision {
    /// Milliseconds since the block started.
    pub ms: f64,
    pub target: usize,
    pub active: usize,
    pub started: usize,
    pub reason: String,
}

/// What one traced block did.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trace {
    /// (milliseconds since the block started, worker threads alive).
    pub samples: Vec<(f64, usize)>,
    pub decisions: Vec<Decision>,
    /// Records from an `auto` target that did not read as decisions (the first few).
    pub unparsed: Vec<String>,
    /// When the block's first batch ended and the second began (mixed workloads).
    pub switch_ms: Option<f64>,
    /// The block's wall time.
    pub wall_ms: f64,
}

impl Trace {
    /// The most workers alive in any sample between `from` and `to` milliseconds.
    pub(crate) fn max_alive_between(&self, from: f64, to: f64) -> usize {
        self.samples
            .iter()
            .filter(|&&(t, _)| t >= from && t <= to)
            .map(|&(_, n)| n)
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn max_alive(&self) -> usize {
        self.max_alive_between(f64::NEG_INFINITY, f64::INFINITY)
    }

    pub(crate) fn max_target(&self) -> Option<usize> {
        self.decisions.iter().map(|d| d.target).max()
    }
}

// ---------------------------------------------------------------------------------------------
// The governor's log

struct Recording {
    origin: Instant,
    decisions: Vec<Decision>,
    unparsed: Vec<String>,
}

/// Keeps the decisions while a traced block runs; off (and `log`'s max level `Off`) otherwise, so
/// untraced blocks pay only `log`'s level check.
struct GovernorLog {
    recording: Mutex<Option<Recording>>,
    /// `AUTO_LOG=1`: every record from an `auto` target also goes to stderr as it comes.
    echo: AtomicBool,
}

static LOG: GovernorLog = GovernorLog {
    recording: Mutex::new(None),
    echo: AtomicBool::new(false),
};

impl log::Log for GovernorLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Debug && metadata.target().starts_with("concurrent_futures")
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) || !record.target().contains("auto") {
            return;
        }
        let mut recording = self.recording.lock().unwrap_or_else(|e| e.into_inner());
        let Some(recording) = recording.as_mut() else {
            return;
        };
        let text = record.args().to_string();
        if self.echo.load(Ordering::Relaxed) {
            let ms = recording.origin.elapsed().as_secs_f64() * 1e3;
            eprintln!("auto: [{ms:8.1} ms] {}: {text}", record.target());
        }
        match parse_decision(&text) {
            Some((target, active, started, reason)) => recording.decisions.push(Decision {
                ms: recording.origin.elapsed().as_secs_f64() * 1e3,
                target,
                active,
                started,
                reason,
            }),
            None if recording.unparsed.len() < 8 => recording.unparsed.push(text),
            None => {}
        }
    }

    fn flush(&self) {}
}

/// Reads `pool {id}: target {target} workers, {active} active of {started} started ({reason})`,
/// leniently (whatever precedes `target` is skipped; the reason may be missing).
fn parse_decision(text: &str) -> Option<(usize, usize, usize, String)> {
    let rest = text.split_once("target ")?.1;
    let (target, rest) = rest.split_once(" worker")?;
    let rest = rest.split_once(',')?.1.trim_start();
    let (active, rest) = rest.split_once(" active of ")?;
    let (started, rest) = rest.split_once(" started")?;
    let reason = rest.trim();
    let reason = reason
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(reason);
    // What follows a `;` is the figures behind the decision: the reason is what comes before.
    let reason = reason.split(';').next().unwrap_or(reason).trim();
    Some((
        target.trim().parse().ok()?,
        active.trim().parse().ok()?,
        started.trim().parse().ok()?,
        reason.to_string(),
    ))
}

/// Installs the governor's log as this process's logger (once, before any block runs); with
/// `echo`, it also prints each record to stderr.
pub(crate) fn install_logger(echo: bool) {
    LOG.echo.store(echo, Ordering::Relaxed);
    if log::set_logger(&LOG).is_err() {
        eprintln!("auto: a logger was already installed; the governor's decisions are not kept");
    }
    log::set_max_level(log::LevelFilter::Off);
}

/// For a block that seems hung: the workers alive now, and the last decisions of the block
/// being traced.
pub(crate) fn dump_state() {
    eprintln!(
        "auto: {} worker threads alive now (with those of blocks left behind before)",
        Names::default().count_workers()
    );
    let recording = LOG.recording.lock().unwrap_or_else(|e| e.into_inner());
    match recording.as_ref() {
        Some(r) => {
            let skip = r.decisions.len().saturating_sub(20);
            eprintln!(
                "auto: the governor's last {} decisions:",
                r.decisions.len() - skip
            );
            for d in &r.decisions[skip..] {
                eprintln!(
                    "auto:   {:8.1} ms: target {}, {} active of {} started ({})",
                    d.ms, d.target, d.active, d.started, d.reason
                );
            }
        }
        None => eprintln!("auto: (the block was not traced)"),
    }
}

// ---------------------------------------------------------------------------------------------
// The sampler

/// A running trace: call [`Tracer::finish`] after the block.
pub(crate) struct Tracer {
    origin: Instant,
    stop: Arc<AtomicBool>,
    sampler: thread::JoinHandle<Vec<(f64, usize)>>,
}

impl Tracer {
    /// Starts the sampler and the log recording; the block should start right after. Workers
    /// alive already (those of a block left behind hung) are not counted.
    pub(crate) fn start() -> Tracer {
        let stop = Arc::new(AtomicBool::new(false));
        let mut names = Names::default();
        names.count_workers();
        names.count_workers();
        names.foreign = names
            .threads
            .iter()
            .filter(|(_, &(worker, _, _))| worker)
            .map(|(&tid, _)| tid)
            .collect();
        let origin = Instant::now();
        let sampler = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("sampler".into())
                .spawn(move || sample(origin, &stop, names))
                .expect("the sampler thread")
        };
        *LOG.recording.lock().unwrap_or_else(|e| e.into_inner()) = Some(Recording {
            origin,
            decisions: Vec::new(),
            unparsed: Vec::new(),
        });
        log::set_max_level(log::LevelFilter::Debug);
        Tracer {
            origin,
            stop,
            sampler,
        }
    }

    /// Stops the trace of a block that ended at `ended` and switched batches at `switched` (if it
    /// did).
    pub(crate) fn finish(self, ended: Instant, switched: Option<Instant>) -> Trace {
        log::set_max_level(log::LevelFilter::Off);
        let recording = LOG
            .recording
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.sampler.join().expect("the sampler ran");
        let (decisions, unparsed) =
            recording.map_or_else(Default::default, |r| (r.decisions, r.unparsed));
        Trace {
            samples,
            decisions,
            unparsed,
            switch_ms: switched.map(|t| t.duration_since(self.origin).as_secs_f64() * 1e3),
            wall_ms: ended.duration_since(self.origin).as_secs_f64() * 1e3,
        }
    }
}

fn sample(origin: Instant, stop: &AtomicBool, mut names: Names) -> Vec<(f64, usize)> {
    let mut samples = Vec::with_capacity(4096);
    loop {
        let alive = names.count_workers();
        samples.push((origin.elapsed().as_secs_f64() * 1e3, alive));
        if stop.load(Ordering::Relaxed) {
            return samples;
        }
        thread::sleep(PERIOD);
    }
}

/// `auto-<index>`. The main thread is named after the executable (`auto-<hash>` for this
/// bench), so the index must be digits, and the main thread is left out anyway.
fn is_worker_name(comm: &str) -> bool {
    comm.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
}

/// What the sampler knows of each thread, so that a sample reads only the task list and the
/// names of new threads (the I/O workloads have hundreds of server threads alive).
#[derive(Default)]
struct Names {
    /// tid -> (is a worker, read twice with the same answer, the sweep it was last seen in).
    threads: HashMap<u64, (bool, bool, u64)>,
    sweep: u64,
    /// Workers that were alive before the trace began: not counted.
    foreign: HashSet<u64>,
}

impl Names {
    /// The threads of this process named `auto-<index>`. A new thread carries its
    /// creator's name until it sets its own, so a name counts as settled only once two samples
    /// read the same.
    fn count_workers(&mut self) -> usize {
        self.sweep += 1;
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        let pid = u64::from(std::process::id());
        let mut workers = 0;
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let entry = self.threads.entry(tid).or_insert((false, false, 0));
            if !entry.1 {
                let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
                    continue; // the thread ended meanwhile
                };
                let name = comm.trim_end();
                let worker = tid != pid && is_worker_name(name);
                // Workers are started by a block's thread or the governor; a thread still wearing
                // one of their names may be a worker that has not run yet (on two busy cores that
                // can take longer than two samples), so it never settles as "not a worker".
                let creator = name == "block" || name.starts_with("executor-gov");
                entry.1 = !creator && entry.2 != 0 && entry.0 == worker;
                entry.0 = worker;
            }
            entry.2 = self.sweep;
            workers += usize::from(entry.0 && !self.foreign.contains(&tid));
        }
        let sweep = self.sweep;
        self.threads.retain(|_, e| e.2 == sweep);
        workers
    }
}
