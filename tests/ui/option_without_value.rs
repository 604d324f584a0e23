use concurrent_futures::pool;

fn main() {
    pool!(Thread(max_workers =) => {});
}
