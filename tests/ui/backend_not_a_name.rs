use executor::pool;

fn main() {
    pool!(4 => {});
}
