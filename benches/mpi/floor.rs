//! The floor of the Mpi rows: an rsmpi ping-pong, 1-byte round trips and 1 MiB transfers, from
//! one buffer and from 200.

use std::process::Command;
use std::time::Instant;

use concurrent_futures::__private::mpi;
use mpi::traits::*;

use crate::{median, report, PAYLOADS};

/// The floor: 1-byte round trips and 1 MiB transfers between two ranks of a launched job
/// (`mpirun -n 2`, with `EXECUTOR_MPI_RANKS_RUN_MAIN` so that both run `main`), or between this
/// process and one it spawns (the transport a singleton's pool has).
pub(crate) fn ping_pong() {
    let universe = mpi::initialize().expect("MPI starts");
    let world = universe.world();
    if world.size() == 2 {
        let peer = world.process_at_rank(1 - world.rank());
        if world.rank() == 0 {
            ping(&peer);
        } else {
            pong(&peer);
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe);
    child.arg("--pingpong-child");
    let inter = world
        .process_at_rank(0)
        .spawn(&child, 1)
        .expect("the child starts");
    ping(&inter.process_at_rank(0));
}

pub(crate) fn ping_pong_child() {
    let universe = mpi::initialize().expect("MPI starts");
    let parent = universe.world().parent().expect("spawned by --pingpong");
    pong(&parent.process_at_rank(0));
}

const ROUNDS: usize = 20_000;
const WARM_UP: usize = 1_000;
/// Samples of each transfer figure.
const SAMPLES: usize = 5;

fn ping(peer: &(impl Destination + Source)) {
    let mut byte = [0u8; 1];
    for _ in 0..WARM_UP {
        peer.send(&byte[..]);
        peer.receive_into(&mut byte[..]);
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        peer.send(&byte[..]);
        peer.receive_into(&mut byte[..]);
    }
    report(
        "pingpong_us",
        started.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64,
    );
    // Each transfer figure is the median of `SAMPLES`, as the pool's rows are: one sample moved
    // by half between runs (4.1 to 13.9 GB/s for the one buffer).
    let big = vec![5u8; 1 << 20];
    let mut ack = [0u8; 1];
    let one: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..PAYLOADS {
                peer.send(&big[..]);
            }
            peer.receive_into(&mut ack[..]);
            (PAYLOADS << 20) as f64 / started.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    report("pingpong_mib_gb_per_s", median(one));
    // The same bytes from 200 buffers of their own, as 200 calls' arguments are, written afresh
    // before each sample as the pool's rows build theirs: 200 MiB, more than most caches hold,
    // where one buffer sent 200 times stays in cache.
    let mut bigs: Vec<Vec<u8>> = (0..PAYLOADS).map(|_| vec![0u8; 1 << 20]).collect();
    let distinct: Vec<f64> = (0..SAMPLES)
        .map(|sample| {
            for (i, big) in bigs.iter_mut().enumerate() {
                big.fill((i + sample) as u8 | 1);
            }
            let started = Instant::now();
            for big in &bigs {
                peer.send(&big[..]);
            }
            peer.receive_into(&mut ack[..]);
            (PAYLOADS << 20) as f64 / started.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    report("pingpong_distinct_mib_gb_per_s", median(distinct));
}

fn pong(peer: &(impl Destination + Source)) {
    let mut byte = [0u8; 1];
    for _ in 0..WARM_UP + ROUNDS {
        peer.receive_into(&mut byte[..]);
        peer.send(&byte[..]);
    }
    let mut big = vec![0u8; 1 << 20];
    for _ in 0..2 * SAMPLES {
        for _ in 0..PAYLOADS {
            peer.receive_into(&mut big[..]);
        }
        peer.send(&[1u8][..]);
    }
}
