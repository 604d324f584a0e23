// The name stands for a backend: calling it as a macro says how to use it.
use executor::backend;

backend!(Fetch = Thread);

fn main() {
    Fetch!();
}
