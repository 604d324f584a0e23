use concurrent_futures::pool;

fn work(x: u32) -> u32 {
    x
}

fn main() {
    pool!(Mpi => {
        submit(call(work).retries(1), 1).result()
    });
}
