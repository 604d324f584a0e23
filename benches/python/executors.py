# Python's concurrent.futures on the same work as benches/process.rs and benches/tiny_tasks.rs,
# 2 workers: 20,000 tiny tasks (a + b), 200 tasks with a 1 MiB bytes argument, and start-up of a
# pool with one task. Run by `cargo bench --bench process` (or alone: python3 benches/python/executors.py).
# Prints one line per figure: name, median, min, max over the runs.
import multiprocessing as mp
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def add(a, b):
    return a + b


def length(b):
    return len(b)


def tiny(executor_type, n=20000, **kw):
    with executor_type(max_workers=2, **kw) as ex:
        ex.submit(add, 1, 1).result()  # workers up: start-up is measured separately
        t = time.perf_counter()
        fs = [ex.submit(add, i, 1) for i in range(n)]
        r = [f.result() for f in fs]
        dt = time.perf_counter() - t
    assert r[-1] == n
    return dt / n * 1e6  # µs per task


def payload(**kw):
    b = bytes(1 << 20)
    with ProcessPoolExecutor(max_workers=2, **kw) as ex:
        ex.submit(length, b"").result()
        t = time.perf_counter()
        fs = [ex.submit(length, b) for _ in range(200)]
        r = [f.result() for f in fs]
        dt = time.perf_counter() - t
    assert r[-1] == 1 << 20
    return 200 * (1 << 20) / dt / 1e9  # GB/s


def startup(**kw):
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2, **kw) as ex:
        ex.submit(add, 1, 2).result()
    return (time.perf_counter() - t) * 1e3  # ms


def report(name, unit, runs):
    print(f"{name} [{unit}]: median {statistics.median(runs):.3f} min {min(runs):.3f} max {max(runs):.3f}", flush=True)


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    fork = {"mp_context": mp.get_context("fork")}
    spawn = {"mp_context": mp.get_context("spawn")}
    report("python ThreadPoolExecutor tiny", "us/task", [tiny(ThreadPoolExecutor) for _ in range(runs)])
    report("python ProcessPoolExecutor(fork) tiny", "us/task", [tiny(ProcessPoolExecutor, **fork) for _ in range(runs)])
    report("python ProcessPoolExecutor(spawn) tiny", "us/task", [tiny(ProcessPoolExecutor, n=5000, **spawn) for _ in range(runs)])
    report("python ProcessPoolExecutor(fork) 1MiB", "GB/s", [payload(**fork) for _ in range(runs)])
    report("python ProcessPoolExecutor(spawn) 1MiB", "GB/s", [payload(**spawn) for _ in range(runs)])
    report("python ProcessPoolExecutor(fork) start-up", "ms", [startup(**fork) for _ in range(max(runs, 5))])
    report("python ProcessPoolExecutor(spawn) start-up", "ms", [startup(**spawn) for _ in range(max(runs, 5))])
