// A name that no `backend!` declared is the compiler's error at the name, with the declared name
// it is close to.
use concurrent_futures::{backend, pool};

backend!(Fetch = Thread(max_workers = 4));

fn main() {
    pool!(Fecth => {});
}
