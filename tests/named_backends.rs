//! A backend declared once with `backend!` and used by name in any number of blocks; a `cfg`
//! picks which for the whole program. Each name is a real backend, so each block behaves as the
//! keyword it stands for.

use concurrent_futures::{backend, current_worker, pool, Backend};

backend!(Fetch = Thread(max_workers = 3, thread_name_prefix = "fetch"));
backend!(Measured = Auto(max_workers = 8));
backend!(Isolated = Process(max_workers = 2));

// The switch a program would put behind its own cargo feature.
#[cfg(any())]
backend!(Work = Process(max_workers = 2));
#[cfg(not(any()))]
backend!(Work = Thread(max_workers = 2));

fn where_am_i(x: u64) -> (u64, Backend, String) {
    let me = current_worker().expect("runs on a worker");
    (
        x,
        me.backend(),
        me.thread_name().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_name_runs_its_backend_with_its_options_in_every_block() {
    for _ in 0..2 {
        let ran = pool!(Fetch => { submit(where_am_i, 1).result().unwrap() });
        assert_eq!(ran.1, Backend::Thread);
        assert!(ran.2.starts_with("fetch-"), "{}", ran.2);
    }
    let on_auto = pool!(Measured => { submit(where_am_i, 2).result().unwrap() });
    assert_eq!(on_auto.1, Backend::Thread);
    let on_processes = pool!(Isolated => {
        let f = submit(where_am_i, 3);
        (f.result().unwrap(), current_worker().is_none())
    });
    assert_eq!(on_processes.0 .1, Backend::Process);
    assert!(on_processes.1, "the block itself runs here");
}

#[test]
fn a_block_adds_options_to_those_of_the_name() {
    let name = pool!(Isolated(max_tasks_per_child = 1) => {
        let first = submit(std::process::id).result().unwrap();
        let second = submit(std::process::id).result().unwrap();
        first != second
    });
    assert!(name, "each call ran in a fresh worker");
}

#[test]
fn a_cfg_picks_the_backend_of_a_whole_program() {
    let backend = pool!(Work => { submit(where_am_i, 4).result().unwrap().1 });
    assert_eq!(backend, Backend::Thread);
}

mod declared_earlier {
    // A name is visible in the modules declared after it, like any `macro_rules!` macro.
    #[test]
    fn a_name_declared_above_is_usable_here() {
        let sum: u64 = concurrent_futures::pool!(Work => {
            (1..=4u64).map(|x| submit(move || x * 10)).map(|f| f.result().unwrap()).sum()
        });
        assert_eq!(sum, 100);
    }
}
