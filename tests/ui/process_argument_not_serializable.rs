use concurrent_futures::pool;

struct Handle(std::fs::File);

fn size(_handle: Handle) -> u64 {
    0
}

fn main() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let _ = pool!(Process => {
        submit(size, Handle(file)).result()
    });
}
