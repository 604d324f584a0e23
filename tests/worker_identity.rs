//! A task can learn where it runs: backend, worker index, process id and thread name.

use std::collections::HashSet;
use std::sync::Barrier;

use concurrent_futures::{current_worker, pool, Backend, WorkerInfo};

fn whoami() -> WorkerInfo {
    current_worker().expect("tasks run on a worker")
}

/// The Thread contract: every test in it runs once on `Thread` (module `thread`) and once on
/// `Auto` (module `auto`), which must behave the same. A test that depends on the pool's size
/// names `max_workers`, the cap on both (their defaults differ).
macro_rules! thread_contract {
    ($backend:ident) => {
        #[test]
        fn a_task_sees_a_thread_worker_of_this_process() {
            let info = pool!($backend(max_workers = 3) => { submit(whoami).result().unwrap() });
            assert_eq!(info.backend(), Backend::Thread);
            assert_eq!(info.pid(), std::process::id());
            assert!(info.index() < 3);
            let name = info
                .thread_name()
                .expect("worker threads are named")
                .to_string();
            assert!(name.starts_with("executor-"), "{name}");
            // The block ran on the test's own thread, which libtest names after the test's path.
            let module = module_path!().split_once("::").unwrap().1;
            assert_eq!(
                std::thread::current().name(),
                Some(format!("{module}::a_task_sees_a_thread_worker_of_this_process").as_str())
            );
            assert!(info.to_string().starts_with("Thread worker "), "{info}");
        }

        #[test]
        fn the_block_itself_is_not_a_worker() {
            pool!($backend => {
                assert_eq!(current_worker(), None);
            });
            assert_eq!(current_worker(), None);
        }

        #[test]
        fn concurrent_tasks_run_on_distinct_workers_named_by_the_prefix() {
            // Three tasks that meet at a barrier must be on three different threads at once.
            let barrier = Barrier::new(3);
            let infos = pool!($backend(max_workers = 3, thread_name_prefix = "fetcher") => {
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
    };
}

mod thread {
    use super::*;
    thread_contract!(Thread);
}

mod auto {
    use super::*;
    thread_contract!(Auto);
}
