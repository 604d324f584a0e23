//! The frame decoder: arbitrary bytes read as a worker reads its channel, as the pool reads a
//! worker's, as a stream of frames of any kind, and as bare values. Errors are expected; a panic,
//! a hang or a large allocation (run with `-malloc_limit_mb`) is a finding.

#![no_main]

use concurrent_futures_runtime::__private::{frames, parent_stream, values, worker_stream};
use libfuzzer_sys::fuzz_target;

/// The reader grows its buffers in steps of 16 MiB as bytes arrive; one step beyond the bytes
/// given is the most a corrupt length may cost.
const SLACK: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    for summary in [
        frames(data),
        worker_stream(data),
        parent_stream(data),
        values(data),
    ] {
        assert!(
            summary.peak_capacity <= data.len() + SLACK,
            "{} bytes of input made a buffer of {} bytes",
            data.len(),
            summary.peak_capacity
        );
    }
});
