use concurrent_futures::pool;

fn main() {
    // A thread cannot be killed, so only Process offers a per-task timeout.
    pool!(Thread(timeout = std::time::Duration::from_secs(1)) => {});
}
