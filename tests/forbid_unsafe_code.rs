//! A crate that forbids `unsafe` can use `pool!` on both backends: the expansion's one `unsafe`
//! block holds only the macro's own tokens, and user code never ends up inside it.
#![forbid(unsafe_code)]
#![deny(warnings)]

use concurrent_futures::pool;

fn shout(text: &str) -> String {
    text.to_uppercase()
}

#[test]
fn both_backends_compile_under_forbid_unsafe_code() {
    let word = String::from("quiet");
    let on_threads = pool!(Thread => { submit(shout, word.as_str()).result().unwrap() });
    let on_processes = pool!(Process => { submit(shout, word.as_str()).result().unwrap() });
    assert_eq!(on_threads, "QUIET");
    assert_eq!(on_processes, "QUIET");
}
