use concurrent_futures::pool;

fn main() {
    // Threads share one process's memory, so only Process can cap a worker's.
    pool!(Thread(memory_limit = 1 << 30) => {});
}
