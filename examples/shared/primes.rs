//! The CPU-bound work of the prime examples (`primes.rs`, `mpi_primes.rs`): count the primes below
//! `LIMIT`, split into `CHUNKS` ranges. Not an example of its own (Cargo only builds `examples/*.rs`
//! and `examples/*/main.rs`); each example includes it with `#[path]`.

pub(crate) const LIMIT: u64 = 4_000_000;
pub(crate) const CHUNKS: u64 = 32;

/// How many primes lie in `start..end`, by trial division (deliberately CPU-bound).
pub(crate) fn primes_in(start: u64, end: u64) -> u64 {
    (start..end).filter(|&n| is_prime(n)).count() as u64
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut divisor = 2;
    while divisor * divisor <= n {
        if n % divisor == 0 {
            return false;
        }
        divisor += 1;
    }
    true
}

/// The `CHUNKS` ranges that cover `0..LIMIT`.
pub(crate) fn ranges() -> Vec<(u64, u64)> {
    let step = LIMIT / CHUNKS;
    (0..CHUNKS).map(|i| (i * step, (i + 1) * step)).collect()
}
