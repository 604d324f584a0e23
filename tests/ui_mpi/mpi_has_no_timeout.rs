use concurrent_futures::pool;

fn main() {
    let timeout = std::time::Duration::from_secs(1);
    pool!(Mpi(timeout = timeout) => {});
}
