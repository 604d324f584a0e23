//! Worker lifecycle events go through the `log` facade: there when an application installs a logger.

use std::sync::Mutex;

use concurrent_futures::pool;

struct Recorder(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        self.0
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }

    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

/// Installs the recorder once for all the tests of this file (they may run at the same time).
fn record() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&RECORDER).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
    });
}

fn has(level: log::Level, text: &str) -> bool {
    RECORDER
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|(l, message)| *l == level && message.contains(text))
}

fn abort() -> u32 {
    std::process::abort()
}

fn pid() -> u32 {
    std::process::id()
}

#[test]
fn starts_deaths_and_replacements_are_logged() {
    record();

    let (died, after) = pool!(Process(max_workers = 1) => {
        let died = submit(abort);
        let after = submit(pid);
        (died.result(), after.result())
    });
    assert!(died.is_err());
    let replacement = after.unwrap();

    let records = RECORDER.0.lock().unwrap().clone();
    let has = |level: log::Level, text: &str| {
        records
            .iter()
            .any(|(l, message)| *l == level && message.contains(text))
    };
    assert!(has(log::Level::Debug, "started worker 0"), "{records:#?}");
    assert!(
        has(log::Level::Warn, "was killed by signal 6 (SIGABRT)"),
        "{records:#?}"
    );
    assert!(
        has(
            log::Level::Debug,
            &format!("started worker 0 (pid {replacement})")
        ),
        "{records:#?}"
    );
    assert!(
        has(
            log::Level::Debug,
            &format!("worker 0 (pid {replacement}) exited")
        ),
        "{records:#?}"
    );
}

/// Stops the (idle) worker: it will not read the end of its input.
fn stop(pid: u32) {
    // SAFETY: sends a signal to our own worker process.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) }, 0);
}

/// A worker that does not exit when its block ends is killed after the grace, and that is logged.
#[test]
fn a_worker_killed_for_not_exiting_is_logged() {
    record();
    let pid = pool!(Process(max_workers = 1) => {
        let worker = submit(pid).result().unwrap();
        stop(worker);
        worker
    });
    assert!(
        has(
            log::Level::Warn,
            &format!(
                "worker 0 (pid {pid}) was killed by signal 9 (SIGKILL): it did not exit within 2s"
            )
        ),
        "{:#?}",
        RECORDER.0.lock().unwrap()
    );
}
