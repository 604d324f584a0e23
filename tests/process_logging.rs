//! Worker lifecycle events go through the `log` facade: there when an application installs a logger.

use std::sync::Mutex;

use executor::pool;

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

fn abort() -> u32 {
    std::process::abort()
}

fn pid() -> u32 {
    std::process::id()
}

#[test]
fn starts_deaths_and_replacements_are_logged() {
    log::set_logger(&RECORDER).unwrap();
    log::set_max_level(log::LevelFilter::Debug);

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
