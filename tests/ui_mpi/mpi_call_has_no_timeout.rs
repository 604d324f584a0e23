use std::time::Duration;

use concurrent_futures::pool;

fn work(x: u32) -> u32 {
    x
}

fn main() {
    pool!(Mpi => {
        submit(call(work).timeout(Duration::from_secs(1)), 1).result()
    });
}
