use executor::pool;

fn main() {
    pool!(Auto => {});
}
