use concurrent_futures::pool;

fn main() {
    pool!(Thread(max_workers = 2, max_workers = 3) => {});
}
