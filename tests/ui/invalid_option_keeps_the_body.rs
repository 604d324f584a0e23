use concurrent_futures::pool;

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn main() {
    // The option is wrong, yet the block is still expanded, without its options, so that the
    // compiler and the IDE see the body: `submit`, `map`, their futures, a borrowed local and the
    // `collect` inferred from `sums` raise no error of their own, and the body's one real mistake
    // is reported with the option's.
    let base = 100;
    let text = String::from("borrowed");
    let sums: Vec<u64> = pool!(Thread(timeout = std::time::Duration::from_secs(1)) => {
        let futures: Vec<_> = (0..4).map(|i| submit(add, i, base)).collect();
        let length = submit(|s: &String| s.len(), &text);
        let doubled: Vec<u64> = map(|x: u64| 2 * x, 0..4).map(Result::unwrap).collect();
        let wrong: u32 = "not a number";
        futures.into_iter().map(|f| f.result().unwrap()).collect()
    });
    assert_eq!(sums.len(), 4);
}
