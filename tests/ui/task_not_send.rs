use concurrent_futures::pool;
use std::rc::Rc;

fn main() {
    let shared = Rc::new(1);
    pool!(Thread => {
        let copy = shared.clone();
        submit(move || *copy).result().unwrap();
    });
}
