use concurrent_futures::pool;

fn main() {
    pool!(Thread(initargs = (1, 2)) => {});
}
