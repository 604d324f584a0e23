use concurrent_futures::pool;

fn work(x: u32) -> u32 {
    x
}

fn main() {
    // A call's own timeout is refused where the block option is: a thread cannot be killed.
    pool!(Thread => {
        submit(call(work).timeout(std::time::Duration::from_secs(1)), 1).result()
    });
}
