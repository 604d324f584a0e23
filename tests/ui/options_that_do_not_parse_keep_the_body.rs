use concurrent_futures::pool;

fn double(x: u32) -> u32 {
    2 * x
}

fn main() {
    // An option being typed does not parse; the block after `=>` still does, so it is expanded for
    // the compiler and the IDE, and its own mistake is reported too.
    let n: u32 = pool!(Process(max_workers 4) => {
        let wrong: u32 = "not a number";
        submit(double, 2).result().unwrap()
    });
    assert_eq!(n, 4);
}
