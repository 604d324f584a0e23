use concurrent_futures::pool;

fn double(x: u32) -> u32 {
    x * 2
}

fn main() {
    let _ = pool!(Thread => { map(double).count() });
}
