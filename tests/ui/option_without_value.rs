use executor::pool;

fn main() {
    pool!(Thread(max_workers =) => {});
}
