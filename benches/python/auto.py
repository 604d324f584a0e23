# Python's default ThreadPoolExecutor on the workloads of `cargo bench --bench auto` (issue 9).
#
#   python3 benches/python/auto.py --port PORT [--workloads io,cpu,io_cpu,cpu_io,tiny]
#       [--io-tasks 400] [--cpu-tasks 64] [--cpu-seconds 0.02] [--tiny-tasks 20000] [--tiny-blocks 5]
#
# Run by `cargo bench --bench auto` once per run, against the bench's own HTTP server (PORT: it answers
# each request after 50 ms). Prints one JSON object: the pool's default max_workers, the calibrated
# CPU loop, and the wall time in seconds of one whole `with ThreadPoolExecutor() as ex:` block per
# workload (tiny: the median of --tiny-blocks blocks, each block also listed):
#   io      IO_TASKS fetches (a new connection each, raw socket, like urllib), submitted, then collected
#   cpu     CPU_TASKS calls of a pure-Python loop calibrated to CPU_SECONDS on one thread (under the GIL)
#   io_cpu  in one block: the fetches, collected, then the CPU calls, collected
#   cpu_io  the reverse
#   tiny    TINY_TASKS calls of add(a, b), submitted, then collected
import argparse
import json
import os
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor


def fetch(port, i):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET /{i} HTTP/1.0\r\n\r\n".encode())
        total = 0
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return total
            total += len(chunk)


def spin(n):
    x = 0
    for i in range(n):
        x = (x * 1103515245 + i) & 0xFFFFFFFF
    return x


def add(a, b):
    return a + b


def calibrate(seconds):
    n = 10000
    while True:
        t = time.perf_counter()
        spin(n)
        dt = time.perf_counter() - t
        if dt > 0.05:
            break
        n *= 2
    # the fastest of a few tries, as the Rust side does
    best = min(timed(lambda: spin(n)) for _ in range(3))
    return max(1, int(n * seconds / best))


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def io_batch(ex, port, tasks):
    fs = [ex.submit(fetch, port, i) for i in range(tasks)]
    total = sum(f.result() for f in fs)
    assert total > 0
    return total


def cpu_batch(ex, n, tasks):
    fs = [ex.submit(spin, n) for _ in range(tasks)]
    return [f.result() for f in fs]


def block(body):
    t = time.perf_counter()
    with ThreadPoolExecutor() as ex:
        body(ex)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workloads", default="io,cpu,io_cpu,cpu_io,tiny")
    p.add_argument("--io-tasks", type=int, default=400)
    p.add_argument("--cpu-tasks", type=int, default=64)
    p.add_argument("--cpu-seconds", type=float, default=0.02)
    p.add_argument("--tiny-tasks", type=int, default=20000)
    p.add_argument("--tiny-blocks", type=int, default=5)
    a = p.parse_args()

    n = calibrate(a.cpu_seconds)
    io = lambda ex: io_batch(ex, a.port, a.io_tasks)
    cpu = lambda ex: cpu_batch(ex, n, a.cpu_tasks)

    def tiny(ex):
        fs = [ex.submit(add, i, 1) for i in range(a.tiny_tasks)]
        r = [f.result() for f in fs]
        assert r[-1] == a.tiny_tasks

    with ThreadPoolExecutor() as ex:
        default_workers = ex._max_workers

    seconds, tiny_blocks = {}, []
    for w in a.workloads.split(","):
        if w == "io":
            seconds[w] = block(io)
        elif w == "cpu":
            seconds[w] = block(cpu)
        elif w == "io_cpu":
            seconds[w] = block(lambda ex: (io(ex), cpu(ex)))
        elif w == "cpu_io":
            seconds[w] = block(lambda ex: (cpu(ex), io(ex)))
        elif w == "tiny":
            tiny_blocks = [block(tiny) for _ in range(a.tiny_blocks)]
            seconds[w] = statistics.median(tiny_blocks)
        else:
            raise SystemExit(f"unknown workload {w!r}")
    print(
        json.dumps(
            {
                "max_workers": default_workers,
                "cpus": os.cpu_count(),
                "cpu_iterations": n,
                "seconds": seconds,
                "tiny_blocks": tiny_blocks,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
