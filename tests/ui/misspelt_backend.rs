// A near miss of a keyword is an unknown backend, with the list of keywords.
use concurrent_futures::pool;

fn main() {
    pool!(Thred => {});
}
