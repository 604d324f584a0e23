use concurrent_futures::pool;

fn main() {
    pool!(Mpi => {});
}
