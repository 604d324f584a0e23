use executor::pool;

fn main() {
    pool!(Mpi => {});
}
