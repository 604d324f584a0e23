use concurrent_futures::pool;

fn main() {
    pool!(Auto(min_workers = 8, max_workers = 4) => {});
}
