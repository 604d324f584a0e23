use concurrent_futures::pool;

// A function that may keep its argument forever cannot take a borrowed argument on a worker
// process, where the argument lives only as long as the call.
fn keep(text: &'static str) -> usize {
    text.len()
}

fn main() {
    let _ = pool!(Process => {
        submit(keep, "a literal is 'static, but the worker's copy is not").result()
    });
}
