Process(max_workers = 4, timeout = Duration::from_secs(1), max_tasks_per_child = 10, memory_limit = 1 << 30) => {
    let text = String::from("hello");
    let f = submit(count, text.as_str(), &bytes[..], 7u32);
    let v = vec![submit(g, 1); 3];
    println!("{:?}", submit(h).result());
    for r in map(square, 0..100, 8) { r?; }
    f.result()
}
