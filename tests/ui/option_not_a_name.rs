use concurrent_futures::pool;

fn main() {
    // A bare value where `name = value` belongs.
    pool!(Thread(4) => {});
}
