use concurrent_futures::pool;

fn main() {
    // Auto runs on threads, which cannot be stopped.
    pool!(Auto(timeout = std::time::Duration::from_secs(1)) => {});
}
