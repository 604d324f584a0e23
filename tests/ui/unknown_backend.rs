use executor::pool;

fn main() {
    pool!(Fibers => {});
}
