//! The floor of the Mpi rows: an rsmpi ping-pong, 1-byte round trips and 1 MiB transfers, from
//! one buffer and from 200.

use std::process::Command;
use std::time::Instant;

use concurrent_futures::__private::mpi;
use mpi::traits::*;

use crate::{report, PAYLOADS};

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
    let big = vec![5u8; 1 << 20];
    let mut ack = [0u8; 1];
    let started = Instant::now();
    for _ in 0..PAYLOADS {
        peer.send(&big[..]);
    }
    peer.receive_into(&mut ack[..]);
    report(
        "pingpong_mib_gb_per_s",
        (PAYLOADS << 20) as f64 / started.elapsed().as_secs_f64() / 1e9,
    );
    // The same bytes from 200 buffers of their own, as 200 calls' arguments are: 200 MiB that no
    // cache holds, where one buffer sent 200 times stays in cache (here 4.3-4.4 against 9.6-9.7
    // GB/s, three runs of each, one after the other).
    let bigs: Vec<Vec<u8>> = (0..PAYLOADS).map(|i| vec![i as u8 | 1; 1 << 20]).collect();
    let started = Instant::now();
    for big in &bigs {
        peer.send(&big[..]);
    }
    peer.receive_into(&mut ack[..]);
    report(
        "pingpong_distinct_mib_gb_per_s",
        (PAYLOADS << 20) as f64 / started.elapsed().as_secs_f64() / 1e9,
    );
}

fn pong(peer: &(impl Destination + Source)) {
    let mut byte = [0u8; 1];
    for _ in 0..WARM_UP + ROUNDS {
        peer.receive_into(&mut byte[..]);
        peer.send(&byte[..]);
    }
    let mut big = vec![0u8; 1 << 20];
    for _ in 0..2 {
        for _ in 0..PAYLOADS {
            peer.receive_into(&mut big[..]);
        }
        peer.send(&[1u8][..]);
    }
}
