use concurrent_futures::pool;

fn main() {
    pool!(Thread => {
        std::mem::forget(__executor_guard);
        let _ = __executor_scope;
    });
}
