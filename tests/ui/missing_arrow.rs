use concurrent_futures::pool;

fn main() {
    pool!(Thread { 1 });
}
