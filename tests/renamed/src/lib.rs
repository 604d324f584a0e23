//! The facade under another name (`futures_pool`, see `Cargo.toml`): the macros find it by the
//! name this crate's manifest gives it, on every backend and through a named backend.

#[cfg(test)]
mod tests {
    use futures_pool::{as_completed, backend, pool, Backend};

    fn add(a: u64, b: u64) -> u64 {
        a + b
    }

    fn square(x: u64) -> u64 {
        x * x
    }

    backend!(Renamed = Process(max_workers = 2));

    #[test]
    fn every_backend_expands_under_the_new_name() {
        let on_threads = pool!(Thread(max_workers = 2) => { submit(add, 1, 2).result().unwrap() });
        let on_auto = pool!(Auto => { submit(add, 3, 4).result().unwrap() });
        let on_processes = pool!(Process(max_workers = 2, initializer = add, initargs = (1, 1)) => {
            let f = submit(add, 5, 6);
            let backend = submit(|| futures_pool::current_worker().unwrap().backend());
            (f.result().unwrap(), backend.result().unwrap())
        });
        assert_eq!((on_threads, on_auto), (3, 7));
        assert_eq!(on_processes, (11, Backend::Process));
    }

    #[test]
    fn maps_waits_and_named_backends_expand_under_the_new_name() {
        let (squares, mut keyed) = pool!(Renamed => {
            let squares: Vec<u64> = map(square, 0..4u64).map(Result::unwrap).collect();
            let keyed: Vec<_> = (0..3u64).map(|i| (i, submit(square, i))).collect();
            let keyed: Vec<(u64, u64)> = as_completed(keyed, None)
                .map(|done| {
                    let (i, f) = done.unwrap();
                    (i, f.result().unwrap())
                })
                .collect();
            (squares, keyed)
        });
        keyed.sort();
        assert_eq!(squares, [0, 1, 4, 9]);
        assert_eq!(keyed, [(0, 0), (1, 1), (2, 4)]);
    }
}
