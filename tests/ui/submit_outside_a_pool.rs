fn double(x: u32) -> u32 {
    2 * x
}

fn main() {
    let _ = submit(double, 1);
}
