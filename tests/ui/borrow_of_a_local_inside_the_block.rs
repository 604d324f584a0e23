use concurrent_futures::pool;

fn main() {
    pool!(Thread => {
        let inner = String::from("dies at the end of the block");
        let length = submit(|s: &String| s.len(), &inner);
        length.result().unwrap();
    });
}
