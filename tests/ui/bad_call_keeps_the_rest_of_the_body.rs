use concurrent_futures::pool;

fn double(x: u32) -> u32 {
    2 * x
}

fn main() {
    // Only the calls that cannot be rewritten are errors (the arguments they had, here a generic
    // function, are kept and add none); the rest of the block still expands, and its own mistake
    // is reported too.
    let n: u32 = pool!(Thread => {
        submit();
        let _ = map(std::convert::identity).count();
        let wrong: u32 = "not a number";
        submit(double, 2).result().unwrap()
    });
    assert_eq!(n, 4);
}
