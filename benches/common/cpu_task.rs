//! The CPU-bound task both reports time, and its calibration to a wall time per call.

use std::hint::black_box;
use std::time::Instant;

/// About `n` serially dependent multiply-adds: CPU-bound, no memory traffic. Never inlined, so
/// that the loop is the same code wherever it is called from.
#[inline(never)]
pub(crate) fn spin(n: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..n {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
    }
    x
}

/// Iterations of [`spin`] that take about `seconds` on one thread here (the fastest of a few
/// tries).
pub(crate) fn calibrate(seconds: f64) -> u64 {
    let probe = 1u64 << 20;
    let fastest = (0..5)
        .map(|_| {
            let started = Instant::now();
            black_box(spin(black_box(probe)));
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    ((probe as f64) * seconds / fastest) as u64
}
