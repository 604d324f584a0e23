use executor::pool;

fn main() {
    pool!(Thread(workers = 2) => {});
}
