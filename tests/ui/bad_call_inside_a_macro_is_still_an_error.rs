// A malformed `submit` inside the arguments of a macro that drops them is still an error: the
// block is reported instead of expanded, since the error in place would vanish with the input.
use concurrent_futures::pool;

macro_rules! ignore {
    ($($tokens:tt)*) => {};
}

fn main() {
    pool!(Thread => {
        ignore!(submit());
    });
}
