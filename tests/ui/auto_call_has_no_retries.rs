use concurrent_futures::pool;

fn work(x: u32) -> u32 {
    x
}

fn main() {
    // Nothing on a thread can be retried: it neither loses its worker nor times out.
    pool!(Auto => {
        submit(call(work).retries(3), 1).result()
    });
}
