// A Process-only option on a name for Thread is refused where it is written: in the block, and in
// the declaration.
use std::time::Duration;

use concurrent_futures::{backend, pool};

backend!(Fetch = Thread(max_workers = 4));
backend!(Crunch = Thread(timeout = Duration::from_secs(1)));

fn main() {
    pool!(Fetch(timeout = Duration::from_secs(1)) => {});
}
