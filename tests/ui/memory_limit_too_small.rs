use concurrent_futures::pool;

fn main() {
    // A worker needs a few MiB to start; a literal below the floor is refused at compile time.
    pool!(Process(memory_limit = 4096) => {});
}
