Thread(initializer = setup, initargs = (1, "x".to_string()), thread_name_prefix = "w", cancel_futures = true) => {
    map(f, items, 2).collect::<Vec<_>>();
    submit(f, submit(g).result().unwrap())
}
