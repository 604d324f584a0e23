//! The CPU-bound example (primes in ranges) on MPI ranks: `pool!(Mpi => ...)`, the same block as
//! `pool!(Process => ...)` in `examples/primes.rs`, each range counted by another MPI process.
//!
//! Needs Open MPI and the `mpi` feature (see the README, "Running on a cluster"). Launched, rank
//! 0 runs `main` and the other ranks are the workers:
//!
//! ```sh
//! cargo build --release --features mpi --example mpi_primes
//! mpirun -n 3 target/release/examples/mpi_primes                 # 2 workers
//! mpirun -n 3 --oversubscribe target/release/examples/mpi_primes # more ranks than cores
//! mpirun -n 5 --hostfile hosts target/release/examples/mpi_primes  # across machines
//! srun -n 5 --mpi=pmix target/release/examples/mpi_primes        # under Slurm
//! ```
//!
//! Singleton, without a launcher: the block spawns its workers (`MPI_Comm_spawn`):
//!
//! ```sh
//! target/release/examples/mpi_primes
//! ```

use std::collections::BTreeSet;
use std::time::Instant;

use concurrent_futures::{current_worker, pool};

#[path = "shared/primes.rs"]
mod primes;

use primes::{primes_in, ranges, CHUNKS, LIMIT};

/// How many primes lie in `start..end`, and where the count ran.
fn count_primes(start: u64, end: u64) -> (u64, String) {
    let place = match current_worker() {
        Some(worker) => format!(
            "rank {} on {}",
            worker.rank().unwrap_or(0),
            worker.host().unwrap_or("?")
        ),
        None => "here".to_string(),
    };
    (primes_in(start, end), place)
}

fn main() {
    println!("counting primes below {LIMIT} in {CHUNKS} ranges");

    let started = Instant::now();
    let plain: u64 = ranges()
        .into_iter()
        .map(|(a, b)| count_primes(a, b).0)
        .sum();
    let plain_time = started.elapsed();
    println!("plain loop:  {plain} primes in {plain_time:.2?}");

    let started = Instant::now();
    let (total, places) = pool!(Mpi => {
        let work: Vec<_> = ranges().into_iter().map(|(a, b)| submit(count_primes, a, b)).collect();
        let mut places = BTreeSet::new();
        let mut total = 0;
        for future in work {
            let (count, place) = future.result().expect("a range is counted");
            total += count;
            places.insert(place);
        }
        (total, places)
    });
    let mpi_time = started.elapsed();
    println!(
        "pool!(Mpi):  {total} primes in {mpi_time:.2?}  ({:.2}x), on {}",
        plain_time.as_secs_f64() / mpi_time.as_secs_f64(),
        places.into_iter().collect::<Vec<_>>().join(", ")
    );
    assert_eq!(plain, total);
}
