use concurrent_futures::pool;

fn main() {
    let offset = 10;
    let _ = pool!(Process => {
        submit(move |x: i32| x + offset, 1).result()
    });
}
