//! Large payloads through one Process worker (issue 16): a 64 MiB `Vec<u8>`, `String`, `&str` and
//! `&[u8]` argument, and a `Vec<u8>` and `String` result (ASCII, and mixed text whose characters
//! take 1 to 4 bytes), each against a `memcpy` of the same size
//! timed in the same round, so that the ratios hold on a busy machine when the times do not.
//!
//! Each case copies the payload once inside its timing, as a caller that keeps its data would: an
//! owned argument is cloned into `submit`, a result is cloned in the worker from a buffer the worker
//! built before the timing, and a borrowed argument is copied by `submit` itself. One pool serves
//! every round (its start-up is not timed); the cases take turns within each round.
//!
//! Run: `cargo bench --bench payloads` (`PAYLOAD_ROUNDS=n` for more or fewer rounds than 7,
//! `PAYLOAD_MIB=n` for another size than 64).

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Instant;

use concurrent_futures::pool;

thread_local! {
    /// The worker's own copy of the payload, which results are cloned from.
    static HELD: RefCell<(Vec<u8>, String, String)> =
        const { RefCell::new((Vec::new(), String::new(), String::new())) };
}

fn hold(len: usize) -> usize {
    HELD.with(|held| *held.borrow_mut() = (vec![7u8; len], "a".repeat(len), mixed_text(len)));
    len
}

/// `len` bytes of text whose characters take 1 to 4 bytes (accents, symbols, emoji).
fn mixed_text(len: usize) -> String {
    let mut text = "aé€😀 text ".repeat(len / 16 + 1);
    let mut end = len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.extend(std::iter::repeat_n('a', len - end));
    text
}

fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn text_length(text: String) -> usize {
    text.len()
}

fn str_length(text: &str) -> usize {
    text.len()
}

fn slice_length(bytes: &[u8]) -> usize {
    bytes.len()
}

fn bytes_result() -> Vec<u8> {
    HELD.with(|held| held.borrow().0.clone())
}

fn text_result() -> String {
    HELD.with(|held| held.borrow().1.clone())
}

fn mixed_text_result() -> String {
    HELD.with(|held| held.borrow().2.clone())
}

const CASES: [&str; 9] = [
    "floor: `memcpy` into a reused buffer",
    "floor: clone into a fresh buffer",
    "`Vec<u8>` argument",
    "`&[u8]` argument",
    "`String` argument",
    "`&str` argument",
    "`Vec<u8>` result",
    "`String` result",
    "`String` result, mixed text",
];

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seconds(f: impl FnOnce() -> usize, len: usize) -> f64 {
    let started = Instant::now();
    let got = f();
    let took = started.elapsed().as_secs_f64();
    assert_eq!(got, len);
    took
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds = setting("PAYLOAD_ROUNDS", 7);
    let len = setting("PAYLOAD_MIB", 64) << 20;
    let bytes = vec![7u8; len];
    let text = "a".repeat(len);
    let mut target = vec![0u8; len];
    let mut times = vec![Vec::new(); CASES.len()];
    pool!(Process(max_workers = 1) => {
        assert_eq!(submit(hold, len).result().unwrap(), len);
        for _ in 0..rounds {
            let round = [
                seconds(|| { target.copy_from_slice(black_box(&bytes)); black_box(&target).len() }, len),
                seconds(|| black_box(bytes.clone()).len(), len),
                seconds(|| submit(length, bytes.clone()).result().unwrap(), len),
                seconds(|| submit(slice_length, bytes.as_slice()).result().unwrap(), len),
                seconds(|| submit(text_length, text.clone()).result().unwrap(), len),
                seconds(|| submit(str_length, text.as_str()).result().unwrap(), len),
                seconds(|| submit(bytes_result).result().unwrap().len(), len),
                seconds(|| submit(text_result).result().unwrap().len(), len),
                seconds(|| submit(mixed_text_result).result().unwrap().len(), len),
            ];
            for (case, took) in times.iter_mut().zip(round) {
                case.push(took);
            }
        }
    });
    let median = |case: usize| {
        let mut sorted = times[case].clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    // Per round: a case's time over another's in the same round.
    let ratio = |a: usize, b: usize| {
        let mut ratios: Vec<f64> = times[a].iter().zip(&times[b]).map(|(x, y)| x / y).collect();
        ratios.sort_by(f64::total_cmp);
        (
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
        )
    };
    println!(
        "{} MiB payloads, one Process worker, {rounds} rounds (medians; ratios per round: median (min–max))",
        len >> 20
    );
    println!("| case | ms | GB/s | of the `memcpy` floor's rate |");
    println!("|---|---|---|---|");
    for (case, name) in CASES.iter().enumerate() {
        let (r, lo, hi) = ratio(0, case);
        println!(
            "| {name} | {:.1} | {:.2} | {r:.2} ({lo:.2}–{hi:.2}) |",
            median(case) * 1e3,
            len as f64 / median(case) / 1e9
        );
    }
    for (what, a, b) in [
        ("`Vec<u8>` result ÷ `Vec<u8>` argument", 6, 2),
        ("`String` argument ÷ `Vec<u8>` argument", 4, 2),
        ("`&str` argument ÷ `&[u8]` argument", 5, 3),
        ("`String` result ÷ `Vec<u8>` result", 7, 6),
        ("`String` result, mixed text ÷ `Vec<u8>` result", 8, 6),
    ] {
        let (r, lo, hi) = ratio(a, b);
        println!("{what}: {r:.2}× ({lo:.2}–{hi:.2}) the time");
    }
}
