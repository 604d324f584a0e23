use concurrent_futures::pool;

fn open() -> std::fs::File {
    std::fs::File::open("/dev/null").unwrap()
}

fn main() {
    let _ = pool!(Process => {
        submit(open).result()
    });
}
