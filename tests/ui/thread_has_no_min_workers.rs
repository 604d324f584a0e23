use concurrent_futures::pool;

fn main() {
    // A Thread pool has a fixed size; only Auto sizes itself between `min_workers` and `max_workers`.
    pool!(Thread(min_workers = 2) => {});
}
