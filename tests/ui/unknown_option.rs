use concurrent_futures::pool;

fn main() {
    pool!(Thread(workers = 2) => {});
}
