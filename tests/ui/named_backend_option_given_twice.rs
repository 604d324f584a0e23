// An option that the named backend already sets is a duplicate, at the block's token.
use concurrent_futures::{backend, pool};

backend!(Fetch = Thread(max_workers = 4));

fn main() {
    pool!(Fetch(max_workers = 8) => {});
}
