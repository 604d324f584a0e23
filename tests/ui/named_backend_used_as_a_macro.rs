// The name stands for a backend: calling it as a macro says how to use it.
use concurrent_futures::backend;

backend!(Fetch = Thread);

fn main() {
    Fetch!();
}
