use concurrent_futures::pool;

fn main() {
    // `retries` is a Process option, at the block as at the call.
    pool!(Thread(retries = 2) => {});
}
