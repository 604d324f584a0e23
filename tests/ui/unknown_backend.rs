use concurrent_futures::pool;

fn main() {
    pool!(Fibers => {});
}
