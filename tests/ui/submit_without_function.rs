use executor::pool;

fn main() {
    pool!(Thread => {
        submit();
    });
}
