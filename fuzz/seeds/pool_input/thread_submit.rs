Thread(max_workers = 2) => {
    let futures: Vec<_> = (0..10).map(|i| submit(add, i, 100)).collect();
    futures.into_iter().map(|f| f.result().unwrap()).collect()
}
