use concurrent_futures::pool;

fn work(x: u32) -> u32 {
    x
}

fn main() {
    pool!(Process => {
        submit(call(work).deadline(5), 1).result()
    });
}
