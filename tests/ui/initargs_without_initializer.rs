use executor::pool;

fn main() {
    pool!(Thread(initargs = (1, 2)) => {});
}
