use executor::pool;

fn main() {
    pool!(Thread { 1 });
}
