//! A task can learn where it runs: backend, worker index, process id and thread name.

use std::collections::HashSet;
use std::sync::Barrier;

use executor::{current_worker, pool, Backend, WorkerInfo};

fn whoami() -> WorkerInfo {
    current_worker().expect("tasks run on a worker")
}

#[test]
fn a_task_sees_a_thread_worker_of_this_process() {
    let info = pool!(Thread(max_workers = 3) => { submit(whoami).result().unwrap() });
    assert_eq!(info.backend(), Backend::Thread);
    assert_eq!(info.pid(), std::process::id());
    assert!(info.index() < 3);
    let name = info
        .thread_name()
        .expect("worker threads are named")
        .to_string();
    assert!(name.starts_with("executor-"), "{name}");
    assert_eq!(
        std::thread::current().name(),
        Some("a_task_sees_a_thread_worker_of_this_process")
    );
    assert!(info.to_string().starts_with("Thread worker "), "{info}");
}

#[test]
fn the_block_itself_is_not_a_worker() {
    pool!(Thread => {
        assert_eq!(current_worker(), None);
    });
    assert_eq!(current_worker(), None);
}

#[test]
fn concurrent_tasks_run_on_distinct_workers_named_by_the_prefix() {
    // Three tasks that meet at a barrier must be on three different threads at once.
    let barrier = Barrier::new(3);
    let infos = pool!(Thread(max_workers = 3, thread_name_prefix = "fetcher") => {
        let futures: Vec<_> = (0..3).map(|_| submit(|| { barrier.wait(); whoami() })).collect();
        futures.into_iter().map(|f| f.result().unwrap()).collect::<Vec<_>>()
    });
    let indices: HashSet<usize> = infos.iter().map(WorkerInfo::index).collect();
    assert_eq!(indices, HashSet::from([0, 1, 2]));
    let names: HashSet<&str> = infos.iter().filter_map(WorkerInfo::thread_name).collect();
    assert_eq!(
        names,
        HashSet::from(["fetcher-0", "fetcher-1", "fetcher-2"])
    );
}
